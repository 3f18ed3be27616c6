package logging

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/go-kit/log"
)

type stringer struct{ s string }

func (s *stringer) String() string { return s.s }

type panicky struct{}

func (panicky) String() string { panic("boom") }

type marshaler struct{}

func (marshaler) MarshalJSON() ([]byte, error) { return []byte(`{"own":true}`), nil }

// TestJSONLoggerMatchesGoKit: every value decodes to what go-kit's JSON logger writes
// for it.
func TestJSONLoggerMatchesGoKit(t *testing.T) {
	ts := time.Date(2026, 11, 25, 20, 1, 2, 345678000, time.UTC)
	var nilStringer *stringer
	tests := []struct {
		name string
		v    any
	}{
		{"string", "plain"},
		{"escapes", "quote \" backslash \\ newline \n tab \t bell \a <html> & é 中 \u2028"},
		{"invalid utf-8", "bad \xff byte"},
		{"empty", ""},
		{"int", -42},
		{"int64", int64(math.MaxInt64)},
		{"uint64", uint64(math.MaxUint64)},
		{"float", 12.345},
		{"small float", 1e-9},
		{"big float", 1e22},
		{"whole float", 3.0},
		{"float32", float32(0.1)},
		{"bool", true},
		{"nil", nil},
		{"time", ts},
		{"duration", 1500 * time.Millisecond},
		{"error", errors.New("it broke")},
		{"stringer", &stringer{"hi"}},
		{"nil stringer", nilStringer},
		{"marshaler", marshaler{}},
		{"slice", []string{"a", "b"}},
		{"map", map[string]int{"a": 1}},
		{"struct", struct{ A int }{7}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var ours, theirs bytes.Buffer
			if err := NewJSONLogger(&ours).Log("k", tt.v); err != nil {
				t.Fatal(err)
			}
			if err := log.NewJSONLogger(&theirs).Log("k", tt.v); err != nil {
				t.Fatal(err)
			}
			var got, want map[string]any
			if err := json.Unmarshal(ours.Bytes(), &got); err != nil {
				t.Fatalf("ours is not JSON: %q: %v", ours.String(), err)
			}
			if err := json.Unmarshal(theirs.Bytes(), &want); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("ours %s\ngo-kit %s", ours.String(), theirs.String())
			}
		})
	}
}

func TestJSONLoggerLine(t *testing.T) {
	tests := []struct {
		name    string
		keyvals []any
		want    string
	}{
		{"keys in order", []any{"z", 1, "a", "x"}, `{"z":1,"a":"x"}`},
		{"missing value", []any{"msg", "m", "odd"}, `{"msg":"m","odd":"(MISSING)"}`},
		{"non-string key", []any{7, "seven"}, `{"7":"seven"}`},
		{"panicking Stringer", []any{"v", panicky{}}, `{"v":"PANIC in String or Error method: boom"}`},
		{"not a number", []any{"v", math.Inf(1)}, `{"v":"+Inf"}`},
		{"nothing", nil, `{}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			if err := NewJSONLogger(&buf).Log(tt.keyvals...); err != nil {
				t.Fatal(err)
			}
			if got := strings.TrimSuffix(buf.String(), "\n"); got != tt.want {
				t.Errorf("got %s, want %s", got, tt.want)
			}
			if strings.Count(buf.String(), "\n") != 1 {
				t.Errorf("want one line, got %q", buf.String())
			}
		})
	}
}

// writeCounter counts Write calls: a line must reach the writer in one piece.
type writeCounter struct{ n int }

func (w *writeCounter) Write(p []byte) (int, error) { w.n++; return len(p), nil }

func TestJSONLoggerOneWrite(t *testing.T) {
	var w writeCounter
	_ = NewJSONLogger(&w).Log("a", 1, "b", strings.Repeat("x", 100000))
	if w.n != 1 {
		t.Fatalf("%d writes for one line", w.n)
	}
}

// BenchmarkAccessLine is one gateway access log line through each logger.
func BenchmarkAccessLine(b *testing.B) {
	kv := []any{
		"ts", time.Now(), "service", "gateway", "caller", "middleware.go:49", "level", "info",
		"msg", "request", "request_id", "0123456789abcdef0123456789abcdef", "method", "GET",
		"route", "GET /v1/products/{sku}", "path", "/v1/products/kit-001", "status", 200,
		"duration_ms", 1.234, "upstream", "127.0.0.1:40001", "client", "127.0.0.1",
	}
	for _, tc := range []struct {
		name   string
		logger log.Logger
	}{
		{"kitshop", NewJSONLogger(log.NewSyncWriter(discard{}))},
		{"go-kit", log.NewJSONLogger(log.NewSyncWriter(discard{}))},
	} {
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				_ = tc.logger.Log(kv...)
			}
		})
	}
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

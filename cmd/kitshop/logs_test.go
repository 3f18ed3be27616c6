package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLogsCommand(t *testing.T) {
	dir := t.TempDir()
	lines := map[string]string{
		"gateway": `{"ts":"2026-12-06T04:00:00.100Z","level":"info","service":"gateway","trace_id":"abc","msg":"request","path":"/v1/orders","took":"12 ms"}` + "\n",
		"order-1": `{"ts":"2026-12-06T04:00:00.200Z","level":"error","service":"order","trace_id":"abc","msg":"saga failed"}` + "\npanic: boom\n",
	}
	for instance, text := range lines {
		if err := os.WriteFile(filepath.Join(dir, instance+".log"), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name     string
		options  logsOptions
		terminal bool
		want     []string // each line's content, in order
	}{
		{name: "readable", options: logsOptions{color: "auto"}, want: []string{
			"gateway        info  request path=/v1/orders took=\"12 ms\" trace_id=abc",
			"order-1        error saga failed trace_id=abc",
			"order-1              panic: boom"}},
		{name: "coloured on a terminal", terminal: true, options: logsOptions{color: "auto"}, want: []string{"\x1b[32m info  \x1b[0m", "\x1b[1;31m error \x1b[0m", "panic: boom"}},
		{name: "never coloured", terminal: true, options: logsOptions{color: "never"}, want: []string{"gateway        info  request", "saga failed", "panic: boom"}},
		{name: "json", options: logsOptions{json: true}, want: []string{`{"instance":"gateway","ts":`, `{"instance":"order-1","ts":`, `"instance":"order-1","level":"","msg":"panic: boom"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("NO_COLOR", "")
			var out bytes.Buffer
			if err := logs(context.Background(), dir, tt.options, &out, tt.terminal); err != nil {
				t.Fatal(err)
			}
			got := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
			if len(got) != len(tt.want) {
				t.Fatalf("got %d lines, want %d:\n%s", len(got), len(tt.want), out.String())
			}
			for i, line := range got {
				if !strings.Contains(line, tt.want[i]) {
					t.Errorf("line %d is %q, want it to contain %q", i+1, line, tt.want[i])
				}
				if tt.options.json && !json.Valid([]byte(line)) {
					t.Errorf("line %d is not JSON: %s", i+1, line)
				}
			}
		})
	}
}

func TestLogsCommandRejectsBadFlags(t *testing.T) {
	for _, o := range []logsOptions{{color: "sometimes"}} {
		if err := logs(context.Background(), t.TempDir(), o, &bytes.Buffer{}, false); err == nil {
			t.Errorf("%+v was taken", o)
		}
	}
	if err := logs(context.Background(), filepath.Join(t.TempDir(), "missing"), logsOptions{}, &bytes.Buffer{}, false); err == nil {
		t.Error("a stack without logs gave no error")
	}
}

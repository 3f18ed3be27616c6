package stack

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

func writeLog(t *testing.T, dir, instance, text string) {
	t.Helper()
	f, err := os.OpenFile(filepath.Join(dir, instance+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(text); err != nil {
		t.Fatal(err)
	}
}

func instancesAndMsgs(lines []LogLine) []string {
	var got []string
	for _, l := range lines {
		got = append(got, l.Instance+": "+l.Msg)
	}
	return got
}

func TestLogReader(t *testing.T) {
	dir := t.TempDir()
	writeLog(t, dir, "gateway", `{"ts":"2026-12-06T04:00:00.100Z","level":"info","service":"gateway","trace_id":"abc","msg":"request"}`+"\n"+
		`{"ts":"2026-12-06T04:00:00.400Z","level":"error","service":"gateway","msg":"upstream failed"}`+"\n")
	writeLog(t, dir, "order-1", `{"ts":"2026-12-06T04:00:00.200Z","level":"debug","service":"order","trace_id":"ABC","msg":"call"}`+"\n"+
		"panic: boom\n"+
		`{"ts":"2026-12-06T04:00:00.500Z","level":"warn","service":"order","msg":"slow"}`+"\n")
	writeLog(t, dir, "order-2", `{"ts":"2026-12-06T04:00:00.300Z","level":"info","service":"order","trace_id":"def","msg":"call"}`+"\n")
	writeLog(t, dir, "consul", "2026-12-06T04:00:00.000Z [INFO]  agent: started\n")

	tests := []struct {
		name   string
		filter LogFilter
		want   []string
	}{
		{name: "everything, in time order", want: []string{
			"consul: agent: started", "gateway: request", "order-1: call", "order-1: panic: boom",
			"order-2: call", "gateway: upstream failed", "order-1: slow"}},
		{name: "one service", filter: LogFilter{Service: "order"}, want: []string{
			"order-1: call", "order-1: panic: boom", "order-2: call", "order-1: slow"}},
		{name: "one instance", filter: LogFilter{Service: "order-2"}, want: []string{"order-2: call"}},
		{name: "one trace, any case", filter: LogFilter{TraceID: "abc"}, want: []string{"gateway: request", "order-1: call"}},
		{name: "warnings and errors", filter: LogFilter{MinLevel: "warn"}, want: []string{"gateway: upstream failed", "order-1: slow"}},
		{name: "since", filter: LogFilter{Since: time.Date(2026, 12, 6, 4, 0, 0, 350e6, time.UTC)}, want: []string{
			"gateway: upstream failed", "order-1: slow"}},
		{name: "nothing matches", filter: LogFilter{TraceID: "nope"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := NewLogReader(dir, tt.filter)
			if err != nil {
				t.Fatal(err)
			}
			lines, err := r.Next()
			if err != nil {
				t.Fatal(err)
			}
			got := instancesAndMsgs(lines)
			if len(got) != len(tt.want) {
				t.Fatalf("got %q, want %q", got, tt.want)
			}
			for i := range got {
				if got[i] != tt.want[i] {
					t.Fatalf("got %q, want %q", got, tt.want)
				}
			}
		})
	}
}

func TestLogReaderFollows(t *testing.T) {
	dir := t.TempDir()
	writeLog(t, dir, "user-1", `{"ts":"2026-12-06T04:00:00Z","level":"info","msg":"one"}`+"\n")
	r, err := NewLogReader(dir, LogFilter{})
	if err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		name  string
		write map[string]string
		want  []string
	}{
		{name: "what is there", want: []string{"user-1: one"}},
		{name: "nothing new"},
		{name: "a line being written waits", write: map[string]string{"user-1": `{"ts":"2026-12-06T04:00:01Z","msg":"tw`}},
		{name: "its end, and a new instance", write: map[string]string{
			"user-1": `o"}` + "\n",
			"user-2": `{"ts":"2026-12-06T04:00:00.500Z","msg":"started"}` + "\n",
		}, want: []string{"user-2: started", "user-1: two"}},
	}
	for _, step := range steps {
		for instance, text := range step.write {
			writeLog(t, dir, instance, text)
		}
		lines, err := r.Next()
		if err != nil {
			t.Fatal(err)
		}
		got := instancesAndMsgs(lines)
		if len(got) != len(step.want) || (len(got) > 0 && (got[0] != step.want[0] || got[len(got)-1] != step.want[len(got)-1])) {
			t.Fatalf("%s: got %q, want %q", step.name, got, step.want)
		}
	}
}

func TestLogReaderRejectsUnknownLevel(t *testing.T) {
	if _, err := NewLogReader(t.TempDir(), LogFilter{MinLevel: "loud"}); err == nil {
		t.Fatal("a level that does not exist was taken")
	}
}

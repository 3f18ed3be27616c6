package stack

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// LogFilter chooses lines of the stack's logs; its zero value chooses every line.
type LogFilter struct {
	Service  string    // a service ("order") or one instance ("order-1")
	TraceID  string    // only lines of this trace
	MinLevel string    // debug, info, warn or error
	Since    time.Time // only lines written at or after it
}

// LogLine is one line of an instance's log.
type LogLine struct {
	Instance string
	Time     time.Time
	Level    string
	Msg      string
	Fields   map[string]any // the JSON fields; nil for a line that is not JSON
	Raw      string
}

var levelRank = map[string]int{"debug": 0, "info": 1, "warn": 2, "error": 3}

func (f LogFilter) match(l LogLine) bool {
	switch {
	case f.Service != "" && l.Instance != f.Service && !strings.HasPrefix(l.Instance, f.Service+"-"):
		return false
	case f.TraceID != "" && !strings.EqualFold(str(l.Fields["trace_id"]), f.TraceID):
		return false
	case f.MinLevel != "" && levelRank[l.Level] < levelRank[f.MinLevel]:
		return false
	case !f.Since.IsZero() && l.Time.Before(f.Since):
		return false
	}
	return true
}

// LogReader reads the logs of every instance of a stack (<state>/logs/<instance>.log):
// each call of Next returns the lines written since the call before, of every instance
// (including ones started meanwhile), merged in time order.
type LogReader struct {
	dir     string
	filter  LogFilter
	offsets map[string]int64 // per file: how far complete lines were read
	last    map[string]time.Time
}

// NewLogReader reads the logs in dir (a stack's Logs folder) that filter chooses.
func NewLogReader(dir string, filter LogFilter) (*LogReader, error) {
	if filter.MinLevel != "" {
		if _, ok := levelRank[filter.MinLevel]; !ok {
			return nil, errors.New("the log level must be debug, info, warn or error")
		}
	}
	if _, err := os.Stat(dir); err != nil {
		return nil, err
	}
	return &LogReader{dir: dir, filter: filter, offsets: map[string]int64{}, last: map[string]time.Time{}}, nil
}

// Next returns the chosen lines written since the last call.
func (r *LogReader) Next() ([]LogLine, error) {
	files, err := filepath.Glob(filepath.Join(r.dir, "*.log"))
	if err != nil {
		return nil, err
	}
	var lines []LogLine
	for _, file := range files {
		read, err := r.readFile(file)
		if err != nil {
			return nil, err
		}
		lines = append(lines, read...)
	}
	sort.SliceStable(lines, func(i, j int) bool { return lines[i].Time.Before(lines[j].Time) })
	return lines, nil
}

// readFile reads the complete lines of file past its offset; a line still being written
// waits for the next call.
func (r *LogReader) readFile(file string) ([]LogLine, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if _, err := f.Seek(r.offsets[file], io.SeekStart); err != nil {
		return nil, err
	}
	b, err := io.ReadAll(f)
	if err != nil {
		return nil, err
	}
	end := bytes.LastIndexByte(b, '\n')
	if end < 0 {
		return nil, nil
	}
	r.offsets[file] += int64(end + 1)
	instance := strings.TrimSuffix(filepath.Base(file), ".log")
	var lines []LogLine
	for _, raw := range strings.Split(string(b[:end]), "\n") {
		if raw == "" {
			continue
		}
		// A line without a time of its own (a panic's stack) follows the line before.
		l := parseLogLine(instance, raw, r.last[file])
		r.last[file] = l.Time
		if r.filter.match(l) {
			lines = append(lines, l)
		}
	}
	return lines, nil
}

// parseLogLine reads a service's JSON line or a Consul agent's own
// ("2026-12-06T04:10:00.123Z [INFO]  agent: …"); anything else keeps the time before.
func parseLogLine(instance, raw string, before time.Time) LogLine {
	l := LogLine{Instance: instance, Time: before, Raw: raw, Msg: raw}
	if strings.HasPrefix(raw, "{") {
		var fields map[string]any
		if json.Unmarshal([]byte(raw), &fields) == nil {
			l.Fields = fields
			l.Level, l.Msg = str(fields["level"]), str(fields["msg"])
			if t, err := time.Parse(time.RFC3339Nano, str(fields["ts"])); err == nil {
				l.Time = t
			}
			return l
		}
	}
	ts, rest, ok := strings.Cut(raw, " ")
	if t, err := time.Parse(time.RFC3339Nano, ts); ok && err == nil {
		l.Time = t
		if lvl, msg, ok := strings.Cut(strings.TrimSpace(rest), "]"); ok && strings.HasPrefix(lvl, "[") {
			l.Level = strings.ToLower(strings.TrimPrefix(lvl, "["))
			l.Msg = strings.TrimSpace(msg)
		}
	}
	return l
}

func str(v any) string {
	s, _ := v.(string)
	return s
}

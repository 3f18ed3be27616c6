package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
)

// logLine is one line of the log store's answer, its kitshop fields unpacked.
type logLine struct {
	AppName string `json:"app_name"` // the container's name (the syslog driver's tag)
	Service string `json:"service"`
	TraceID string `json:"trace_id"`
	Msg     string `json:"msg"`
}

// traceLogs asks the log store (VictoriaLogs' LogsQL API) for the lines of one trace.
func (s *shop) traceLogs(ctx context.Context, traceID string) ([]logLine, error) {
	// A word search for the ID, then the message's JSON as fields, then only the lines
	// whose trace_id is that ID (not, say, one that quotes it in an error).
	query := fmt.Sprintf("%q | unpack_json | filter trace_id:=%q", traceID, traceID)
	form := url.Values{"query": {query}, "limit": {"1000"}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.logs.base+"/select/logsql/query", strings.NewReader(form.Encode()))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := s.logs.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var body bytes.Buffer
	if _, err := body.ReadFrom(resp.Body); err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("log query %s: status %d: %.300s", query, resp.StatusCode, body.String())
	}
	var lines []logLine
	sc := bufio.NewScanner(&body)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		var l logLine
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			return nil, fmt.Errorf("log query: unreadable line %.200q: %w", sc.Bytes(), err)
		}
		lines = append(lines, l)
	}
	return lines, sc.Err()
}

// centralLogs waits until the log store holds lines of the trace from every named
// service, each line from a container of that service.
func (s *shop) centralLogs(ctx context.Context, traceID string, want ...string) error {
	return eventually(ctx, 45*time.Second, time.Second, func() error {
		lines, err := s.traceLogs(ctx, traceID)
		if err != nil {
			return err
		}
		count := map[string]int{}
		for _, l := range lines {
			if l.TraceID != traceID {
				return fmt.Errorf("the query for trace %s answered a line of trace %q", traceID, l.TraceID)
			}
			if !strings.Contains(l.AppName, l.Service) {
				return fmt.Errorf("a line of service %q came from container %q", l.Service, l.AppName)
			}
			count[l.Service]++
		}
		var got []string
		for svc, n := range count {
			got = append(got, fmt.Sprintf("%s %d", svc, n))
		}
		slices.Sort(got)
		for _, w := range want {
			if count[w] == 0 {
				return fmt.Errorf("the log store has lines of trace %s from %v, none from %s", traceID, got, w)
			}
		}
		s.logf("the log store holds the checkout's lines by trace %s: %s", traceID, strings.Join(got, ", "))
		return nil
	})
}

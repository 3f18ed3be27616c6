package main

import (
	"context"
	"fmt"
	"hash/fnv"
	"io"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/kitshop/kitshop/internal/stack"
)

// logsOptions are the flags of kitshop logs.
type logsOptions struct {
	filter stack.LogFilter
	since  time.Duration
	follow bool
	json   bool
	color  string // auto, always or never
}

// logs prints the stack's logs, merged in time order, and with follow keeps printing
// what is written until ctx ends.
func logs(ctx context.Context, dir string, o logsOptions, w io.Writer, terminal bool) error {
	if o.since > 0 {
		o.filter.Since = time.Now().Add(-o.since)
	}
	r, err := stack.NewLogReader(dir, o.filter)
	if err != nil {
		return fmt.Errorf("logs: %w", err)
	}
	var color bool
	switch o.color {
	case "always":
		color = true
	case "auto", "":
		color = terminal && os.Getenv("NO_COLOR") == ""
	case "never":
	default:
		return fmt.Errorf("-color must be auto, always or never")
	}
	for {
		lines, err := r.Next()
		if err != nil {
			return err
		}
		for _, l := range lines {
			if o.json {
				fmt.Fprintln(w, jsonLine(l))
			} else {
				fmt.Fprintln(w, readable(l, color))
			}
		}
		if !o.follow {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// jsonLine is the instance's own JSON line with the instance's name added; a line that
// is not JSON becomes one.
func jsonLine(l stack.LogLine) string {
	instance := fmt.Sprintf(`"instance":%q`, l.Instance)
	if l.Fields == nil {
		return fmt.Sprintf(`{"ts":%q,%s,"level":%q,"msg":%q}`, l.Time.UTC().Format(time.RFC3339Nano), instance, l.Level, l.Msg)
	}
	return "{" + instance + "," + strings.TrimPrefix(l.Raw, "{")
}

// shown elsewhere in a readable line, or of no use to a reader.
var readableSkip = map[string]bool{"ts": true, "level": true, "msg": true, "service": true}

// readable is l as a line for a person: time, instance, level, message, then the other
// fields as key=value in name order.
func readable(l stack.LogLine, color bool) string {
	var b strings.Builder
	b.WriteString(l.Time.Local().Format("15:04:05.000") + " ")
	b.WriteString(paint(fmt.Sprintf("%-14s", l.Instance), instanceColor(l.Instance), color))
	b.WriteString(paint(fmt.Sprintf(" %-5s ", l.Level), levelColor[l.Level], color))
	b.WriteString(l.Msg)
	keys := make([]string, 0, len(l.Fields))
	for k := range l.Fields {
		if !readableSkip[k] {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		v := fmt.Sprint(l.Fields[k])
		if strings.ContainsAny(v, " \t\"") {
			v = fmt.Sprintf("%q", v)
		}
		b.WriteString(" " + paint(k+"=", "2", color) + v)
	}
	return b.String()
}

// ANSI colours: of levels, and a stable one per instance.
var (
	levelColor     = map[string]string{"debug": "2", "info": "32", "warn": "33", "error": "1;31"}
	instanceColors = []string{"36", "35", "34", "33", "32", "96", "95", "94"}
)

func instanceColor(instance string) string {
	h := fnv.New32a()
	_, _ = h.Write([]byte(strings.TrimRightFunc(instance, func(r rune) bool { return r == '-' || r >= '0' && r <= '9' })))
	return instanceColors[h.Sum32()%uint32(len(instanceColors))]
}

func paint(s, code string, on bool) string {
	if !on || code == "" {
		return s
	}
	return "\x1b[" + code + "m" + s + "\x1b[0m"
}

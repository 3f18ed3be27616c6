package main

import (
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"
)

// stats collects every answer: per route for the final report, plus a window that the
// progress line reads and resets.
type stats struct {
	mu       sync.Mutex
	routes   map[string]*routeStats
	admitted histogram // answers the target took on: all but 503, 429 and no answer
	good     uint64    // 2xx answers
	window   histogram
	winN     uint64
	winErrs  uint64
	total    uint64
	actions  uint64 // actions finished, whatever their answers
	skipped  uint64 // rate mode: actions not started because all slots were busy
}

type routeStats struct {
	hist   histogram
	errors map[string]uint64 // by status code, or "transport"
}

func newStats() *stats { return &stats{routes: map[string]*routeStats{}} }

// add records one answer; status 0 means the request failed below HTTP.
func (s *stats) add(route string, status int, d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.routes[route]
	if r == nil {
		r = &routeStats{errors: map[string]uint64{}}
		s.routes[route] = r
	}
	r.hist.record(d)
	if admitted(status) {
		s.admitted.record(d)
	}
	if status >= 200 && status < 300 {
		s.good++
	}
	s.window.record(d)
	s.winN++
	s.total++
	if failed(status) {
		r.errors[statusLabel(status)]++
		s.winErrs++
	}
}

func failed(status int) bool { return status == 0 || status >= 400 }

// admitted reports whether an answer is the target's work rather than a refusal to
// take it on (shed, rate limited, unavailable) or no answer at all.
func admitted(status int) bool {
	return status != 0 && status != http.StatusServiceUnavailable && status != http.StatusTooManyRequests
}

// action records one finished action.
func (s *stats) action() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.actions++
}

func statusLabel(status int) string {
	if status == 0 {
		return "transport"
	}
	return strconv.Itoa(status)
}

// progress returns the window's figures and starts a new window.
func (s *stats) progress() (n, errs uint64, p50, p99 time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n, errs, p50, p99 = s.winN, s.winErrs, s.window.quantile(0.50), s.window.quantile(0.99)
	s.window, s.winN, s.winErrs = histogram{}, 0, 0
	return
}

func (s *stats) skip() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.skipped++
}

func (s *stats) count() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.total
}

// Report is the final result, also written as JSON.
type Report struct {
	Target      string        `json:"target"`
	Mode        string        `json:"mode"` // "concurrency", "rate" or "burst"
	Concurrency int           `json:"concurrency,omitempty"`
	Rate        float64       `json:"rate,omitempty"`
	Users       int           `json:"users"`
	Mix         string        `json:"mix"`
	Duration    float64       `json:"duration_s"`
	Requests    uint64        `json:"requests"`
	Errors      uint64        `json:"errors"`
	RPS         float64       `json:"rps"`
	Skipped     uint64        `json:"skipped,omitempty"` // rate mode: actions not started, every slot busy
	Actions     uint64        `json:"actions"`
	ActionRate  float64       `json:"actions_per_s"`
	Good        uint64        `json:"good"`        // 2xx answers
	Goodput     float64       `json:"goodput_rps"` // 2xx answers per second
	Routes      []RouteReport `json:"routes"`
	All         RouteReport   `json:"all"`
	// Admitted are the answers the target took on (all but 503, 429 and no answer):
	// under overload, the latency of the work it admitted.
	Admitted RouteReport `json:"admitted"`
}

// RouteReport are one route's figures; latencies in milliseconds.
type RouteReport struct {
	Route  string            `json:"route"`
	Count  uint64            `json:"count"`
	RPS    float64           `json:"rps"`
	Errors map[string]uint64 `json:"errors"`
	P50    float64           `json:"p50_ms"`
	P90    float64           `json:"p90_ms"`
	P99    float64           `json:"p99_ms"`
	Max    float64           `json:"max_ms"`
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func (s *stats) report(elapsed time.Duration) Report {
	s.mu.Lock()
	defer s.mu.Unlock()
	var all routeStats
	all.errors = map[string]uint64{}
	var r Report
	for _, name := range slices.Sorted(maps.Keys(s.routes)) {
		rs := s.routes[name]
		all.hist.merge(&rs.hist)
		for k, v := range rs.errors {
			all.errors[k] += v
		}
		r.Routes = append(r.Routes, rs.summary(name, elapsed))
	}
	r.All = all.summary("all", elapsed)
	r.Requests = r.All.Count
	for _, v := range all.errors {
		r.Errors += v
	}
	r.Duration = elapsed.Seconds()
	r.RPS = r.All.RPS
	secs := max(elapsed.Seconds(), 1e-9)
	r.Actions, r.ActionRate = s.actions, float64(s.actions)/secs
	r.Good, r.Goodput = s.good, float64(s.good)/secs
	adm := routeStats{hist: s.admitted}
	r.Admitted = adm.summary("admitted", elapsed)
	r.Skipped = s.skipped
	return r
}

func (rs *routeStats) summary(name string, elapsed time.Duration) RouteReport {
	return RouteReport{
		Route: name, Count: rs.hist.n, RPS: float64(rs.hist.n) / max(elapsed.Seconds(), 1e-9),
		Errors: maps.Clone(rs.errors),
		P50:    ms(rs.hist.quantile(0.50)), P90: ms(rs.hist.quantile(0.90)),
		P99: ms(rs.hist.quantile(0.99)), Max: ms(rs.hist.maximum()),
	}
}

// writeText prints the report as a table.
func (r Report) writeText(w io.Writer) {
	fmt.Fprintf(w, "\n%s, %s, %d users, %.1f s: %d requests, %d errors, %.0f req/s\n\n",
		r.Target, r.describeLoad(), r.Users, r.Duration, r.Requests, r.Errors, r.RPS)
	fmt.Fprintf(w, "goodput %.0f answers/s (2xx); %d actions (%.1f/s)\n", r.Goodput, r.Actions, r.ActionRate)
	if r.Skipped > 0 {
		fmt.Fprintf(w, "%d actions skipped: every one of the %d slots was busy (the target is slower than the rate)\n\n", r.Skipped, r.Concurrency)
	}
	if n := r.All.Errors["429"]; n > 0 {
		// All virtual users come from one address, so on public routes they share one
		// bucket: a run that meets the limits measures them, not the shop.
		fmt.Fprintf(w, "%d answers were 429: the gateway limits each client address on public routes and each user (20/s, burst 40 by default).\n"+
			"To load past the limits, start the stack with them raised, e.g.\n"+
			"  KITSHOP_RATE_ANON=1e6 KITSHOP_RATE_ANON_BURST=1000000 KITSHOP_RATE_USER=1e6 KITSHOP_RATE_USER_BURST=1000000 make up\n\n", n)
	}
	fmt.Fprintf(w, "%-30s %8s %9s %8s %8s %8s %8s  %s\n", "route", "count", "req/s", "p50 ms", "p90 ms", "p99 ms", "max ms", "errors")
	for _, rr := range append(slices.Clone(r.Routes), r.All, r.Admitted) {
		fmt.Fprintf(w, "%-30s %8d %9.1f %8.2f %8.2f %8.2f %8.2f  %s\n",
			rr.Route, rr.Count, rr.RPS, rr.P50, rr.P90, rr.P99, rr.Max, errorList(rr.Errors))
	}
}

func (r Report) describeLoad() string {
	switch r.Mode {
	case "rate":
		return fmt.Sprintf("fixed rate %.0f actions/s", r.Rate)
	case "burst":
		return fmt.Sprintf("a burst of %d users at once", r.Concurrency)
	}
	return fmt.Sprintf("fixed concurrency %d", r.Concurrency)
}

func errorList(errs map[string]uint64) string {
	if len(errs) == 0 {
		return "-"
	}
	out := ""
	for _, k := range slices.Sorted(maps.Keys(errs)) {
		if out != "" {
			out += " "
		}
		out += fmt.Sprintf("%s×%d", k, errs[k])
	}
	return out
}

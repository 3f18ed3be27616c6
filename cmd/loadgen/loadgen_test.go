package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kitshop/kitshop/pkg/admission"
)

func TestHistogramQuantiles(t *testing.T) {
	var h histogram
	for i := 1; i <= 10000; i++ {
		h.record(time.Duration(i) * time.Microsecond)
	}
	for _, tc := range []struct {
		q    float64
		want float64 // µs
	}{{0.5, 5000}, {0.9, 9000}, {0.99, 9900}, {1, 10000}} {
		got := float64(h.quantile(tc.q).Microseconds())
		if math.Abs(got-tc.want)/tc.want > 1.0/subBuckets {
			t.Errorf("q%.2f = %.0f µs, want %.0f within %.1f%%", tc.q, got, tc.want, 100.0/subBuckets)
		}
	}
	if h.maximum() != 10*time.Millisecond {
		t.Errorf("max = %s", h.maximum())
	}
}

func TestHistogramSmallAndEmpty(t *testing.T) {
	var h histogram
	if h.quantile(0.99) != 0 {
		t.Error("empty histogram has a quantile")
	}
	h.record(3 * time.Microsecond)
	h.record(-time.Second) // a clock step: recorded as 0, not a crash
	if got := h.quantile(1); got != 3*time.Microsecond {
		t.Errorf("q1 = %s, want 3µs", got)
	}
	if got := h.quantile(0.5); got != 0 {
		t.Errorf("q0.5 = %s, want 0", got)
	}
}

func TestBucketsCoverValues(t *testing.T) {
	for _, v := range []uint64{0, 1, 63, 64, 65, 127, 128, 1000, 123456, 1 << 40, math.MaxUint64 >> 1} {
		i := bucketOf(v)
		if upperBound(i) < v {
			t.Errorf("value %d in bucket %d whose upper bound is %d", v, i, upperBound(i))
		}
		if i > 0 && upperBound(i-1) >= v {
			t.Errorf("value %d in bucket %d, but bucket %d ends at %d", v, i, i-1, upperBound(i-1))
		}
	}
}

func TestHistogramMerge(t *testing.T) {
	var a, b histogram
	for i := 0; i < 100; i++ {
		a.record(time.Millisecond)
		b.record(10 * time.Millisecond)
	}
	a.merge(&b)
	if a.n != 200 || a.maximum() != 10*time.Millisecond {
		t.Fatalf("n=%d max=%s", a.n, a.maximum())
	}
	if p := a.quantile(0.25); p > 1100*time.Microsecond {
		t.Errorf("p25 = %s, want about 1ms", p)
	}
	if p := a.quantile(0.75); p < 9*time.Millisecond {
		t.Errorf("p75 = %s, want about 10ms", p)
	}
}

func TestParseMix(t *testing.T) {
	for _, tc := range []struct {
		in, err string
	}{
		{"browse=1", ""},
		{"browse=60, cart=30,checkout=10", ""},
		{"checkout=1,cart=0", ""},
		{"browse", "not action=weight"},
		{"fly=3", "unknown action"},
		{"cart=-1", "whole number"},
		{"cart=x", "whole number"},
		{"cart=1,cart=2", "twice"},
		{"cart=0", "no action"},
	} {
		_, err := parseMix(tc.in)
		if (err == nil) != (tc.err == "") || (err != nil && !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("parseMix(%q) = %v, want error containing %q", tc.in, err, tc.err)
		}
	}
}

func TestMixPicksByWeight(t *testing.T) {
	m, err := parseMix("browse=60,cart=0,product=30,checkout=10")
	if err != nil {
		t.Fatal(err)
	}
	// Every number maps to the action whose weight range holds it.
	for n, want := range map[int]string{0: actBrowse, 59: actBrowse, 60: actProduct, 89: actProduct, 90: actCheckout, 99: actCheckout} {
		if got := m.pickAt(n); got != want {
			t.Errorf("pickAt(%d) = %s, want %s", n, got, want)
		}
	}
	r := rand.New(rand.NewPCG(1, 2))
	counts := map[string]int{}
	const n = 100_000
	for range n {
		counts[m.pick(r)]++
	}
	if counts[actCart] != 0 {
		t.Errorf("cart has weight 0 but was picked %d times", counts[actCart])
	}
	for action, share := range map[string]float64{actBrowse: 0.6, actProduct: 0.3, actCheckout: 0.1} {
		if got := float64(counts[action]) / n; math.Abs(got-share) > 0.01 {
			t.Errorf("%s picked %.3f of the time, want %.2f", action, got, share)
		}
	}
}

func TestCheckTarget(t *testing.T) {
	resolve := func(_ context.Context, host string) ([]net.IPAddr, error) {
		switch host {
		case "localhost":
			return []net.IPAddr{{IP: net.ParseIP("127.0.0.1")}, {IP: net.ParseIP("::1")}}, nil
		case "mixed.test":
			return []net.IPAddr{{IP: net.ParseIP("127.0.0.1")}, {IP: net.ParseIP("203.0.113.7")}}, nil
		}
		return nil, errors.New("no such host")
	}
	for _, tc := range []struct {
		url    string
		remote bool
		ok     bool
	}{
		{"http://127.0.0.1:8080", false, true},
		{"http://127.9.9.9:8080", false, true},
		{"http://[::1]:8080/", false, true},
		{"http://localhost:8080", false, true},
		{"https://localhost", false, true},
		{"http://10.0.0.1:8080", false, false},
		{"http://203.0.113.7", false, false},
		{"http://mixed.test", false, false},
		{"http://unknown.test", false, false},
		{"http://203.0.113.7", true, true},
		{"ftp://127.0.0.1", false, false},
		{"127.0.0.1:8080", false, false},
	} {
		_, err := checkTarget(context.Background(), tc.url, tc.remote, resolve)
		if (err == nil) != tc.ok {
			t.Errorf("checkTarget(%q, remote=%v) = %v, want ok=%v", tc.url, tc.remote, err, tc.ok)
		}
	}
}

func TestFlagBounds(t *testing.T) {
	for _, args := range [][]string{
		{"-duration", "2h"},
		{"-duration", "0s"},
		{"-requests", "0"},
		{"-requests", "1000000000"},
		{"-concurrency", "0"},
		{"-rate", "-1"},
		{"-concurrency", "8", "-users", "1"},
		{"-products", "-1"},
		{"-burst", "-rate", "10"},
		{"-burst", "-url", "http://127.0.0.1:1/"},
		{"-curve", "0,1"},
		{"-curve", "1,two"},
		{"-curve", "1,2", "-rate", "10"},
	} {
		if _, err := parseFlags(args, &strings.Builder{}); err == nil {
			t.Errorf("parseFlags(%v) accepted", args)
		}
	}
	c, err := parseFlags([]string{"-concurrency", "32"}, &strings.Builder{})
	if err != nil || c.users != 32 {
		t.Errorf("users default to the concurrency: %+v %v", c, err)
	}
}

func TestStatsReport(t *testing.T) {
	s := newStats()
	s.add("GET /a", 200, time.Millisecond)
	s.add("GET /a", 503, 2*time.Millisecond)
	s.add("GET /b", 0, 3*time.Millisecond)
	s.add("GET /b", 422, 3*time.Millisecond)
	r := s.report(time.Second)
	if r.Requests != 4 || r.Errors != 3 || len(r.Routes) != 2 {
		t.Fatalf("report %+v", r)
	}
	if e := r.Routes[1].Errors; e["transport"] != 1 || e["422"] != 1 {
		t.Errorf("errors of /b: %v", e)
	}
	if r.All.Max != 3 {
		t.Errorf("max %v ms", r.All.Max)
	}
	var b strings.Builder
	r.writeText(&b)
	if !strings.Contains(b.String(), "503×1") {
		t.Errorf("text report lacks the error count:\n%s", b.String())
	}
	if strings.Contains(b.String(), "KITSHOP_RATE_ANON") {
		t.Errorf("rate-limit hint without a 429:\n%s", b.String())
	}
}

// TestReportExplainsRateLimits: a run that met the gateway's rate limits says how to
// raise them.
func TestReportExplainsRateLimits(t *testing.T) {
	s := newStats()
	s.add("GET /v1/products", 200, time.Millisecond)
	s.add("GET /v1/products", 429, time.Millisecond)
	s.add("GET /v1/cart", 429, time.Millisecond)
	var b strings.Builder
	s.report(time.Second).writeText(&b)
	for _, want := range []string{"2 answers were 429", "KITSHOP_RATE_ANON=", "KITSHOP_RATE_USER="} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, b.String())
		}
	}
}

// TestURLMode: -url loads one URL with GETs, no accounts made, at a fixed rate or
// concurrency, and stops at -requests.
func TestURLMode(t *testing.T) {
	var hits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet || r.URL.RequestURI() != "/v1/products/kit?x=1" || r.Header.Get("Authorization") != "" {
			http.Error(w, "unexpected "+r.Method+" "+r.URL.RequestURI(), http.StatusBadRequest)
			return
		}
		hits.Add(1)
	}))
	defer srv.Close()
	for _, mode := range [][]string{{"-concurrency", "3"}, {"-rate", "2000", "-concurrency", "8"}} {
		t.Run(mode[0], func(t *testing.T) {
			hits.Store(0)
			dir := t.TempDir()
			args := append([]string{"-url", srv.URL + "/v1/products/kit?x=1", "-requests", "40", "-duration", "20s",
				"-json", dir + "/r.json"}, mode...)
			var out, errOut strings.Builder
			if err := run(context.Background(), args, &out, &errOut); err != nil {
				t.Fatalf("run: %v\n%s", err, errOut.String())
			}
			var r struct {
				Requests int `json:"requests"`
				Errors   int `json:"errors"`
				Routes   []struct {
					Route string `json:"route"`
				} `json:"routes"`
			}
			b, err := os.ReadFile(dir + "/r.json")
			if err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal(b, &r); err != nil {
				t.Fatal(err)
			}
			if r.Requests < 40 || r.Errors != 0 || len(r.Routes) != 1 || r.Routes[0].Route != "GET /v1/products/kit?x=1" {
				t.Fatalf("report %s", b)
			}
			if int(hits.Load()) < r.Requests {
				t.Fatalf("server saw %d GETs, report counts %d", hits.Load(), r.Requests)
			}
		})
	}
}

// TestUsersActOneAtATime: whatever the mode, a virtual user never has two requests in
// flight, every account takes part, and the load is the one asked for.
func TestUsersActOneAtATime(t *testing.T) {
	product, err := parseMix("product=1")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name               string
		users, concurrency int
		rate               float64
	}{
		{"concurrency, as many users", 4, 4, 0},
		{"concurrency, more users", 9, 3, 0},
		{"rate, as many users", 3, 3, 2000},
		{"rate, more users", 7, 3, 2000},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var (
				mu                 sync.Mutex
				inFlight, maxTotal int
				perUser            = map[string]int{}
				maxPerUser         = map[string]int{}
			)
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				who := r.Header.Get("Authorization")
				mu.Lock()
				inFlight++
				perUser[who]++
				maxTotal = max(maxTotal, inFlight)
				maxPerUser[who] = max(maxPerUser[who], perUser[who])
				mu.Unlock()
				time.Sleep(5 * time.Millisecond)
				mu.Lock()
				inFlight--
				perUser[who]--
				mu.Unlock()
			}))
			defer srv.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			g := &generator{base: srv.URL, http: srv.Client(), mix: product, skus: []string{"kit"},
				stats: newStats(), limit: 150, cancel: cancel}
			users := make([]*user, tc.users)
			for i := range users {
				users[i] = &user{token: "u" + strconv.Itoa(i)}
			}
			g.setUsers(users)
			if tc.rate > 0 {
				g.runRate(ctx, tc.rate, tc.concurrency)
			} else {
				g.runConcurrency(ctx, tc.concurrency)
			}
			mu.Lock()
			defer mu.Unlock()
			if len(maxPerUser) != tc.users {
				t.Errorf("%d of %d users acted", len(maxPerUser), tc.users)
			}
			for who, n := range maxPerUser {
				if n != 1 {
					t.Errorf("%s had %d requests in flight at once", who, n)
				}
			}
			if maxTotal != tc.concurrency {
				t.Errorf("at most %d requests in flight, want %d", maxTotal, tc.concurrency)
			}
		})
	}
}

// TestBuyCart: buycart puts an item in the cart, then checks out the cart: an order
// request with a card and an Idempotency-Key but no items.
func TestBuyCart(t *testing.T) {
	var (
		mu   sync.Mutex
		seen []string
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body map[string]json.RawMessage
		_ = json.NewDecoder(r.Body).Decode(&body)
		_, items := body["items"]
		_, payment := body["payment"]
		mu.Lock()
		defer mu.Unlock()
		seen = append(seen, fmt.Sprintf("%s %s items=%v payment=%v key=%v",
			r.Method, r.URL.Path, items, payment, r.Header.Get("Idempotency-Key") != ""))
	}))
	defer srv.Close()
	buy, err := parseMix("buycart=1")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	g := &generator{base: srv.URL, http: srv.Client(), mix: buy, skus: []string{"kit"},
		stats: newStats(), limit: 2, cancel: cancel}
	g.setUsers([]*user{{token: "u"}})
	g.runConcurrency(ctx, 1)
	mu.Lock()
	defer mu.Unlock()
	want := []string{
		"PUT /v1/cart/items/kit items=false payment=false key=false",
		"POST /v1/orders items=false payment=true key=true",
	}
	if !slices.Equal(seen, want) {
		t.Errorf("requests\n%s\nwant\n%s", strings.Join(seen, "\n"), strings.Join(want, "\n"))
	}
	if r := g.stats.report(time.Second); len(r.Routes) != 2 || r.Routes[0].Route != "POST /v1/orders (cart)" {
		t.Errorf("routes %+v", r.Routes)
	}
}

// TestActionStopsAtFirstFailure: an action goes on only while its requests are
// answered 2xx, as a shopper's would.
func TestActionStopsAtFirstFailure(t *testing.T) {
	for _, tc := range []struct {
		action string
		fail   string // the route answered fail
		status int
		want   []string
	}{
		{"browse", "", 0, []string{"GET /v1/products", "GET /v1/products/kit"}},
		{"browse", "GET /v1/products", http.StatusServiceUnavailable, []string{"GET /v1/products"}},
		{"buycart", "PUT /v1/cart/items/kit", http.StatusServiceUnavailable, []string{"PUT /v1/cart/items/kit"}},
		{"buycart", "PUT /v1/cart/items/kit", http.StatusTooManyRequests, []string{"PUT /v1/cart/items/kit"}},
		{"cart", "", 0, []string{"PUT /v1/cart/items/kit", "GET /v1/cart", "DELETE /v1/cart/items/kit"}},
		{"cart", "PUT /v1/cart/items/kit", http.StatusUnprocessableEntity, []string{"PUT /v1/cart/items/kit"}},
		{"cart", "GET /v1/cart", http.StatusServiceUnavailable, []string{"PUT /v1/cart/items/kit", "GET /v1/cart"}},
	} {
		t.Run(fmt.Sprintf("%s %s %d", tc.action, tc.fail, tc.status), func(t *testing.T) {
			var (
				mu   sync.Mutex
				seen []string
			)
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				route := r.Method + " " + r.URL.Path
				mu.Lock()
				seen = append(seen, route)
				mu.Unlock()
				if route == tc.fail {
					w.WriteHeader(tc.status)
				}
			}))
			defer srv.Close()
			m, err := parseMix(tc.action + "=1")
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			g := &generator{base: srv.URL, http: srv.Client(), mix: m, skus: []string{"kit"}, stats: newStats(), limit: 100, cancel: cancel}
			u := &user{token: "u"}
			g.setUsers([]*user{u})
			// This seed has cart remove its item, so that the case whose cart read fails
			// shows the remove left out, not merely not drawn.
			g.act(ctx, rand.New(rand.NewPCG(3, 3)), u, tc.action)
			mu.Lock()
			defer mu.Unlock()
			if !slices.Equal(seen, tc.want) {
				t.Errorf("requests %v, want %v", seen, tc.want)
			}
		})
	}
}

// TestUsersKeepCookies: a cookie the target sets on one user's answer comes back
// with that user's next request, and with no other user's.
func TestUsersKeepCookies(t *testing.T) {
	var mu sync.Mutex
	sent := map[string]string{} // user's token → the ticket its product request brought
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		token := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
		switch r.URL.Path {
		case "/v1/products":
			if token == "a" {
				http.SetCookie(w, &http.Cookie{Name: "ticket", Value: "for-a", Path: "/", MaxAge: 60})
			}
		default:
			ticket := ""
			if c, err := r.Cookie("ticket"); err == nil {
				ticket = c.Value
			}
			mu.Lock()
			sent[token] = ticket
			mu.Unlock()
		}
	}))
	defer srv.Close()
	m, err := parseMix(actBrowse + "=1")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	g := &generator{base: srv.URL, http: srv.Client(), mix: m, skus: []string{"kit"}, stats: newStats(), limit: 100, cancel: cancel}
	a, b := &user{token: "a"}, &user{token: "b"}
	g.setUsers([]*user{a, b})
	r := rand.New(rand.NewPCG(1, 1))
	g.act(ctx, r, a, actBrowse)
	g.act(ctx, r, b, actBrowse)
	if want := map[string]string{"a": "for-a", "b": ""}; !maps.Equal(sent, want) {
		t.Errorf("tickets sent back %v, want %v", sent, want)
	}
}

// TestShopMix: against a stand-in gateway, a run registers and logs in its users,
// creates its products with the admin account, and then every user acts with its own
// token on every route of the mix.
func TestShopMix(t *testing.T) {
	var (
		mu       sync.Mutex
		products []string
		tokens   = map[string]bool{}
		routes   = map[string]bool{}
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body map[string]any
		_ = json.NewDecoder(r.Body).Decode(&body)
		mu.Lock()
		defer mu.Unlock()
		switch route := r.Method + " " + r.URL.Path; {
		case route == "POST /v1/users":
			w.WriteHeader(http.StatusCreated)
		case route == "POST /v1/auth/login":
			fmt.Fprintf(w, `{"access_token":"t-%s"}`, body["email"])
		case route == "POST /v1/products":
			if r.Header.Get("Authorization") != "Bearer t-admin@example.test" {
				w.WriteHeader(http.StatusForbidden)
				return
			}
			products = append(products, body["sku"].(string))
			w.WriteHeader(http.StatusCreated)
		default:
			if !strings.HasPrefix(r.Header.Get("Authorization"), "Bearer t-lg-") {
				w.WriteHeader(http.StatusUnauthorized)
				return
			}
			tokens[r.Header.Get("Authorization")] = true
			routes[r.Method+" "+strings.Split(r.URL.Path, "/")[2]] = true
		}
	}))
	defer srv.Close()
	var out, errOut strings.Builder
	args := []string{"-target", srv.URL, "-admin-email", "admin@example.test", "-admin-password", "pw",
		"-products", "3", "-concurrency", "3", "-users", "5", "-duration", "5s", "-requests", "300",
		"-mix", "browse=1,product=1,cart=1,checkout=1,buycart=1"}
	if err := run(context.Background(), args, &out, &errOut); err != nil {
		t.Fatalf("run: %v\n%s", err, errOut.String())
	}
	if !strings.Contains(out.String(), " 0 errors") {
		t.Errorf("report:\n%s", out.String())
	}
	mu.Lock()
	defer mu.Unlock()
	if len(products) != 3 {
		t.Errorf("products created: %v", products)
	}
	if len(tokens) != 5 {
		t.Errorf("%d users acted, want 5: %v", len(tokens), tokens)
	}
	for _, want := range []string{"GET products", "PUT cart", "GET cart", "POST orders"} {
		if !routes[want] {
			t.Errorf("no %s; routes %v", want, routes)
		}
	}
}

// TestBurst: every user acts exactly once and all of them are in flight together.
func TestBurst(t *testing.T) {
	product, err := parseMix("product=1")
	if err != nil {
		t.Fatal(err)
	}
	const users = 12
	var (
		mu                sync.Mutex
		inFlight, maxSeen int
		seen              = map[string]int{}
		arrived           = make(chan struct{})
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		inFlight++
		maxSeen = max(maxSeen, inFlight)
		seen[r.Header.Get("Authorization")]++
		if inFlight == users {
			close(arrived)
		}
		mu.Unlock()
		// Held until every user's request has arrived: a burst that released users one
		// after the other would never get here and the run would time out.
		select {
		case <-arrived:
		case <-time.After(5 * time.Second):
		}
		mu.Lock()
		inFlight--
		mu.Unlock()
	}))
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	g := &generator{base: srv.URL, http: srv.Client(), mix: product, skus: []string{"kit"},
		stats: newStats(), limit: 1000, cancel: cancel}
	all := make([]*user, users)
	for i := range all {
		all[i] = &user{token: "u" + strconv.Itoa(i)}
	}
	g.setUsers(all)
	g.runBurst(ctx)

	mu.Lock()
	defer mu.Unlock()
	if maxSeen != users {
		t.Errorf("at most %d requests in flight, want all %d", maxSeen, users)
	}
	if len(seen) != users {
		t.Errorf("%d of %d users acted", len(seen), users)
	}
	for who, n := range seen {
		if n != 1 {
			t.Errorf("%s acted %d times, want once", who, n)
		}
	}
	if got := g.stats.count(); got != users {
		t.Errorf("%d answers recorded, want %d", got, users)
	}
	if len(g.idle) != users {
		t.Errorf("%d users given back, want %d", len(g.idle), users)
	}
}

// TestCurve: the saturation point of a target that works on two requests at once, lets
// a few wait a moment and sheds the rest, then a step below it (all answered) and one
// above it (some shed, and the admitted ones counted apart).
func TestCurve(t *testing.T) {
	limit := admission.NewLimiter(2, 50*time.Millisecond, nil)
	srv := httptest.NewServer(limit.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(5 * time.Millisecond)
	})))
	defer srv.Close()
	out := filepath.Join(t.TempDir(), "curve.json")
	var stdout, stderr strings.Builder
	err := run(context.Background(), []string{"-url", srv.URL + "/x", "-curve", "0.5,3", "-concurrency", "2", "-users", "64",
		"-duration", "700ms", "-settle", "50ms", "-json", out}, &stdout, &stderr)
	if err != nil {
		t.Fatalf("%v\n%s", err, stderr.String())
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var curve Curve
	if err := json.Unmarshal(b, &curve); err != nil {
		t.Fatal(err)
	}
	if curve.Saturation.ActionRate <= 0 || len(curve.Steps) != 2 {
		t.Fatalf("saturation %.1f actions/s, %d steps", curve.Saturation.ActionRate, len(curve.Steps))
	}
	below, above := curve.Steps[0], curve.Steps[1]
	if below.Multiple != 0.5 || below.Errors != 0 || below.Good == 0 {
		t.Errorf("below saturation: %+v", below.Report)
	}
	if above.Multiple != 3 || above.All.Errors["503"] == 0 || above.Admitted.Count != above.Good {
		t.Errorf("above saturation: 503s %d, admitted %d, good %d", above.All.Errors["503"], above.Admitted.Count, above.Good)
	}
}

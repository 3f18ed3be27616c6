package gateway

import (
	"bytes"
	"crypto/tls"
	"encoding/json"
	"io"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-kit/kit/sd"
	"github.com/openzipkin/zipkin-go"
	"github.com/openzipkin/zipkin-go/reporter/recorder"

	"github.com/kitshop/kitshop/pkg/auth"
	"github.com/kitshop/kitshop/pkg/client"
	"github.com/kitshop/kitshop/pkg/clientip"
	"github.com/kitshop/kitshop/pkg/observe"
	"github.com/kitshop/kitshop/pkg/testenv"
)

// echoed is what the echo upstream saw.
type echoed struct {
	Method string      `json:"method"`
	Path   string      `json:"path"`
	Query  string      `json:"query"`
	Header http.Header `json:"header"`
	Body   string      `json:"body"`
}

// echo answers with what it received; X-Echo-Status picks the status and
// X-Echo-Sleep delays the answer.
func echo(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	if d, err := time.ParseDuration(r.Header.Get("X-Echo-Sleep")); err == nil {
		select {
		case <-time.After(d):
		case <-r.Context().Done():
			return
		}
	}
	status := http.StatusOK
	if s, err := strconv.Atoi(r.Header.Get("X-Echo-Status")); err == nil {
		status = s
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Upstream", "echo")
	w.Header().Set("Proxy-Authenticate", "Basic")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(echoed{r.Method, r.URL.Path, r.URL.RawQuery, r.Header, string(body)})
}

func decodeEcho(t *testing.T, body string) echoed {
	t.Helper()
	var e echoed
	if err := json.Unmarshal([]byte(body), &e); err != nil {
		t.Fatalf("echo answer %q: %v", body, err)
	}
	return e
}

func errorCode(t *testing.T, body string) string {
	t.Helper()
	var b struct {
		Error struct{ Code string } `json:"error"`
	}
	if err := json.Unmarshal([]byte(body), &b); err != nil {
		t.Fatalf("error body %q: %v", body, err)
	}
	return b.Error.Code
}

// deadAddr is an address nothing listens on.
func deadAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

func TestRoutingAndErrors(t *testing.T) {
	keys := newTestKeys(t)
	inv := startInventory(t, keys.verifier)
	order := startInstance(t, http.HandlerFunc(echo))
	gw := startGateway(t, withUpstreams(testOptions(keys.verifier), map[string][]string{
		InventoryService: {inv.addr()},
		OrderService:     {order.addr()},
	}))
	customer := "Bearer " + keys.token(t, auth.Caller{UserID: "u1", Email: "u1@example.com", Role: auth.RoleCustomer})

	tests := []struct {
		name, method, path string
		header             map[string]string
		status             int
		code               string
	}{
		{"product", "GET", "/v1/products/" + testSKU, nil, 200, ""},
		{"catalogue", "GET", "/v1/products?limit=5", nil, 200, ""},
		{"upstream 404 relayed", "GET", "/v1/products/nope", nil, 404, "product_not_found"},
		{"unknown route", "GET", "/v2/anything", nil, 404, "not_found"},
		{"internal never routed", "POST", "/internal/v1/reservations", nil, 404, "not_found"},
		{"internal GET never routed", "GET", "/internal/v1/reservations/o1", nil, 404, "not_found"},
		{"wrong method", "DELETE", "/v1/products", nil, 405, "method_not_allowed"},
		{"wrong method on a 🔒 route", "PATCH", "/v1/cart", nil, 405, "method_not_allowed"},
		{"no token", "GET", "/v1/cart", nil, 401, "missing_token"},
		{"bad token", "GET", "/v1/cart", map[string]string{"Authorization": "Bearer nonsense"}, 401, "invalid_token"},
		{"customer on admin route", "POST", "/v1/products", map[string]string{"Authorization": customer}, 403, "forbidden"},
		{"customer on 🔒 route", "GET", "/v1/cart", map[string]string{"Authorization": customer}, 200, ""},
		{"no notification instance", "GET", "/v1/notifications", map[string]string{"Authorization": customer}, 503, "service_unavailable"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := call(t, tt.method, gw.URL+tt.path, nil, tt.header)
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tt.status, body)
			}
			if tt.code != "" {
				if got := errorCode(t, body); got != tt.code {
					t.Errorf("code %q, want %q", got, tt.code)
				}
				if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
					t.Errorf("Content-Type %q", ct)
				}
			}
			if tt.status == 401 && !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Bearer") {
				t.Errorf("401 without a Bearer challenge: %v", resp.Header)
			}
			if tt.status == 503 && resp.Header.Get("Retry-After") == "" {
				t.Error("503 without Retry-After")
			}
			if resp.Header.Get("X-Request-ID") == "" {
				t.Error("no X-Request-ID")
			}
		})
	}
	// Inventory's own answer, through the gateway, is byte for byte what it wrote, with
	// the request ID after its code and message.
	_, direct := call(t, "GET", inv.srv.URL+"/v1/products/nope", nil, nil)
	resp, via := call(t, "GET", gw.URL+"/v1/products/nope", nil, nil)
	if want := strings.TrimSuffix(direct, "}}\n") + `,"request_id":"` + resp.Header.Get("X-Request-Id") + `"}}` + "\n"; via != want {
		t.Errorf("relayed 404 body %q, want %q (upstream wrote %q)", via, want, direct)
	}
}

func TestForwarding(t *testing.T) {
	keys := newTestKeys(t)
	order := startInstance(t, http.HandlerFunc(echo))
	gw := startGateway(t, withUpstreams(testOptions(keys.verifier), map[string][]string{OrderService: {order.addr()}}))
	token := keys.token(t, auth.Caller{UserID: "u1", Email: "u1@example.com", Role: auth.RoleCustomer})

	resp, body := call(t, "POST", gw.URL+"/v1/orders?x=1&y=%2F", strings.NewReader(`{"payment":{}}`), map[string]string{
		"Authorization":       "Bearer " + token,
		"Content-Type":        "application/json",
		"Idempotency-Key":     "key-1",
		"X-Request-ID":        "req-123",
		"X-Forwarded-For":     "6.6.6.6",
		"Proxy-Authorization": "Basic c2VjcmV0",
		"Connection":          "X-Hop",
		"X-Hop":               "dropped",
		"X-Echo-Status":       "201",
		"B3":                  "spoofed-trace",
		"X-B3-TraceId":        "463ac35c9f6413ad",
		"X-Real-IP":           "6.6.6.6",
		"Forwarded":           "for=6.6.6.6",
		"Expect":              "100-continue",
	})
	if resp.StatusCode != 201 {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	got := decodeEcho(t, body)
	checks := []struct{ what, got, want string }{
		{"method", got.Method, "POST"},
		{"path", got.Path, "/v1/orders"},
		{"query", got.Query, "x=1&y=%2F"},
		{"body", got.Body, `{"payment":{}}`},
		{"Authorization", got.Header.Get("Authorization"), "Bearer " + token},
		{"Content-Type", got.Header.Get("Content-Type"), "application/json"},
		{"Idempotency-Key", got.Header.Get("Idempotency-Key"), "key-1"},
		{"X-Request-ID upstream", got.Header.Get("X-Request-ID"), "req-123"},
		{"X-Request-ID echoed", resp.Header.Get("X-Request-ID"), "req-123"},
		{"X-Forwarded-For is the client's address", got.Header.Get("X-Forwarded-For"), "127.0.0.1"},
		{"Proxy-Authorization dropped", got.Header.Get("Proxy-Authorization"), ""},
		{"Connection-listed header dropped", got.Header.Get("X-Hop"), ""},
		{"client's B3 dropped", got.Header.Get("B3"), ""},
		{"X-B3-TraceId is the gateway's trace, not the client's", got.Header.Get("X-B3-TraceId"), resp.Header.Get("X-Trace-Id")},
		{"client's X-Real-IP dropped", got.Header.Get("X-Real-IP"), ""},
		{"client's Forwarded dropped", got.Header.Get("Forwarded"), ""},
		{"Expect answered by the gateway, not forwarded", got.Header.Get("Expect"), ""},
		{"upstream header relayed", resp.Header.Get("X-Upstream"), "echo"},
		{"upstream hop-by-hop header dropped", resp.Header.Get("Proxy-Authenticate"), ""},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s: %q, want %q", c.what, c.got, c.want)
		}
	}
	if got.Header.Get("X-B3-TraceId") == "463ac35c9f6413ad" {
		t.Error("the client's X-B3-TraceId went upstream")
	}

	// Without an X-Request-ID (or with an unusable one) the gateway makes one up.
	for _, given := range []string{"", strings.Repeat("x", 200), "two words"} {
		resp, body := call(t, "GET", gw.URL+"/v1/cart", nil, map[string]string{"Authorization": "Bearer " + token, "X-Request-ID": given})
		id := resp.Header.Get("X-Request-ID")
		if len(id) != 32 || id == given {
			t.Errorf("given %q: X-Request-ID %q", given, id)
		}
		if up := decodeEcho(t, body).Header.Get("X-Request-ID"); up != id {
			t.Errorf("upstream saw request ID %q, client got %q", up, id)
		}
	}
}

func TestBodyLimit(t *testing.T) {
	keys := newTestKeys(t)
	order := startInstance(t, http.HandlerFunc(echo))
	gw := startGateway(t, withUpstreams(testOptions(keys.verifier), map[string][]string{OrderService: {order.addr()}}))
	auth := map[string]string{"Authorization": "Bearer " + keys.token(t, auth.Caller{UserID: "u1", Role: auth.RoleCustomer}), "X-Echo-Status": "201"}

	exact := bytes.Repeat([]byte("a"), DefaultMaxBody)
	if resp, body := call(t, "POST", gw.URL+"/v1/orders", bytes.NewReader(exact), auth); resp.StatusCode != 201 {
		t.Fatalf("1 MiB body: status %d: %.200s", resp.StatusCode, body)
	}
	over := append(exact, 'a')
	if resp, body := call(t, "POST", gw.URL+"/v1/orders", bytes.NewReader(over), auth); resp.StatusCode != 413 || errorCode(t, body) != "body_too_large" {
		t.Errorf("1 MiB + 1 with Content-Length: status %d: %s", resp.StatusCode, body)
	}
	// Chunked, so the size is only known by reading.
	if resp, body := call(t, "POST", gw.URL+"/v1/orders", io.MultiReader(bytes.NewReader(over)), auth); resp.StatusCode != 413 {
		t.Errorf("1 MiB + 1 chunked: status %d: %s", resp.StatusCode, body)
	}
	if n := order.hits.Load(); n != 1 {
		t.Errorf("upstream saw %d requests, want only the one within the limit", n)
	}
}

func TestRateLimits(t *testing.T) {
	keys := newTestKeys(t)
	inv := startInventory(t, keys.verifier)
	order := startInstance(t, http.HandlerFunc(echo))
	gateway := func(anon, user Limit) *httptest.Server {
		o := withUpstreams(testOptions(keys.verifier), map[string][]string{InventoryService: {inv.addr()}, OrderService: {order.addr()}})
		o.AnonLimit, o.UserLimit = anon, user
		return startGateway(t, o)
	}
	statuses := func(gw *httptest.Server, n int, path string, header map[string]string) (got []int, last *http.Response) {
		for range n {
			resp, _ := call(t, "GET", gw.URL+path, nil, header)
			got = append(got, resp.StatusCode)
			last = resp
		}
		return got, last
	}
	alice := map[string]string{"Authorization": "Bearer " + keys.token(t, auth.Caller{UserID: "alice", Role: auth.RoleCustomer})}
	bob := map[string]string{"Authorization": "Bearer " + keys.token(t, auth.Caller{UserID: "bob", Role: auth.RoleCustomer})}
	unlimited := Limit{Rate: 1e6, Burst: 1e6}

	t.Run("per address", func(t *testing.T) {
		gw := gateway(Limit{Rate: 0.5, Burst: 2}, unlimited)
		got, last := statuses(gw, 3, "/v1/products/"+testSKU, nil)
		if got[0] != 200 || got[1] != 200 || got[2] != 429 {
			t.Fatalf("anonymous: %v, want 200 200 429", got)
		}
		if ra, _ := strconv.Atoi(last.Header.Get("Retry-After")); ra < 1 || ra > 2 {
			t.Errorf("Retry-After %q, want 1 or 2 s at 0.5 requests a second", last.Header.Get("Retry-After"))
		}
	})
	t.Run("per user", func(t *testing.T) {
		gw := gateway(unlimited, Limit{Rate: 0.5, Burst: 3})
		if got, _ := statuses(gw, 4, "/v1/cart", alice); got[2] != 200 || got[3] != 429 {
			t.Errorf("alice: %v, want 3 × 200 then 429", got)
		}
		if got, _ := statuses(gw, 1, "/v1/cart", bob); got[0] != 200 {
			t.Errorf("bob after alice was limited: %v", got)
		}
	})
	// The address is limited before the token is looked at, so made-up tokens cost
	// their sender like any request.
	t.Run("address before token", func(t *testing.T) {
		gw := gateway(Limit{Rate: 0.5, Burst: 3}, unlimited)
		garbage := map[string]string{"Authorization": "Bearer made.up.token"}
		if got, _ := statuses(gw, 5, "/v1/cart", garbage); got[2] != 401 || got[3] != 429 || got[4] != 429 {
			t.Errorf("made-up tokens from one address: %v, want 3 × 401 then 429", got)
		}
		if got, _ := statuses(gw, 1, "/v1/cart", alice); got[0] != 429 {
			t.Errorf("a valid token from the address that spent its budget: %v, want 429", got)
		}
	})
}

// TestClientAddressBehindProxies: behind a trusted load balancer each client gets its
// own bucket and is the address sent upstream (login throttling uses it); a client
// cannot pick its address by sending X-Forwarded-For to a gateway that trusts no
// proxy; an IPv6 client is one /64.
func TestClientAddressBehindProxies(t *testing.T) {
	echoing := startInstance(t, http.HandlerFunc(echo))
	lb, err := clientip.ParsePrefixes("127.0.0.0/8, ::1") // the test's own connections
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name         string
		trusted      []netip.Prefix
		first, other string // X-Forwarded-For of two clients
		otherLimited bool   // whether the second shares the first's bucket
		upstreamSees string // X-Forwarded-For the first's request carries upstream
	}{
		{"trusted proxy, two clients", lb, "198.51.100.1", "198.51.100.2", false, "198.51.100.1"},
		{"trusted proxy, spoofed entries", lb, "6.6.6.6, 198.51.100.1", "6.6.6.6, 198.51.100.2", false, "198.51.100.1"},
		{"no trusted proxy: the header is the client's word", nil, "198.51.100.1", "198.51.100.2", true, "127.0.0.1"},
		{"IPv6, one /64", lb, "2001:db8:1:1::1", "2001:db8:1:1::2", true, "2001:db8:1:1::1"},
		{"IPv6, another /64", lb, "2001:db8:1:1::1", "2001:db8:1:2::1", false, "2001:db8:1:1::1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// The catalogue route goes to the echo, which answers with what it got.
			o := withUpstreams(testOptions(newTestKeys(t).verifier), map[string][]string{InventoryService: {echoing.addr()}})
			o.AnonLimit = Limit{Rate: 0.01, Burst: 1}
			o.ClientIP = clientip.New(tt.trusted)
			gw := startGateway(t, o)
			resp, body := call(t, "GET", gw.URL+"/v1/products", nil, map[string]string{"X-Forwarded-For": tt.first})
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("first client: %d %s", resp.StatusCode, body)
			}
			if got := decodeEcho(t, body).Header.Get("X-Forwarded-For"); got != tt.upstreamSees {
				t.Errorf("upstream got X-Forwarded-For %q, want %q", got, tt.upstreamSees)
			}
			resp, _ = call(t, "GET", gw.URL+"/v1/products", nil, map[string]string{"X-Forwarded-For": tt.other})
			if limited := resp.StatusCode == http.StatusTooManyRequests; limited != tt.otherLimited {
				t.Errorf("second client: status %d, want limited %v", resp.StatusCode, tt.otherLimited)
			}
		})
	}
}

func TestUpstreamFailures(t *testing.T) {
	keys := newTestKeys(t)
	slow := startInstance(t, http.HandlerFunc(echo))
	gw := startGateway(t, withUpstreams(testOptions(keys.verifier), map[string][]string{OrderService: {slow.addr()}}))
	customer := map[string]string{
		"Authorization": "Bearer " + keys.token(t, auth.Caller{UserID: "u1", Role: auth.RoleCustomer}),
		"X-Echo-Sleep":  "10s",
	}
	begin := time.Now()
	resp, body := call(t, "GET", gw.URL+"/v1/cart", nil, customer)
	took := time.Since(begin)
	if resp.StatusCode != 504 || errorCode(t, body) != "upstream_timeout" {
		t.Errorf("slow upstream: status %d: %s", resp.StatusCode, body)
	}
	if took > 3*time.Second {
		t.Errorf("answered after %v; the route's timeout is 2 s", took)
	}

	begin = time.Now()
	resp, body = call(t, "GET", gw.URL+"/v1/products", nil, nil)
	if resp.StatusCode != 503 || errorCode(t, body) != "service_unavailable" || resp.Header.Get("Retry-After") == "" {
		t.Errorf("no instance: status %d, Retry-After %q: %s", resp.StatusCode, resp.Header.Get("Retry-After"), body)
	}
	if took := time.Since(begin); took > time.Second {
		t.Errorf("no instance answered after %v", took)
	}
}

// TestHungUpstreamOpensBreaker: answers that time out at the route's deadline count
// against the breaker, which then answers 503 at once instead of holding every
// request for the whole deadline.
func TestHungUpstreamOpensBreaker(t *testing.T) {
	keys := newTestKeys(t)
	order := startInstance(t, http.HandlerFunc(echo))
	o := testOptions(keys.verifier)
	o.Client.AttemptTimeout = 10 * time.Second // so the route's own deadline ends every call
	o.Client.Breaker.ErrorPercent = 90         // every one of them must count
	gw := startGateway(t, withUpstreams(o, map[string][]string{OrderService: {order.addr()}}))
	bearer := "Bearer " + keys.token(t, auth.Caller{UserID: "u1", Role: auth.RoleCustomer})
	var wg sync.WaitGroup
	for range 12 { // above the breaker's volume threshold of 10, all timing out
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, body := call(t, "GET", gw.URL+"/v1/cart", nil, map[string]string{"Authorization": bearer, "X-Echo-Sleep": "10s"})
			if resp.StatusCode != 504 {
				t.Errorf("hung upstream: status %d: %s", resp.StatusCode, body)
			}
		}()
	}
	wg.Wait()
	deadline := time.Now().Add(2 * time.Second)
	for {
		begin := time.Now()
		resp, body := call(t, "GET", gw.URL+"/v1/cart", nil, map[string]string{"Authorization": bearer, "X-Echo-Sleep": "10s"})
		if resp.StatusCode == 503 && errorCode(t, body) == "service_unavailable" && time.Since(begin) < time.Second {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("breaker still closed after 12 timeouts: status %d after %v: %s", resp.StatusCode, time.Since(begin), body)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// A POST is sent once unless it carries an Idempotency-Key; a GET is retried on the
// next instance when one refuses the connection.
func TestRetryOnlyWhenSafe(t *testing.T) {
	keys := newTestKeys(t)
	token := "Bearer " + keys.token(t, auth.Caller{UserID: "u1", Role: auth.RoleCustomer})
	for _, tt := range []struct {
		name     string
		method   string
		path     string
		header   map[string]string
		failures int
	}{
		{"GET retried", "GET", "/v1/cart", nil, 0},
		{"POST with a key retried", "POST", "/v1/orders", map[string]string{"Idempotency-Key": "k1"}, 0},
		{"POST without a key sent once", "POST", "/v1/orders", nil, 1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			live := startInstance(t, http.HandlerFunc(echo))
			gw := startGateway(t, withUpstreams(testOptions(keys.verifier), map[string][]string{OrderService: {live.addr(), deadAddr(t)}}))
			header := map[string]string{"Authorization": token}
			for k, v := range tt.header {
				header[k] = v
			}
			failures := 0
			for range 4 {
				resp, body := call(t, tt.method, gw.URL+tt.path, strings.NewReader("{}"), header)
				switch resp.StatusCode {
				case 200:
				case 503:
					failures++
				default:
					t.Fatalf("status %d: %s", resp.StatusCode, body)
				}
			}
			if failures != tt.failures {
				t.Errorf("%d failures, want %d", failures, tt.failures)
			}
		})
	}
}

func TestMetricsAndAccessLog(t *testing.T) {
	keys := newTestKeys(t)
	inv := startInventory(t, keys.verifier)
	var logs bytes.Buffer
	o := withUpstreams(testOptions(keys.verifier), map[string][]string{InventoryService: {inv.addr()}})
	o.Metrics = observe.NewMetrics("gateway")
	o.Logger = newTestLogger(&logs)
	gw := startGateway(t, o)
	call(t, "GET", gw.URL+"/v1/products/"+testSKU, nil, map[string]string{"X-Request-ID": "abc"})
	call(t, "GET", gw.URL+"/nowhere", nil, nil)

	line := firstLine(t, logs.String(), `"request_id":"abc"`)
	for _, want := range []string{`"route":"GET /v1/products/{sku}"`, `"status":200`, `"upstream":"` + inv.addr() + `"`, `"method":"GET"`, `"duration_ms":`} {
		if !strings.Contains(line, want) {
			t.Errorf("access log line lacks %s: %s", want, line)
		}
	}
	metrics := scrape(t, o.Metrics)
	for _, want := range []string{
		`kitshop_gateway_requests_total{route="GET /v1/products/{sku}",service="gateway",status="200"} 1`,
		`kitshop_gateway_requests_total{route="unmatched",service="gateway",status="404"} 1`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

// TestAdmissionPerClass: with its class's slots taken a checkout is answered 503
// overloaded at once, with Retry-After and without reaching the upstream, while a
// login, of the other class, goes through; the upstream learns the route's deadline,
// never the client's.
func TestAdmissionPerClass(t *testing.T) {
	keys := newTestKeys(t)
	order, user := startInstance(t, http.HandlerFunc(echo)), startInstance(t, http.HandlerFunc(echo))
	o := testOptions(keys.verifier)
	o.Admission = map[Class]Admit{ClassShop: {Limit: 1}}
	o.AdmitWait = 20 * time.Millisecond
	gw := startGateway(t, withUpstreams(o, map[string][]string{OrderService: {order.addr()}, UserService: {user.addr()}}))
	header := map[string]string{
		"Authorization":        "Bearer " + keys.token(t, auth.Caller{UserID: "u1", Role: auth.RoleCustomer}),
		"Idempotency-Key":      "k1",
		"X-Request-Timeout-Ms": "5", // a client's own is dropped: the gateway sends its route's
	}
	held := make(chan struct{})
	go func() {
		defer close(held)
		h := maps.Clone(header)
		h["X-Echo-Sleep"] = "500ms"
		if resp, body := call(t, "POST", gw.URL+"/v1/orders", strings.NewReader(`{}`), h); resp.StatusCode != 200 {
			t.Errorf("the admitted checkout: %d %s", resp.StatusCode, body)
		}
	}()
	for order.hits.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	for _, rt := range []string{"/v1/orders", "/v1/cart"} {
		method := map[string]string{"/v1/orders": "POST", "/v1/cart": "GET"}[rt]
		resp, body := call(t, method, gw.URL+rt, strings.NewReader(`{}`), header)
		if resp.StatusCode != 503 || errorCode(t, body) != "overloaded" || resp.Header.Get("Retry-After") == "" || order.hits.Load() != 1 {
			t.Fatalf("%s %s while the shop's slot is taken: %d, Retry-After %q, %d upstream calls: %s",
				method, rt, resp.StatusCode, resp.Header.Get("Retry-After"), order.hits.Load(), body)
		}
	}
	resp, body := call(t, "POST", gw.URL+"/v1/auth/login", strings.NewReader(`{}`), header)
	if resp.StatusCode != 200 {
		t.Fatalf("a login while the shop is full: %d %s", resp.StatusCode, body)
	}
	got := decodeEcho(t, body).Header.Get("X-Request-Timeout-Ms")
	if ms, err := strconv.Atoi(got); err != nil || ms < 4000 || ms > 5000 {
		t.Fatalf("the upstream was sent a deadline of %q ms, want the login route's (up to 5000)", got)
	}
	<-held
}

// TestVerifierClientOptions: the gateway fetches the user service's keys as it calls
// the user routes, pinned to the user service's identity.
func TestVerifierClientOptions(t *testing.T) {
	any, pinned := &tls.Config{ServerName: "any kitshop service"}, map[string]*tls.Config{}
	o := testOptions(nil)
	o.Services = map[string]string{UserService: "accounts"}
	o.Client.TLS = any
	o.UpstreamTLS = func(service string) *tls.Config {
		if pinned[service] == nil {
			pinned[service] = &tls.Config{ServerName: service}
		}
		return pinned[service]
	}
	if got := VerifierClientOptions(o).TLS; got == nil || got != pinned["accounts"] {
		t.Fatalf("the key fetch's TLS is for %q, want the one pinned to the user service (Consul name accounts)", got.ServerName)
	}
	o.Client.TLS = nil // TLS off
	if got := VerifierClientOptions(o).TLS; got != nil {
		t.Fatalf("TLS off: the key fetch's TLS is for %q", got.ServerName)
	}
}

// TestLoginFloodKeepsKeysFetchable: failing logins open the gateway→user breaker; a
// token signed with a key the gateway has not seen yet (after a rotation) still
// verifies, because the keys are fetched through a breaker of their own.
func TestLoginFloodKeepsKeysFetchable(t *testing.T) {
	old, fresh := newTestKeys(t), newTestKeys(t)
	var mu sync.Mutex
	published := []*auth.Signer{old.signer}
	user := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != auth.JWKSPath {
			http.Error(w, `{"error":{"code":"internal","message":"down"}}`, http.StatusInternalServerError)
			return
		}
		mu.Lock()
		var set auth.JWKS
		for _, s := range published {
			set.Keys = append(set.Keys, auth.PublicJWK(s.KeyID(), s.PublicKey()))
		}
		mu.Unlock()
		_ = json.NewEncoder(w).Encode(set)
	}))
	defer user.Close()
	userAddr := strings.TrimPrefix(user.URL, "http://")
	order := startInstance(t, http.HandlerFunc(echo))
	o := withUpstreams(testOptions(nil), map[string][]string{UserService: {userAddr}, OrderService: {order.addr()}})
	// The routes and the key fetch call the user service by the same Consul name, as
	// in production; breakers are process-wide, so the caller has the test's own name.
	const name = auth.UserService
	o.Services[UserService] = name
	routed := o.Instancer
	o.Instancer = func(service string) (sd.Instancer, error) {
		if service == name {
			return fixedInstancer{userAddr}, nil
		}
		return routed(service)
	}
	o.Client.Caller = testenv.Name("gateway")
	keys := auth.NewJWKSSource(auth.NewUserJWKSFetcher(fixedInstancer{userAddr}, VerifierClientOptions(o)), auth.JWKSConfig{MinRefresh: 50 * time.Millisecond})
	defer keys.Close()
	o.Verifier = auth.NewVerifier(keys, auth.DefaultIssuer, auth.DefaultAudience, time.Hour)
	gw := startGateway(t, o)
	cart := func(k testKeys) (*http.Response, string) {
		return call(t, "GET", gw.URL+"/v1/cart", nil, map[string]string{"Authorization": "Bearer " + k.token(t, auth.Caller{UserID: "u1", Role: auth.RoleCustomer})})
	}
	if resp, b := cart(old); resp.StatusCode != http.StatusOK {
		t.Fatalf("before the flood: %d %s", resp.StatusCode, b)
	}
	for range 30 {
		call(t, "POST", gw.URL+"/v1/auth/login", strings.NewReader(`{}`), nil)
	}
	if state := client.BreakerStates()[o.Client.Caller+"→"+name]; state != "open" {
		t.Fatalf("after 30 failed logins the breaker %s→%s is %q, want open", o.Client.Caller, name, state)
	}
	mu.Lock()
	published = append(published, fresh.signer)
	mu.Unlock()
	time.Sleep(100 * time.Millisecond) // past MinRefresh: an unknown kid is fetched
	if resp, b := cart(fresh); resp.StatusCode != http.StatusOK {
		t.Fatalf("a token of a new key while gateway→user is open: %d %s", resp.StatusCode, b)
	}
}

// TestTraceStartsAtTheEdge: a client's B3 headers (its trace ID, its sampling
// decision, X-B3-Flags: 1 forcing a debug trace) are not taken: every request starts
// a trace of the gateway's own, which goes upstream and whose ID the answer carries in
// X-Trace-Id, sampled or not; the client's request ID is kept.
func TestTraceStartsAtTheEdge(t *testing.T) {
	rec := recorder.NewReporter()
	defer rec.Close()
	tracer, err := zipkin.NewTracer(rec, zipkin.WithSampler(zipkin.NeverSample))
	if err != nil {
		t.Fatal(err)
	}
	echoing := startInstance(t, http.HandlerFunc(echo))
	o := withUpstreams(testOptions(newTestKeys(t).verifier), map[string][]string{InventoryService: {echoing.addr()}})
	o.Tracer = tracer
	gw := startGateway(t, o)

	const clientTrace = "463ac35c9f6413ad48485a3953bb6124"
	tests := []struct {
		name   string
		header map[string]string
	}{
		{"multi-header B3, forced", map[string]string{
			"X-B3-TraceId": clientTrace, "X-B3-SpanId": "a2fb4a1d1a96d312", "X-B3-Sampled": "1", "X-B3-Flags": "1"}},
		{"single-header B3, debug", map[string]string{"b3": clientTrace + "-a2fb4a1d1a96d312-d"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.header["X-Request-ID"] = "client-request-7"
			resp, body := call(t, "GET", gw.URL+"/v1/products", nil, tt.header)
			if resp.StatusCode != 200 {
				t.Fatalf("status %d: %s", resp.StatusCode, body)
			}
			up := decodeEcho(t, body).Header
			if got := up.Get("X-B3-Traceid"); got == "" || got == clientTrace {
				t.Errorf("upstream trace ID %q, want a new one", got)
			}
			if up.Get("X-B3-Flags") != "" || up.Get("X-B3-Sampled") == "1" {
				t.Errorf("upstream X-B3-Flags %q, X-B3-Sampled %q: the client's decision went through (the gateway samples nothing here)",
					up.Get("X-B3-Flags"), up.Get("X-B3-Sampled"))
			}
			if got := resp.Header.Get("X-Trace-Id"); got != up.Get("X-B3-Traceid") {
				t.Errorf("X-Trace-Id %q, want the trace that went upstream, %q", got, up.Get("X-B3-Traceid"))
			}
			if got := resp.Header.Get("X-Request-Id"); got != "client-request-7" || up.Get("X-Request-Id") != got {
				t.Errorf("request ID %q, upstream %q; want the client's", got, up.Get("X-Request-Id"))
			}
			if spans := rec.Flush(); len(spans) != 0 {
				t.Errorf("%d spans recorded by a tracer that samples nothing (first: trace %s, debug %v)", len(spans), spans[0].TraceID, spans[0].Debug)
			}
		})
	}
}

// TestRelayedError: an upstream's error body gets the request ID beside its code and
// message, and keeps whatever else it holds; a body outside the convention is replaced
// by one, with the headers of the new body.
func TestRelayedError(t *testing.T) {
	const id = "req-9"
	tests := []struct {
		name     string
		status   int
		header   map[string]string
		body     string
		want     string
		replaced bool
	}{
		{"the convention", 422, nil, `{"error":{"code":"out_of_stock","message":"only 2 left"}}` + "\n",
			`{"error":{"code":"out_of_stock","message":"only 2 left","request_id":"req-9"}}` + "\n", false},
		{"more than the convention", 409, nil, `{"error":{"code":"c","message":"m","detail":{"sku":"x"}},"hint":1}`,
			`{"error":{"code":"c","detail":{"sku":"x"},"message":"m","request_id":"req-9"},"hint":1}` + "\n", false},
		{"a request ID of the upstream's own", 404, nil, `{"error":{"code":"c","message":"m","request_id":"theirs"}}`,
			`{"error":{"code":"c","message":"m","request_id":"req-9"}}` + "\n", false},
		{"HTML", 404, map[string]string{"Content-Type": "text/html", "Content-Encoding": "br"}, `<html>not found</html>`,
			`{"error":{"code":"upstream_error","message":"upstream answered 404 Not Found","request_id":"req-9"}}` + "\n", true},
		{"nothing", 409, nil, ``,
			`{"error":{"code":"upstream_error","message":"upstream answered 409 Conflict","request_id":"req-9"}}` + "\n", true},
		{"an error without a code", 400, nil, `{"error":{"message":"m"}}`,
			`{"error":{"code":"upstream_error","message":"upstream answered 400 Bad Request","request_id":"req-9"}}` + "\n", true},
		{"an error that is a string", 400, nil, `{"error":"bad"}`,
			`{"error":{"code":"upstream_error","message":"upstream answered 400 Bad Request","request_id":"req-9"}}` + "\n", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{}
			for k, v := range tt.header {
				h.Set(k, v)
			}
			if got := string(relayedError(h, tt.status, []byte(tt.body), id)); got != tt.want {
				t.Errorf("body %s, want %s", got, tt.want)
			}
			if tt.replaced && (h.Get("Content-Type") != "application/json; charset=utf-8" || h.Get("Content-Encoding") != "") {
				t.Errorf("headers %v, want those of the new JSON body", h)
			}
		})
	}
}

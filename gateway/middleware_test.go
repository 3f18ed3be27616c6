package gateway

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/openzipkin/zipkin-go"
	"github.com/openzipkin/zipkin-go/model"
	"github.com/openzipkin/zipkin-go/reporter/recorder"

	"github.com/kitshop/kitshop/pkg/app"
	"github.com/kitshop/kitshop/pkg/auth"
	"github.com/kitshop/kitshop/pkg/testenv"
)

// panickingVerifier stands for a bug in a handler: it panics on every token.
type panickingVerifier struct{}

func (panickingVerifier) Verify(context.Context, string) (auth.Caller, error) {
	panic("verifier bug")
}

// errorBody is the error convention's body, request ID included.
type errorBody struct {
	Error struct {
		Code      string `json:"code"`
		Message   string `json:"message"`
		RequestID string `json:"request_id"`
	} `json:"error"`
}

var traceIDPattern = regexp.MustCompile(`^([0-9a-f]{16}|[0-9a-f]{32})$`)

// TestEveryAnswerNamesItsRequest: whatever answers — an upstream, the router, a limit,
// a breaker, a deadline, a recovered panic or the listener itself (pkg/app's /health,
// /metrics and HTTPS redirect, as the gateway's main wires them) — the answer carries
// X-Request-Id and the X-Trace-Id of the gateway's server span, sampled or not, and an
// error body repeats the request ID.
func TestEveryAnswerNamesItsRequest(t *testing.T) {
	keys := newTestKeys(t)
	inv := startInventory(t, keys.verifier)
	echoing := startInstance(t, http.HandlerFunc(echo))
	failing := startInstance(t, http.HandlerFunc(echo))
	failing.fail.Store(true)
	// naming names its own request and trace, which the gateway's answer must not take.
	naming := startInstance(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Request-Id", "upstream-request")
		w.Header().Set("X-Trace-Id", "upstream-trace")
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusNotFound)
		_, _ = io.WriteString(w, `{"error":{"code":"product_not_found","message":"no such product"}}`)
	}))
	bearer := map[string]string{"Authorization": "Bearer " + keys.token(t, auth.Caller{UserID: "u1", Role: auth.RoleCustomer})}
	elsewhere := map[string]string{"X-Forwarded-For": "203.0.113.9"}

	// A case is a gateway (options over testOptions, its inventory at upstream, pkg/app's
	// listener around it or not) and one call to it, with what comes before the call.
	type answerCase struct {
		name     string
		upstream string         // inventory's address; inv's when "", a held one's with hold
		options  func(*Options) // what differs from testOptions; nil for nothing
		// listener puts the edge's listener of pkg/app around the routes, HTTPS
		// configured (its certificate is never loaded: nothing is served by the App) and
		// loopback a trusted proxy, so that a request can come from elsewhere.
		listener     bool
		method, path string
		body         string
		header       map[string]string
		// Before the call: burst calls that must answer 200 (using up a rate limit), or
		// one call held at the upstream (taking an admission slot); or the call repeated
		// until its body has until (a breaker opening).
		burst  int
		hold   bool
		until  string
		status int
		code   string // of the error body; "" for none
	}
	tests := []answerCase{
		{name: "200 from an upstream", method: "GET", path: "/v1/products/" + testSKU, status: 200},
		{name: "404 no route", method: "GET", path: "/v2/anything", status: 404, code: "not_found"},
		{name: "405 wrong method", method: "DELETE", path: "/v1/products", status: 405, code: "method_not_allowed"},
		{name: "401 no token", method: "GET", path: "/v1/cart", status: 401, code: "missing_token"},
		{name: "413 body too large", options: func(o *Options) { o.MaxBody = 8 },
			method: "POST", path: "/v1/users", body: `{"email":"a@example.com"}`, status: 413, code: "body_too_large"},
		{name: "429 rate limited", options: func(o *Options) { o.AnonLimit = Limit{Rate: 1e-6, Burst: 1} },
			burst: 1, method: "GET", path: "/v1/products", status: 429, code: "rate_limited"},
		{name: "503 overloaded", options: func(o *Options) { o.Admission, o.AdmitWait = map[Class]Admit{ClassShop: {Limit: 1}}, time.Millisecond },
			hold: true, method: "GET", path: "/v1/products", status: 503, code: "overloaded"},
		// Open for good once open: no half-open try reaches the failing instance.
		{name: "503 breaker open", upstream: failing.addr(), options: func(o *Options) { o.Client.Breaker.SleepWindow = time.Hour },
			until: "circuit breaker is open", method: "GET", path: "/v1/products", status: 503, code: "service_unavailable"},
		{name: "504 upstream timeout", upstream: echoing.addr(), options: func(o *Options) { o.Client.AttemptTimeout, o.Client.Retries = 10*time.Millisecond, 0 },
			method: "GET", path: "/v1/products", header: map[string]string{"X-Echo-Sleep": "1h"}, status: 504, code: "upstream_timeout"},
		{name: "upstream 5xx", upstream: failing.addr(), method: "GET", path: "/v1/products", status: 503, code: "internal"},
		{name: "upstream 4xx relayed with its code", method: "GET", path: "/v1/products/nope", status: 404, code: "product_not_found"},
		{name: "upstream 4xx naming its own request and trace", upstream: naming.addr(),
			method: "GET", path: "/v1/products/nope", status: 404, code: "product_not_found"},
		{name: "upstream 4xx outside the convention", upstream: echoing.addr(),
			method: "GET", path: "/v1/products", header: map[string]string{"X-Echo-Status": "409"}, status: 409, code: "upstream_error"},
		{name: "panic in a handler", options: func(o *Options) { o.Verifier = panickingVerifier{} },
			method: "GET", path: "/v1/cart", header: bearer, status: 500, code: "internal"},
		{name: "listener: /health", listener: true, method: "GET", path: "/health", status: 200},
		{name: "listener: /metrics to another host, over HTTPS", listener: true,
			method: "GET", path: "/metrics", header: map[string]string{"X-Forwarded-For": "203.0.113.9", "X-Forwarded-Proto": "https"}, status: 404, code: "not_found"},
		{name: "listener: plain GET from another host redirected", listener: true,
			method: "GET", path: "/v1/products", header: elsewhere, status: 308},
		{name: "listener: plain POST from another host refused", listener: true,
			method: "POST", path: "/v1/auth/login", body: `{}`, header: elsewhere, status: 403, code: "https_required"},
		{name: "listener: a route through it", listener: true, method: "GET", path: "/v1/products/nope", status: 404, code: "product_not_found"},
	}

	// answer starts tt's gateway with tracer and makes tt's call, after what comes
	// before it.
	answer := func(t *testing.T, tracer *zipkin.Tracer, tt answerCase) (*http.Response, string) {
		upstream := tt.upstream
		if upstream == "" {
			upstream = inv.addr()
		}
		var holding *instance
		release := make(chan struct{})
		if tt.hold {
			holding = startInstance(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-release }))
			upstream = holding.addr()
		}
		o := withUpstreams(testOptions(keys.verifier), map[string][]string{InventoryService: {upstream}})
		o.Tracer = tracer
		if tt.options != nil {
			tt.options(&o)
		}
		if tt.listener {
			a, err := app.New(app.Config{
				Service: testenv.Name("gateway"), HTTPAddr: "127.0.0.1:0", AdvertiseHost: "127.0.0.1", LogLevel: "error",
				TLS: app.TLSOff, Edge: true, TLSCert: "unused.pem", TLSKey: "unused.pem", TrustedProxies: "127.0.0.1/32",
			}, io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { a.Close() })
			o.Listener, o.ClientIP = a.Handler, a.ClientIP()
		}
		url := startGateway(t, o).URL + tt.path
		do := func() (*http.Response, string) {
			var body io.Reader
			if tt.body != "" {
				body = strings.NewReader(tt.body)
			}
			return call(t, tt.method, url, body, tt.header)
		}

		for i := range tt.burst {
			if resp, body := do(); resp.StatusCode != 200 {
				t.Fatalf("call %d within the burst: %d %s", i+1, resp.StatusCode, body)
			}
		}
		if tt.hold {
			held := make(chan struct{})
			go func() {
				defer close(held)
				do()
			}()
			defer func() { close(release); <-held }()
			testenv.Eventually(t, 5*time.Second, "the upstream holding a call", func() bool { return holding.hits.Load() == 1 })
		}
		if tt.until == "" {
			return do()
		}
		var resp *http.Response
		var body string
		testenv.Eventually(t, 10*time.Second, "an answer saying "+tt.until, func() bool {
			resp, body = do()
			return strings.Contains(body, tt.until)
		})
		return resp, body
	}

	for _, sampled := range []bool{true, false} {
		rec := recorder.NewReporter()
		t.Cleanup(func() { rec.Close() })
		sampler := zipkin.NeverSample
		if sampled {
			sampler = zipkin.AlwaysSample
		}
		tracer, err := zipkin.NewTracer(rec, zipkin.WithSampler(sampler))
		if err != nil {
			t.Fatal(err)
		}
		for _, tt := range tests {
			t.Run(map[bool]string{true: "sampled", false: "unsampled"}[sampled]+"/"+tt.name, func(t *testing.T) {
				resp, body := answer(t, tracer, tt)
				if resp.StatusCode != tt.status {
					t.Fatalf("status %d, want %d: %s", resp.StatusCode, tt.status, body)
				}
				requestID, traceID := resp.Header.Get("X-Request-Id"), resp.Header.Get("X-Trace-Id")
				if requestID == "" || !traceIDPattern.MatchString(traceID) {
					t.Errorf("X-Request-Id %q, X-Trace-Id %q; want a request ID and 16 or 32 hex digits", requestID, traceID)
				}
				if tt.code != "" {
					var b errorBody
					if err := json.Unmarshal([]byte(body), &b); err != nil {
						t.Fatalf("error body %q: %v", body, err)
					}
					if b.Error.Code != tt.code || b.Error.Message == "" || b.Error.RequestID != requestID {
						t.Errorf("error body %s; want code %q, a message and request_id %q", body, tt.code, requestID)
					}
					if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
						t.Errorf("Content-Type %q", ct)
					}
				}
				if sampled {
					// The span is recorded when the handler returns, which may be just
					// after the client has read the answer.
					var seen []model.SpanModel
					testenv.Eventually(t, 5*time.Second, "the server span of trace "+traceID, func() bool {
						seen = append(seen, rec.Flush()...)
						for _, s := range seen {
							if s.Kind == model.Server && s.TraceID.String() == traceID {
								return true
							}
						}
						return false
					})
				} else if spans := rec.Flush(); len(spans) != 0 {
					t.Errorf("%d spans recorded by a tracer that samples nothing", len(spans))
				}
			})
		}
	}
}

// TestRequestID: a client's X-Request-ID is kept when it is a printable token of at
// most 128 bytes; otherwise the gateway makes one (32 hex digits).
func TestRequestID(t *testing.T) {
	tests := []struct {
		given string
		kept  bool
	}{
		{"", false},
		{"req-123", true},
		{"7f3c9a1e-0b2d-4c5e-8f6a-1b2c3d4e5f60", true},
		{strings.Repeat("x", 128), true},
		{strings.Repeat("x", 129), false},
		{"two words", false},
		{"tab\there", false},
		{`a"quote`, false},
		{`back\slash`, false},
		{"del\x7f", false},
		{"naïve", false},
	}
	hex := regexp.MustCompile(`^[0-9a-f]{32}$`)
	for _, tt := range tests {
		got := requestID(tt.given)
		if tt.kept && got != tt.given {
			t.Errorf("requestID(%q) = %q, want it kept", tt.given, got)
		}
		if !tt.kept && (got == tt.given || !hex.MatchString(got)) {
			t.Errorf("requestID(%q) = %q, want a new one of 32 hex digits", tt.given, got)
		}
	}
}

// TestPanicIsAnswered: a panic before anything of the answer was written is answered
// 500 internal with the JSON error body; one after ends the connection, so that a
// half answer cannot pass for a whole one. Both are logged with the request, and the
// access log line and metrics still see the request.
func TestPanicIsAnswered(t *testing.T) {
	tests := []struct {
		name    string
		handler http.HandlerFunc
		status  int // 0: no answer, the connection ends
	}{
		{"before the answer", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Length", "1000") // of a body never written
			w.Header().Set("Content-Encoding", "gzip")
			panic("bug")
		}, 500},
		{"in the middle of the answer", func(w http.ResponseWriter, r *http.Request) {
			// Chunked: returning normally would end the body as if it were complete.
			_, _ = io.WriteString(w, `{"partial":`)
			_ = http.NewResponseController(w).Flush()
			panic("bug")
		}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var logs testenv.SyncBuffer
			o := testOptions(newTestKeys(t).verifier)
			o.Logger = newTestLogger(&logs)
			o = o.defaults()
			g := &gateway{
				opts:     o,
				requests: o.Metrics.Counter("gateway", "requests_total", "", "route", "status"),
				duration: o.Metrics.Histogram("gateway", "request_duration_seconds", "", "route", "status"),
			}
			srv := httptest.NewServer(g.instrument(named("GET /bug", tt.handler)))
			defer srv.Close()

			resp, err := http.Get(srv.URL + "/bug")
			if tt.status == 0 {
				if err == nil {
					_, err = io.ReadAll(resp.Body)
					resp.Body.Close()
				}
				if err == nil {
					t.Fatal("a half answer read as a whole one")
				}
			} else {
				if err != nil {
					t.Fatal(err)
				}
				b, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				if err != nil {
					t.Fatalf("reading the 500: %v", err)
				}
				var body errorBody
				if resp.StatusCode != tt.status || json.Unmarshal(b, &body) != nil || body.Error.Code != "internal" ||
					body.Error.RequestID != resp.Header.Get("X-Request-Id") {
					t.Fatalf("%d %s; want %d internal with the request ID %q", resp.StatusCode, b, tt.status, resp.Header.Get("X-Request-Id"))
				}
			}
			testenv.Eventually(t, 5*time.Second, "the access log line", func() bool {
				return strings.Contains(logs.String(), `"msg":"request"`)
			})
			panicked := firstLine(t, logs.String(), "handler panicked")
			access := firstLine(t, logs.String(), `"msg":"request"`)
			if !strings.Contains(panicked, `"stack":`) || !strings.Contains(panicked, `"err":"panic: bug"`) || !strings.Contains(access, `"route":"GET /bug"`) {
				t.Errorf("logged:\n%s", logs.String())
			}
			if tt.status != 0 && !strings.Contains(access, `"status":500`) {
				t.Errorf("access log line %s, want status 500", access)
			}
			if !strings.Contains(scrape(t, o.Metrics), `kitshop_gateway_requests_total{route="GET /bug"`) {
				t.Error("the request is not counted")
			}
		})
	}
}

package gateway

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-kit/kit/sd"
	"github.com/go-kit/log"

	"github.com/kitshop/kitshop/inventory"
	"github.com/kitshop/kitshop/pkg/auth"
	"github.com/kitshop/kitshop/pkg/client"
	"github.com/kitshop/kitshop/pkg/observe"
	"github.com/kitshop/kitshop/pkg/testenv"
)

// testKeys signs tokens the way the user service does and verifies them with the
// same key, so tests need no user instance.
type testKeys struct {
	signer   *auth.Signer
	verifier auth.Verifier
}

func newTestKeys(t testing.TB) testKeys {
	t.Helper()
	kid, key, err := auth.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	s := auth.NewSigner(kid, key, auth.DefaultIssuer, auth.DefaultAudience, time.Hour)
	return testKeys{signer: s, verifier: auth.NewVerifier(auth.StaticKeys{kid: s.PublicKey()}, auth.DefaultIssuer, auth.DefaultAudience, s.TTL())}
}

func (k testKeys) token(t testing.TB, c auth.Caller) string {
	t.Helper()
	tok, _, err := k.signer.Sign(c, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// instance is an upstream instance under test: a real handler behind GET /health,
// counting the requests it serves; fail makes it answer 500 to everything else, sick
// fails its health check.
type instance struct {
	srv  *httptest.Server
	hits atomic.Int64
	fail atomic.Bool
	sick atomic.Bool // fails its health check
}

func (i *instance) addr() string { return strings.TrimPrefix(i.srv.URL, "http://") }

func startInstance(t testing.TB, h http.Handler) *instance {
	t.Helper()
	in := &instance{}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /health", func(w http.ResponseWriter, _ *http.Request) {
		if in.sick.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		_, _ = io.WriteString(w, `{}`)
	})
	mux.Handle("/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		in.hits.Add(1)
		if in.fail.Load() {
			http.Error(w, `{"error":{"code":"internal","message":"internal error"}}`, http.StatusInternalServerError)
			return
		}
		h.ServeHTTP(w, r)
	}))
	in.srv = httptest.NewServer(mux)
	t.Cleanup(in.srv.Close)
	return in
}

// testSKU is the product every test inventory sells.
const testSKU = "kit-001"

// startInventory runs the real inventory service (memory store) with one product.
func startInventory(t testing.TB, v auth.Verifier) *instance {
	t.Helper()
	svc := inventory.NewService(inventory.NewMemoryStore(), "EUR", time.Minute, time.Now)
	_, err := svc.CreateProduct(context.Background(), inventory.Product{
		SKU: testSKU, Name: "Starter kit", Description: "everything to begin", Price: inventory.Money{Amount: 1999, Currency: "EUR"}, Stock: 100,
	})
	if err != nil {
		t.Fatal(err)
	}
	obs := observe.Observer{Logger: log.NewNopLogger(), Metrics: observe.NewMetrics("inventory")}
	return startInstance(t, inventory.MakeHTTPHandler(inventory.MakeServerEndpoints(svc, obs, v), nil))
}

// testOptions are gateway options for tests: limits out of the way, a breaker that
// opens after a few failures and tries again soon.
func testOptions(v auth.Verifier) Options {
	return Options{
		Verifier: v,
		Client: client.Options{
			AttemptTimeout: time.Second,
			Retries:        2,
			Breaker:        client.Breaker{MaxConcurrent: 200, ErrorPercent: 50, VolumeThreshold: 10, SleepWindow: 500 * time.Millisecond},
		},
		UserLimit: Limit{Rate: 1e6, Burst: 1e6},
		AnonLimit: Limit{Rate: 1e6, Burst: 1e6},
	}
}

// withUpstreams gives every service a name unique to the test (hystrix breakers are
// process-wide, keyed by name) and routes it to the given instances.
func withUpstreams(o Options, addrs map[string][]string) Options {
	o.Services = map[string]string{}
	byName := map[string][]string{}
	for _, s := range []string{UserService, InventoryService, OrderService, NotificationService} {
		name := testenv.Name(s)
		o.Services[s] = name
		byName[name] = addrs[s]
	}
	o.Instancer = func(name string) (sd.Instancer, error) { return fixedInstancer(byName[name]), nil }
	return o
}

// fixedInstancer is sd.FixedInstancer giving each endpointer its own copy of the list:
// go-kit's endpoint cache sorts the list it receives in place, so endpointers sharing
// one sd.FixedInstancer race.
type fixedInstancer []string

func (f fixedInstancer) Register(ch chan<- sd.Event) { ch <- sd.Event{Instances: slices.Clone(f)} }

func (f fixedInstancer) Deregister(chan<- sd.Event) {}

func (f fixedInstancer) Stop() {}

func startGateway(t testing.TB, o Options) *httptest.Server {
	t.Helper()
	h, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv
}

// call makes one request (a redirect is the answer) and returns the answer with its
// body read.
func call(t *testing.T, method, url string, body io.Reader, header map[string]string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	once := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := once.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(b)
}

func newTestLogger(w io.Writer) log.Logger {
	return log.NewJSONLogger(log.NewSyncWriter(w))
}

func firstLine(t *testing.T, text, containing string) string {
	t.Helper()
	for _, l := range strings.Split(text, "\n") {
		if strings.Contains(l, containing) {
			return l
		}
	}
	t.Fatalf("no line with %s in:\n%s", containing, text)
	return ""
}

func scrape(t *testing.T, m *observe.Metrics) string {
	t.Helper()
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	return rec.Body.String()
}

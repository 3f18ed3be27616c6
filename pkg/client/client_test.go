package client_test

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/afex/hystrix-go/hystrix"
	"github.com/go-kit/kit/sd"
	consulsd "github.com/go-kit/kit/sd/consul"
	"github.com/go-kit/log"
	consul "github.com/hashicorp/consul/api"

	"github.com/kitshop/kitshop/pkg/admission"
	"github.com/kitshop/kitshop/pkg/client"
	"github.com/kitshop/kitshop/pkg/discovery"
	"github.com/kitshop/kitshop/pkg/errs"
	"github.com/kitshop/kitshop/pkg/httpjson"
	"github.com/kitshop/kitshop/pkg/testenv"
)

// instance is a live upstream: it answers /who with its name, /refuse with a 422,
// /fail with a 503 while failing is set.
type instance struct {
	name    string
	srv     *httptest.Server
	calls   atomic.Int64
	failing atomic.Bool
}

func newInstance(t *testing.T, name string) *instance {
	in := &instance{name: name}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /health", func(w http.ResponseWriter, r *http.Request) {})
	mux.HandleFunc("/who", func(w http.ResponseWriter, r *http.Request) {
		in.calls.Add(1)
		if in.failing.Load() {
			errs.WriteHTTP(w, errs.E(errs.Unavailable, "down", "failing on purpose"))
			return
		}
		_ = json.NewEncoder(w).Encode(map[string]string{"name": name})
	})
	mux.HandleFunc("/refuse", func(w http.ResponseWriter, r *http.Request) {
		in.calls.Add(1)
		errs.WriteHTTP(w, errs.E(errs.Unprocessable, "out_of_stock", "none left"))
	})
	in.srv = httptest.NewServer(mux)
	t.Cleanup(in.srv.Close)
	return in
}

func (in *instance) port() int { return in.srv.Listener.Addr().(*net.TCPAddr).Port }

func register(t *testing.T, c *consul.Client, service string, port int) *discovery.Registrar {
	t.Helper()
	r := discovery.NewRegistrar(c, discovery.Registration{
		Service: service, Host: "127.0.0.1", Port: port,
		CheckInterval: time.Second, CheckTimeout: time.Second, DeregisterAfter: time.Minute,
	}, log.NewNopLogger())
	if err := r.Register(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Deregister(context.Background()) })
	return r
}

func waitPassing(t *testing.T, c *consul.Client, service string, want int) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		entries, _, err := c.Health().Service(service, "", true, nil)
		if err == nil && len(entries) == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %d passing instances, want %d (err %v)", service, len(entries), want, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func route(path string, idempotent bool) client.Route {
	return client.Route{
		Name:       path,
		Method:     "GET",
		Encode:     func(_ context.Context, r *http.Request, _ any) error { r.URL.Path = "/" + path; return nil },
		Decode:     httpjson.DecodeResponse[map[string]string],
		Idempotent: idempotent,
	}
}

// TestChainAgainstConsul: two live instances and one registered but dead; calls spread
// over the live ones only, business errors pass through untouched, and an instance
// killed under a load loop costs no idempotent call.
func TestChainAgainstConsul(t *testing.T) {
	c, _ := testenv.Consul(t)
	service := testenv.Name("clienttest")
	a, b := newInstance(t, "a"), newInstance(t, "b")
	dead, _ := net.Listen("tcp", "127.0.0.1:0")
	deadPort := dead.Addr().(*net.TCPAddr).Port
	dead.Close()
	register(t, c, service, a.port())
	register(t, c, service, b.port())
	register(t, c, service, deadPort)
	waitPassing(t, c, service, 2)

	instancer := consulsd.NewInstancer(consulsd.NewClient(c), log.NewNopLogger(), service, nil, true)
	defer instancer.Stop()
	svc := client.New(service, instancer, client.Options{Caller: "test", Timeout: 2 * time.Second, AttemptTimeout: 500 * time.Millisecond, Retries: 2})
	who := svc.Endpoint(route("who", true))
	ctx := context.Background()

	// The endpointer learns the instances asynchronously, and a client warms them up
	// (warm.go), using one that is ready before one that is not: wait until calls
	// alternate.
	deadline := time.Now().Add(5 * time.Second)
	last := ""
	for {
		resp, err := who(ctx, nil)
		if err == nil {
			name := resp.(map[string]string)["name"]
			if last != "" && name != last {
				break
			}
			last = name
		}
		if time.Now().After(deadline) {
			t.Fatal("calls did not alternate between the two instances within 5 s")
		}
		time.Sleep(50 * time.Millisecond)
	}
	seen := map[string]int{}
	for i := 0; i < 20; i++ {
		resp, err := who(ctx, nil)
		if err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
		seen[resp.(map[string]string)["name"]]++
	}
	if seen["a"] != 10 || seen["b"] != 10 {
		t.Fatalf("round robin gave %v, want 10 each", seen)
	}

	refuse := svc.Endpoint(route("refuse", true))
	before := a.calls.Load() + b.calls.Load()
	for i := 0; i < 30; i++ {
		_, err := refuse(ctx, nil)
		var e *errs.Error
		if !errors.As(err, &e) || e.Code != "out_of_stock" || e.Kind != errs.Unprocessable {
			t.Fatalf("business error came back as %v", err)
		}
	}
	if n := a.calls.Load() + b.calls.Load() - before; n != 30 {
		t.Fatalf("30 refused calls reached upstream %d times: business errors must not be retried", n)
	}
	if open := circuitOpen(t, svc.BreakerName()); open {
		t.Fatal("business errors opened the breaker")
	}

	// Kill b under load: its connections are refused and idempotent calls move to a.
	var failed atomic.Int64
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := who(ctx, nil); err != nil {
					if failed.Add(1) == 1 {
						t.Logf("first failure: %v", err)
					}
				}
			}
		}()
	}
	time.Sleep(200 * time.Millisecond)
	b.srv.Close()
	time.Sleep(500 * time.Millisecond)
	close(stop)
	wg.Wait()
	if failed.Load() != 0 {
		t.Fatalf("%d idempotent calls failed when an instance died", failed.Load())
	}
}

// circuitOpen reports whether the circuit is open, waiting up to a second for it to
// open: hystrix folds reported outcomes into its window in a goroutine of its own.
func circuitOpen(t *testing.T, name string) bool {
	t.Helper()
	cb, _, err := hystrix.GetCircuit(name)
	if err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(time.Second); !cb.IsOpen(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			return false
		}
	}
	return true
}

// TestBreaker: a failing upstream opens the breaker, which then fails fast with 503
// without calling upstream, and closes again once the upstream recovers.
func TestBreaker(t *testing.T) {
	in := newInstance(t, "only")
	in.failing.Store(true)
	fixed := staticInstancer(in.srv.Listener.Addr().String())
	svc := client.New(testenv.Name("breakertest"), fixed, client.Options{
		Caller:  "test",
		Timeout: time.Second,
		Breaker: client.Breaker{MaxConcurrent: 50, ErrorPercent: 50, VolumeThreshold: 5, SleepWindow: 300 * time.Millisecond},
	})
	who := svc.Endpoint(route("who", false))
	ctx := context.Background()
	for i := 0; i < 10; i++ {
		_, err := who(ctx, nil)
		if e := errs.From(err); e.Kind != errs.Unavailable {
			t.Fatalf("call %d: %v, want unavailable", i, err)
		}
	}
	if !circuitOpen(t, svc.BreakerName()) {
		t.Fatal("breaker still closed after 10 failures")
	}
	if state := client.BreakerStates()[svc.BreakerName()]; state != "open" {
		t.Fatalf("BreakerStates says %q for the open breaker", state)
	}
	calls := in.calls.Load()
	_, err := who(ctx, nil)
	if e := errs.From(err); e.Code != "service_unavailable" || in.calls.Load() != calls {
		t.Fatalf("open breaker: err %v, upstream called %d more times", err, in.calls.Load()-calls)
	}

	in.failing.Store(false)
	time.Sleep(400 * time.Millisecond)
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, err := who(ctx, nil); err == nil && !circuitOpen(t, svc.BreakerName()) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("breaker did not close after the upstream recovered")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestNoInstance: with nobody registered a call fails fast with 503.
func TestNoInstance(t *testing.T) {
	svc := client.New(testenv.Name("emptytest"), staticInstancer(), client.Options{Caller: "test", Timeout: time.Second, Retries: 2})
	start := time.Now()
	_, err := svc.Endpoint(route("who", true))(context.Background(), nil)
	if e := errs.From(err); e.Kind != errs.Unavailable || e.Code != "service_unavailable" {
		t.Fatalf("err = %v", err)
	}
	if time.Since(start) > 1500*time.Millisecond {
		t.Fatalf("took %v", time.Since(start))
	}
}

// TestTimeout: an instance that hangs is cut off at the call budget with 504.
func TestTimeout(t *testing.T) {
	hang := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(5 * time.Second):
		}
	}))
	defer hang.Close()
	svc := client.New(testenv.Name("timeouttest"), staticInstancer(hang.Listener.Addr().String()),
		client.Options{Caller: "test", Timeout: 300 * time.Millisecond, AttemptTimeout: 100 * time.Millisecond, Retries: 1})
	who := svc.Endpoint(route("who", true))
	// go-kit's endpointer takes the instancer's list in a goroutine of its own: until
	// it has, a call finds no instance.
	deadline := time.Now().Add(2 * time.Second)
	for {
		_, err := who(context.Background(), nil)
		e := errs.From(err)
		if e.Kind == errs.Timeout {
			return
		}
		if e.Code != "service_unavailable" || time.Now().After(deadline) {
			t.Fatalf("err = %v, want a timeout", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func staticInstancer(addrs ...string) sd.FixedInstancer { return sd.FixedInstancer(addrs) }

// TestAttemptTimeoutReadsOnly: a slow read is cut off at the attempt timeout and
// sent again; a slow idempotent write is given the whole call budget and sent once.
func TestAttemptTimeoutReadsOnly(t *testing.T) {
	for _, tt := range []struct {
		method    string
		wantCalls int64
		wantErr   bool
	}{
		{http.MethodGet, 2, true}, // both tries cut at 100 ms, within the 400 ms budget
		{http.MethodPost, 1, false},
		{http.MethodPut, 1, false},
	} {
		t.Run(tt.method, func(t *testing.T) {
			var calls atomic.Int64
			slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path == "/health" {
					return // the client's warm-up (warm.go), not a call
				}
				calls.Add(1)
				select {
				case <-r.Context().Done():
					return
				case <-time.After(250 * time.Millisecond):
				}
				_ = json.NewEncoder(w).Encode(map[string]string{"name": "slow"})
			}))
			defer slow.Close()
			svc := client.New(testenv.Name("attempttest"), staticInstancer(slow.Listener.Addr().String()),
				client.Options{Caller: "test", Timeout: 400 * time.Millisecond, AttemptTimeout: 100 * time.Millisecond, Retries: 1})
			r := route("slow", true)
			r.Method = tt.method
			call := svc.Endpoint(r)
			// go-kit's endpointer takes the instancer's list in a goroutine of its own.
			deadline := time.Now().Add(2 * time.Second)
			var err error
			for {
				calls.Store(0)
				_, err = call(context.Background(), nil)
				if errs.From(err).Code != "service_unavailable" || time.Now().After(deadline) {
					break
				}
				time.Sleep(20 * time.Millisecond)
			}
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, want an error: %v", err, tt.wantErr)
			}
			if got := calls.Load(); got != tt.wantCalls {
				t.Fatalf("upstream called %d times, want %d", got, tt.wantCalls)
			}
		})
	}
}

// TestBreakerBothSides: a crowd on an upstream that sheds what it cannot take (an
// admission limit) leaves the breaker closed, and the crowd gets answers, some 503
// overloaded; the same upstream failing, or hanging, opens it.
func TestBreakerBothSides(t *testing.T) {
	for _, tt := range []struct {
		name     string
		handler  func(w http.ResponseWriter, r *http.Request)
		shed     bool // the upstream sheds beyond two calls at once
		wantOpen bool
	}{
		{"busy, shedding", func(w http.ResponseWriter, r *http.Request) {
			time.Sleep(30 * time.Millisecond)
			_ = json.NewEncoder(w).Encode(map[string]string{"name": "busy"})
		}, true, false},
		{"failing", func(w http.ResponseWriter, r *http.Request) {
			errs.WriteHTTP(w, errors.New("broken"))
		}, false, true},
		{"hanging", func(w http.ResponseWriter, r *http.Request) {
			<-r.Context().Done()
		}, false, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var h http.Handler = http.HandlerFunc(tt.handler)
			if tt.shed {
				h = admission.NewLimiter(2, 10*time.Millisecond, nil).Middleware(h)
			}
			// As in a service (pkg/app), /health stands outside the admission limit: the
			// client's warm-up (warm.go) must not take the slots the crowd is measured on.
			mux := http.NewServeMux()
			mux.HandleFunc("GET /health", func(w http.ResponseWriter, r *http.Request) {})
			mux.Handle("/", admission.WithCallerTimeout(h))
			srv := httptest.NewServer(mux)
			defer srv.Close()
			svc := client.New(testenv.Name("bothsides"), staticInstancer(srv.Listener.Addr().String()), client.Options{
				Caller: "test", Timeout: 300 * time.Millisecond, Retries: 0,
				Breaker: client.Breaker{MaxConcurrent: 100, ErrorPercent: 50, VolumeThreshold: 10, SleepWindow: time.Minute},
			})
			who := svc.Endpoint(route("who", false))
			// go-kit's endpointer takes the instancer's list in a goroutine of its own.
			for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
				if _, err := who(context.Background(), nil); errs.From(err).Code != "service_unavailable" {
					break
				}
			}
			var wg sync.WaitGroup
			var ok, overloaded atomic.Int64
			for range 40 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					_, err := who(context.Background(), nil)
					switch {
					case err == nil:
						ok.Add(1)
					case errors.Is(err, errs.ErrOverloaded):
						overloaded.Add(1)
					}
				}()
			}
			wg.Wait()
			if tt.shed && (ok.Load() == 0 || overloaded.Load() == 0 || ok.Load()+overloaded.Load() != 40) {
				t.Fatalf("%d answered, %d shed of 40: want both, and nothing else", ok.Load(), overloaded.Load())
			}
			open := circuitOpen(t, svc.BreakerName())
			if open != tt.wantOpen {
				t.Fatalf("breaker open = %v, want %v", open, tt.wantOpen)
			}
		})
	}
}

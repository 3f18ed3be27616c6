package client_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-kit/kit/sd"

	"github.com/kitshop/kitshop/pkg/client"
	"github.com/kitshop/kitshop/pkg/testenv"
)

// warmingInstance answers /who with its name; its /health waits for open to close.
type warmingInstance struct {
	srv          *httptest.Server
	open         chan struct{}
	healthCalls  atomic.Int64
	healthDone   atomic.Bool // a /health call has answered
	calls        atomic.Int64
	callsTooSoon atomic.Int64 // /who calls that came before any /health answered
}

func newWarmingInstance(t *testing.T, name string) *warmingInstance {
	in := &warmingInstance{open: make(chan struct{})}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /health", func(w http.ResponseWriter, r *http.Request) {
		in.healthCalls.Add(1)
		select {
		case <-in.open:
		case <-r.Context().Done():
			return
		}
		in.healthDone.Store(true)
	})
	mux.HandleFunc("/who", func(w http.ResponseWriter, r *http.Request) {
		in.calls.Add(1)
		if !in.healthDone.Load() {
			in.callsTooSoon.Add(1)
		}
		_ = json.NewEncoder(w).Encode(map[string]string{"name": name})
	})
	in.srv = httptest.NewServer(mux)
	t.Cleanup(func() {
		in.srv.CloseClientConnections()
		in.srv.Close()
	})
	return in
}

func (in *warmingInstance) addr() string { return in.srv.Listener.Addr().String() }

// movingInstancer is an sd.Instancer whose set the test changes.
type movingInstancer struct {
	mu        sync.Mutex
	instances []string
	subs      []chan<- sd.Event
}

func (m *movingInstancer) Register(ch chan<- sd.Event) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.subs = append(m.subs, ch)
	ch <- sd.Event{Instances: m.instances}
}

func (m *movingInstancer) Deregister(ch chan<- sd.Event) {}
func (m *movingInstancer) Stop()                         {}

func (m *movingInstancer) set(instances ...string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.instances = instances
	for _, ch := range m.subs {
		ch <- sd.Event{Instances: instances}
	}
}

// TestNewInstanceWarmsUp: an instance that joins beside a ready one gets no call
// before it has been warmed, and gets calls once it is (or once warming has taken
// too long); instances that are all new are used at once.
func TestNewInstanceWarmsUp(t *testing.T) {
	for _, tt := range []struct {
		name     string
		together bool          // a and b are known from the start, both warming
		openB    time.Duration // when b's /health answers; zero: never
	}{
		{name: "joins beside a ready one", openB: 300 * time.Millisecond},
		{name: "joins and never answers its health", openB: 0},
		{name: "all new", together: true, openB: 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			a, b := newWarmingInstance(t, "a"), newWarmingInstance(t, "b")
			instances := &movingInstancer{}
			if tt.together {
				instances.set(a.addr(), b.addr())
			} else {
				close(a.open)
				instances.set(a.addr())
			}
			svc := client.New(testenv.Name("warmtest"), instances, client.Options{Caller: "test", Timeout: 2 * time.Second, Retries: 1})
			who := svc.Endpoint(route("who", true))
			ctx := context.Background()
			waitFor(t, 2*time.Second, "a first answer", func() bool { _, err := who(ctx, nil); return err == nil })

			if tt.together {
				// Nothing is ready, and nothing waits for the warm-up: both answer now.
				waitFor(t, time.Second, "calls to both", func() bool {
					_, _ = who(ctx, nil)
					return a.calls.Load() > 0 && b.calls.Load() > 0
				})
				return
			}
			instances.set(a.addr(), b.addr())
			waitFor(t, time.Second, "b's warm-up to begin", func() bool { return b.healthCalls.Load() > 0 })
			if tt.openB > 0 {
				time.AfterFunc(tt.openB, func() { close(b.open) })
			}
			// b takes calls once warm, or once warmFor (3 s) has gone by.
			waitFor(t, 5*time.Second, "calls to b", func() bool {
				if _, err := who(ctx, nil); err != nil {
					t.Fatalf("call while b warms up: %v", err)
				}
				time.Sleep(5 * time.Millisecond)
				return b.calls.Load() > 0
			})
			if n := b.callsTooSoon.Load(); tt.openB > 0 && n > 0 {
				t.Fatalf("b got %d calls before its warm-up answered", n)
			}
			if tt.openB > 0 {
				if n := b.healthCalls.Load(); n < 2 {
					t.Fatalf("b's warm-up made %d /health calls, want the first and then more at once", n)
				}
			}
		})
	}
}

func waitFor(t *testing.T, within time.Duration, what string, done func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !done() {
		if time.Now().After(deadline) {
			t.Fatalf("no %s within %v", what, within)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

package client

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"sync"
	"time"

	kithttp "github.com/go-kit/kit/transport/http"
)

// An instance that has just joined has no pooled connection and no TLS session: the
// first calls sent to it each wait for a TCP dial and a full mTLS handshake, on the
// same cores that serve them, and a crowd arriving at that moment runs into its own
// deadlines. So a Service warms every instance it learns of (GET /health once, which
// opens a connection and a TLS session, then warmConns at once, which resume it and
// leave that many connections in the pool) and, while another instance is ready,
// sends it no call until then or for at most warmFor. When all instances are new (a
// caller that has just started) none is held back: each is used at once.
const (
	warmConns = 4
	warmFor   = 3 * time.Second
)

// warmer tracks the warm-up of one service's instances, shared by all its routes.
type warmer struct {
	client kithttp.HTTPClient
	scheme string

	mu    sync.Mutex
	hosts map[string]*warmHost
}

type warmHost struct {
	routes int                // routes whose endpointer knows the instance
	ready  bool               // warmed, or given up on
	cancel context.CancelFunc // ends the warm-up when the instance goes away
}

func newWarmer(client kithttp.HTTPClient, scheme string) *warmer {
	return &warmer{client: client, scheme: scheme, hosts: map[string]*warmHost{}}
}

// add notes that a route knows instance, and starts its warm-up when it is new.
func (w *warmer) add(instance string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if h, ok := w.hosts[instance]; ok {
		h.routes++
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), warmFor)
	h := &warmHost{routes: 1, cancel: cancel}
	w.hosts[instance] = h
	go w.warm(ctx, instance, h)
}

// remove notes that a route has let instance go; when none knows it, it is
// forgotten, and an instance that comes back on the same address is warmed again.
func (w *warmer) remove(instance string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	h, ok := w.hosts[instance]
	if !ok {
		return
	}
	if h.routes--; h.routes == 0 {
		h.cancel()
		delete(w.hosts, instance)
	}
}

// cold reports whether instance is still being warmed.
func (w *warmer) cold(instance string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	h, ok := w.hosts[instance]
	return ok && !h.ready
}

func (w *warmer) warm(ctx context.Context, instance string, h *warmHost) {
	defer func() {
		w.mu.Lock()
		h.ready = true
		w.mu.Unlock()
		h.cancel()
	}()
	u := (&url.URL{Scheme: w.scheme, Host: instance, Path: "/health"}).String()
	if w.health(ctx, u) != nil {
		return // not answering: ejection, not warm-up, deals with it
	}
	var wg sync.WaitGroup
	for range warmConns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = w.health(ctx, u)
		}()
	}
	wg.Wait()
}

func (w *warmer) health(ctx context.Context, u string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	resp, err := w.client.Do(req)
	if err != nil {
		return err
	}
	// Read to the end, so the connection goes back to the pool.
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.Body.Close()
}

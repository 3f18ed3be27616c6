package gateway

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// countingServer is an upstream that counts the connections it accepted.
type countingServer struct {
	*httptest.Server
	conns atomic.Int64
}

func newCountingServer(t *testing.T, h http.Handler, useTLS bool) *countingServer {
	s := &countingServer{Server: httptest.NewUnstartedServer(h)}
	s.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			s.conns.Add(1)
		}
	}
	if useTLS {
		s.StartTLS()
	} else {
		s.Start()
	}
	t.Cleanup(s.Close)
	return s
}

func (s *countingServer) host() string { return s.Listener.Addr().String() }

func upstreamRequest(t *testing.T, ctx context.Context, method, url, body string, header map[string]string) *http.Request {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	return req
}

func doRead(c *upstreamClient, req *http.Request) (int, string, error) {
	resp, err := c.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// TestUpstreamClientReuse: answers read whole (with or without a length, or closed
// once read) keep their connection; answers cut short or marked close do not.
func TestUpstreamClientReuse(t *testing.T) {
	big := strings.Repeat("x", 64<<10)
	mux := http.NewServeMux()
	mux.HandleFunc("/small", func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "small") })
	mux.HandleFunc("/chunked", func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "part one ")
		w.(http.Flusher).Flush()
		_, _ = io.WriteString(w, "part two")
	})
	mux.HandleFunc("/empty", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) })
	mux.HandleFunc("/big", func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, big) })
	mux.HandleFunc("/close", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Connection", "close")
		_, _ = io.WriteString(w, "bye")
	})
	tests := []struct {
		name      string
		path      string
		readAll   bool // else the body is closed unread
		wantConns int64
	}{
		{"length, read", "/small", true, 1},
		{"length, closed unread", "/small", false, 1}, // Close drains a small rest
		{"chunked, read", "/chunked", true, 1},
		{"no body", "/empty", true, 1},
		{"big body closed unread", "/big", false, 5},
		{"Connection: close", "/close", true, 5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newCountingServer(t, mux, false)
			c := newUpstreamClient(10, nil)
			defer c.CloseIdleConnections()
			for i := range 5 {
				resp, err := c.Do(upstreamRequest(t, context.Background(), http.MethodGet, srv.URL+tt.path, "", nil))
				if err != nil {
					t.Fatalf("request %d: %v", i, err)
				}
				if tt.readAll {
					if _, err := io.ReadAll(resp.Body); err != nil {
						t.Fatalf("request %d: body: %v", i, err)
					}
				}
				_ = resp.Body.Close()
			}
			if got := srv.conns.Load(); got != tt.wantConns {
				t.Fatalf("%d connections for 5 requests, want %d", got, tt.wantConns)
			}
		})
	}
}

// TestUpstreamClientStaleConnection: a kept-alive connection that dies once the request
// is on it (after the look before use) is resent on a new connection only when sending
// twice is safe, as net/http does.
func TestUpstreamClientStaleConnection(t *testing.T) {
	tests := []struct {
		name    string
		method  string
		body    string
		header  map[string]string
		wantErr bool
	}{
		{"GET", http.MethodGet, "", nil, false},
		{"POST with an Idempotency-Key", http.MethodPost, `{"n":1}`, map[string]string{"Idempotency-Key": "k1"}, false},
		{"POST without one", http.MethodPost, `{"n":2}`, nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// An upstream that answers the first request of each connection and drops
			// the connection, unanswered, on the second.
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			var conns atomic.Int64
			var lastBody atomic.Value
			go func() {
				for {
					conn, err := ln.Accept()
					if err != nil {
						return
					}
					conns.Add(1)
					go func() {
						defer conn.Close()
						br := bufio.NewReader(conn)
						req, err := http.ReadRequest(br)
						if err != nil {
							return
						}
						b, _ := io.ReadAll(req.Body)
						lastBody.Store(string(b))
						_, _ = io.WriteString(conn, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
						_, _ = http.ReadRequest(br) // and the second goes unanswered
					}()
				}
			}()
			url := "http://" + ln.Addr().String() + "/"
			c := newUpstreamClient(10, nil)
			defer c.CloseIdleConnections()
			if _, _, err := doRead(c, upstreamRequest(t, context.Background(), http.MethodGet, url, "", nil)); err != nil {
				t.Fatal(err)
			}
			status, _, err := doRead(c, upstreamRequest(t, context.Background(), tt.method, url, tt.body, tt.header))
			if tt.wantErr {
				if err == nil || !errors.Is(err, errStaleConnection) || !errors.Is(err, io.EOF) {
					t.Fatalf("status %d, err %v; want the stale connection's EOF, not a resend", status, err)
				}
				return
			}
			if err != nil || status != http.StatusOK {
				t.Fatalf("status %d, err %v", status, err)
			}
			if got, _ := lastBody.Load().(string); got != tt.body {
				t.Fatalf("upstream read body %q, want %q", got, tt.body)
			}
			if n := conns.Load(); n != 2 {
				t.Fatalf("%d connections, want 2", n)
			}
		})
	}
}

// TestUpstreamClientContext: a context that ends interrupts the exchange at once with
// the context's error, and the connection is not kept.
func TestUpstreamClientContext(t *testing.T) {
	release := make(chan struct{})
	srv := newCountingServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/hang" {
			_, _ = io.WriteString(w, "head ")
			w.(http.Flusher).Flush()
			select {
			case <-release:
			case <-r.Context().Done():
			}
			return
		}
		_, _ = io.WriteString(w, "ok")
	}), false)
	defer close(release)
	c := newUpstreamClient(10, nil)
	defer c.CloseIdleConnections()

	tests := []struct {
		name    string
		ctx     func() (context.Context, context.CancelFunc)
		wantErr error
	}{
		{"deadline", func() (context.Context, context.CancelFunc) {
			return context.WithTimeout(context.Background(), 100*time.Millisecond)
		}, context.DeadlineExceeded},
		{"canceled", func() (context.Context, context.CancelFunc) {
			ctx, cancel := context.WithCancel(context.Background())
			time.AfterFunc(100*time.Millisecond, cancel)
			return ctx, cancel
		}, context.Canceled},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := tt.ctx()
			defer cancel()
			start := time.Now()
			_, _, err := doRead(c, upstreamRequest(t, ctx, http.MethodGet, srv.URL+"/hang", "", nil))
			if err == nil {
				t.Fatal("no error from a hung upstream")
			}
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err %v, want %v", err, tt.wantErr)
			}
			if took := time.Since(start); took > 2*time.Second {
				t.Fatalf("took %v to give up", took)
			}
		})
	}
	// The interrupted connections were not kept: the next request works.
	before := srv.conns.Load()
	if status, body, err := doRead(c, upstreamRequest(t, context.Background(), http.MethodGet, srv.URL+"/ok", "", nil)); err != nil || status != 200 || body != "ok" {
		t.Fatalf("after interruptions: %d %q %v", status, body, err)
	}
	if srv.conns.Load() != before+1 {
		t.Fatal("an interrupted connection was reused")
	}
}

// TestUpstreamClientInterim: 1xx answers before the final one are skipped.
func TestUpstreamClientInterim(t *testing.T) {
	srv := newCountingServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Link", "</style.css>; rel=preload")
		w.WriteHeader(http.StatusEarlyHints)
		w.WriteHeader(http.StatusCreated)
		_, _ = io.WriteString(w, "made")
	}), false)
	c := newUpstreamClient(10, nil)
	defer c.CloseIdleConnections()
	status, body, err := doRead(c, upstreamRequest(t, context.Background(), http.MethodGet, srv.URL, "", nil))
	if err != nil || status != http.StatusCreated || body != "made" {
		t.Fatalf("%d %q %v", status, body, err)
	}
}

// TestUpstreamClientTLS: over TLS, with the connection kept, and refused by a server
// whose certificate the configuration does not trust.
func TestUpstreamClientTLS(t *testing.T) {
	srv := newCountingServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.TLS == nil {
			http.Error(w, "plain", http.StatusBadRequest)
			return
		}
		_, _ = io.WriteString(w, "secure")
	}), true)
	trusted := srv.Client().Transport.(*http.Transport).TLSClientConfig
	c := newUpstreamClient(10, trusted)
	defer c.CloseIdleConnections()
	for range 3 {
		status, body, err := doRead(c, upstreamRequest(t, context.Background(), http.MethodGet, srv.URL, "", nil))
		if err != nil || status != 200 || body != "secure" {
			t.Fatalf("%d %q %v", status, body, err)
		}
	}
	if n := srv.conns.Load(); n != 1 {
		t.Fatalf("%d TLS connections for 3 requests", n)
	}
	untrusting := newUpstreamClient(10, &tls.Config{MinVersion: tls.VersionTLS12})
	if _, _, err := doRead(untrusting, upstreamRequest(t, context.Background(), http.MethodGet, srv.URL, "", nil)); err == nil {
		t.Fatal("a server with an untrusted certificate was accepted")
	}
}

// TestUpstreamClientBody: the request body and headers arrive as sent.
func TestUpstreamClientBody(t *testing.T) {
	srv := newCountingServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		w.Header().Set("X-Got-Length", r.Header.Get("Content-Length"))
		_, _ = w.Write(bytes.ToUpper(b))
	}), false)
	c := newUpstreamClient(10, nil)
	defer c.CloseIdleConnections()
	req := upstreamRequest(t, context.Background(), http.MethodPut, srv.URL+"/x?q=1", "hello", map[string]string{"Content-Type": "text/plain"})
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if string(b) != "HELLO" || resp.Header.Get("X-Got-Length") != "5" {
		t.Fatalf("body %q, length %q", b, resp.Header.Get("X-Got-Length"))
	}
}

type timeoutError struct{}

func (timeoutError) Error() string   { return "i/o timeout" }
func (timeoutError) Timeout() bool   { return true }
func (timeoutError) Temporary() bool { return true }

// TestContextError: the connection's deadline firing just before the context's own
// timer still reads as the context's deadline.
func TestContextError(t *testing.T) {
	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	// A deadline passed whose context has not noticed yet: a fake, since a real one
	// would mark itself done.
	passed := deadlineOnly{time.Now().Add(-time.Millisecond)}
	future := deadlineOnly{time.Now().Add(time.Hour)}
	refused := errors.New("connection refused")
	tests := []struct {
		name string
		ctx  context.Context
		err  error
		want error
	}{
		{"canceled", canceled, refused, context.Canceled},
		{"deadline passed, timeout", passed, timeoutError{}, context.DeadlineExceeded},
		{"deadline passed, other error", passed, refused, refused},
		{"deadline ahead, timeout", future, timeoutError{}, timeoutError{}},
		{"no deadline", context.Background(), timeoutError{}, timeoutError{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := contextError(tt.ctx, tt.err); got != tt.want {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

type deadlineOnly struct{ d time.Time }

func (c deadlineOnly) Deadline() (time.Time, bool) { return c.d, true }
func (c deadlineOnly) Done() <-chan struct{}       { return nil }
func (c deadlineOnly) Err() error                  { return nil }
func (c deadlineOnly) Value(any) any               { return nil }

// TestUpstreamClientIdleExpiry: a connection left idle is closed after the idle
// timeout, so an instance that went away leaves no socket behind; one in use is not.
func TestUpstreamClientIdleExpiry(t *testing.T) {
	srv := newCountingServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "ok") }), false)
	c := newUpstreamClient(10, nil)
	c.idleTimeout = 100 * time.Millisecond
	defer c.CloseIdleConnections()
	idleCount := func() int {
		c.mu.Lock()
		defer c.mu.Unlock()
		return len(c.idle[srv.host()])
	}
	for range 3 { // reused within the timeout: one connection
		if _, _, err := doRead(c, upstreamRequest(t, context.Background(), http.MethodGet, srv.URL, "", nil)); err != nil {
			t.Fatal(err)
		}
		time.Sleep(30 * time.Millisecond)
	}
	if n := srv.conns.Load(); n != 1 || idleCount() != 1 {
		t.Fatalf("%d connections, %d idle; want 1 and 1", n, idleCount())
	}
	deadline := time.Now().Add(2 * time.Second)
	for idleCount() != 0 {
		if time.Now().After(deadline) {
			t.Fatal("the idle connection was never closed")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if _, _, err := doRead(c, upstreamRequest(t, context.Background(), http.MethodGet, srv.URL, "", nil)); err != nil {
		t.Fatal(err)
	}
	if n := srv.conns.Load(); n != 2 {
		t.Fatalf("%d connections after expiry, want 2", n)
	}
}

// TestUpstreamClientUpstreamClosedIdle: an upstream that closed an idle connection (its
// idle timeout, a graceful restart) costs nothing, even to a request that cannot be
// sent twice: the closed connection is noticed before use.
func TestUpstreamClientUpstreamClosedIdle(t *testing.T) {
	for _, useTLS := range []bool{false, true} {
		t.Run(map[bool]string{false: "plain", true: "TLS"}[useTLS], func(t *testing.T) {
			srv := newCountingServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				_, _ = io.WriteString(w, "ok")
			}), false)
			srv.Close() // restarted below with a short idle timeout
			srv = &countingServer{Server: httptest.NewUnstartedServer(srv.Config.Handler)}
			srv.Config.IdleTimeout = 50 * time.Millisecond
			srv.Config.ConnState = func(_ net.Conn, st http.ConnState) {
				if st == http.StateNew {
					srv.conns.Add(1)
				}
			}
			var tlsConf *tls.Config
			if useTLS {
				srv.StartTLS()
				tlsConf = srv.Client().Transport.(*http.Transport).TLSClientConfig
			} else {
				srv.Start()
			}
			defer srv.Close()
			c := newUpstreamClient(10, tlsConf)
			defer c.CloseIdleConnections()
			for i := range 3 {
				status, body, err := doRead(c, upstreamRequest(t, context.Background(), http.MethodPost, srv.URL, `{"n":1}`, nil))
				if err != nil || status != 200 || body != "ok" {
					t.Fatalf("POST %d: %d %q %v", i, status, body, err)
				}
				time.Sleep(200 * time.Millisecond) // the upstream closes the idle connection
			}
			if n := srv.conns.Load(); n != 3 {
				t.Fatalf("%d connections for 3 POSTs each after an idle close, want 3", n)
			}
		})
	}
}

// TestUpstreamClientExtraBytes: an upstream that sends more than its answer announced
// does not get to answer the next request with the rest.
func TestUpstreamClientExtraBytes(t *testing.T) {
	for _, sameSegment := range []bool{true, false} {
		t.Run(map[bool]string{true: "in the same write", false: "later"}[sameSegment], func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			const answer = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
			const forged = "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nEVIL"
			go func() {
				for {
					conn, err := ln.Accept()
					if err != nil {
						return
					}
					go func() {
						defer conn.Close()
						br := bufio.NewReader(conn)
						for first := true; ; first = false {
							if _, err := http.ReadRequest(br); err != nil {
								return
							}
							switch {
							case !first:
								_, _ = io.WriteString(conn, answer)
							case sameSegment:
								_, _ = io.WriteString(conn, answer+forged)
							default:
								_, _ = io.WriteString(conn, answer)
								time.Sleep(50 * time.Millisecond)
								_, _ = io.WriteString(conn, forged)
							}
						}
					}()
				}
			}()
			c := newUpstreamClient(10, nil)
			defer c.CloseIdleConnections()
			url := "http://" + ln.Addr().String() + "/"
			for i := range 3 {
				status, body, err := doRead(c, upstreamRequest(t, context.Background(), http.MethodGet, url, "", nil))
				if err != nil || status != 200 || body != "ok" {
					t.Fatalf("GET %d: %d %q %v", i, status, body, err)
				}
				time.Sleep(100 * time.Millisecond)
			}
		})
	}
}

// TestUpstreamClientHandsBackConnections: a call that finds no idle connection takes
// one another call hands back before its own dial is made, and that dial, no longer
// needed when its turn comes, is never made.
func TestUpstreamClientHandsBackConnections(t *testing.T) {
	unblock := make(chan struct{})
	slowArrived := make(chan struct{})
	srv := newCountingServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			close(slowArrived)
			<-unblock
		}
		_, _ = io.WriteString(w, r.URL.Path)
	}), false)
	c := newUpstreamClient(10, nil)
	defer c.CloseIdleConnections()
	var asked, made atomic.Int64
	turn := make(chan struct{}) // never closed: only the first dial gets its turn
	c.dial = func(ctx context.Context, network, addr string) (net.Conn, error) {
		if asked.Add(1) > 1 {
			select {
			case <-turn:
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
		made.Add(1)
		return net.Dial(network, addr)
	}

	slow := make(chan error, 1)
	go func() {
		_, _, err := doRead(c, upstreamRequest(t, context.Background(), http.MethodGet, srv.URL+"/slow", "", nil))
		slow <- err
	}()
	<-slowArrived
	fast := make(chan string, 1)
	go func() {
		_, body, err := doRead(c, upstreamRequest(t, context.Background(), http.MethodGet, srv.URL+"/fast", "", nil))
		if err != nil {
			body = err.Error()
		}
		fast <- body
	}()
	for asked.Load() < 2 {
		time.Sleep(time.Millisecond)
	}
	close(unblock)
	if err := <-slow; err != nil {
		t.Fatal(err)
	}
	select {
	case body := <-fast:
		if body != "/fast" {
			t.Fatalf("the waiting call got %q", body)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("the waiting call did not take the connection handed back")
	}
	time.Sleep(20 * time.Millisecond) // the abandoned dial sees its context end
	if made.Load() != 1 || srv.conns.Load() != 1 {
		t.Fatalf("%d dials made, %d connections at the server; want 1 and 1", made.Load(), srv.conns.Load())
	}
}

// TestUpstreamClientKeepsLateDial: a dial under way when its caller runs out of time
// goes on, and the next call uses its connection instead of dialing again.
func TestUpstreamClientKeepsLateDial(t *testing.T) {
	srv := newCountingServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "ok")
	}), false)
	c := newUpstreamClient(10, nil)
	defer c.CloseIdleConnections()
	release := make(chan struct{})
	var made atomic.Int64
	c.dial = func(ctx context.Context, network, addr string) (net.Conn, error) {
		if made.Add(1) == 1 {
			<-release // a slow handshake, under way: its caller's context does not stop it
		}
		return net.Dial(network, addr)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	if _, _, err := doRead(c, upstreamRequest(t, ctx, http.MethodGet, srv.URL, "", nil)); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want the caller's deadline", err)
	}
	close(release)
	deadline := time.Now().Add(2 * time.Second)
	for srv.conns.Load() < 1 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(20 * time.Millisecond) // the late connection reaches the pool
	if _, body, err := doRead(c, upstreamRequest(t, context.Background(), http.MethodGet, srv.URL, "", nil)); err != nil || body != "ok" {
		t.Fatalf("%q %v", body, err)
	}
	if made.Load() != 1 {
		t.Fatalf("%d dials, want 1: the late connection was not kept", made.Load())
	}
}

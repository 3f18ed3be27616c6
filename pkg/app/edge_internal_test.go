package app

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// remoteListener hands out connections that say they come from addr: requests from
// another host, for tests that may only talk to loopback.
type remoteListener struct {
	net.Listener
	addr net.Addr
}

func (l remoteListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return remoteConn{Conn: c, addr: l.addr}, nil
}

type remoteConn struct {
	net.Conn
	addr net.Addr
}

func (c remoteConn) RemoteAddr() net.Addr { return c.addr }

var elsewhere = &net.TCPAddr{IP: net.IPv4(203, 0, 113, 9), Port: 40000}

// start runs a with h until the test ends, its peers all at remote when given.
func start(t *testing.T, cfg Config, remote net.Addr, h http.Handler) (*App, string) {
	t.Helper()
	if cfg.Service == "" {
		cfg.Service = "apptest"
	}
	cfg.AdvertiseHost, cfg.LogLevel, cfg.Drain, cfg.ShutdownGrace = "127.0.0.1", "error", time.Millisecond, time.Second
	a, err := New(cfg, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if remote != nil {
		a.listener = remoteListener{Listener: a.listener, addr: remote}
	}
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx, h) }()
	t.Cleanup(func() { stop(); <-done; a.Close() })
	return a, "127.0.0.1:" + strconv.Itoa(a.Port())
}

func fetch(t *testing.T, c *http.Client, method, url string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(""))
	if err != nil {
		t.Fatal(err)
	}
	var resp *http.Response
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if resp, err = c.Do(req); err == nil || time.Now().After(deadline) {
			break
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

var hello = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "hello") })

// TestEdgeOperatorsOnly: the edge's /metrics and the detail of its /health (breakers,
// checks) are for loopback clients; a client on another host gets 404 and the bare
// status. Services keep both open (their port is not public).
func TestEdgeOperatorsOnly(t *testing.T) {
	tests := []struct {
		name        string
		edge        bool
		remote      net.Addr
		wantMetrics int
		wantDetail  bool
	}{
		{"edge, loopback client", true, nil, 200, true},
		{"edge, client elsewhere", true, elsewhere, 404, false},
		{"service, caller elsewhere", false, elsewhere, 200, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, addr := start(t, Config{HTTPAddr: "127.0.0.1:0", TLS: TLSOff, Edge: tt.edge, AdmitLimit: 1}, tt.remote, hello)
			if resp, _ := fetch(t, http.DefaultClient, "GET", "http://"+addr+"/metrics"); resp.StatusCode != tt.wantMetrics {
				t.Errorf("/metrics: %d, want %d", resp.StatusCode, tt.wantMetrics)
			}
			resp, body := fetch(t, http.DefaultClient, "GET", "http://"+addr+"/health")
			var health map[string]any
			if err := json.Unmarshal([]byte(body), &health); err != nil || resp.StatusCode != 200 || health["status"] != "ok" {
				t.Fatalf("/health: %d %s", resp.StatusCode, body)
			}
			if _, detailed := health["service"]; detailed != tt.wantDetail {
				t.Errorf("/health said %s; want the detail %v", body, tt.wantDetail)
			}
		})
	}
}

// TestEdgeRedirectsPlainHTTP: with a certificate, a plain GET from another host is
// sent to HTTPS and a plain POST (its body already crossed in clear) refused; loopback
// clients and health checks keep plain HTTP.
func TestEdgeRedirectsPlainHTTP(t *testing.T) {
	certFile, keyFile, _ := selfSigned(t)
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	tests := []struct {
		name, method, path string
		remote             net.Addr
		want               int
		location           string
	}{
		{"GET from elsewhere", "GET", "/v1/products?limit=2", elsewhere, http.StatusPermanentRedirect, "https://HOST/v1/products?limit=2"},
		{"HEAD from elsewhere", "HEAD", "/", elsewhere, http.StatusPermanentRedirect, "https://HOST/"},
		{"POST from elsewhere", "POST", "/v1/auth/login", elsewhere, http.StatusForbidden, ""},
		{"health check from elsewhere", "GET", "/health", elsewhere, http.StatusOK, ""},
		{"GET from loopback", "GET", "/v1/products", nil, http.StatusOK, ""},
		{"POST from loopback", "POST", "/v1/auth/login", nil, http.StatusOK, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, addr := start(t, Config{HTTPAddr: "127.0.0.1:0", TLS: TLSOff, Edge: true, TLSCert: certFile, TLSKey: keyFile}, tt.remote, hello)
			resp, body := fetch(t, noFollow, tt.method, "http://"+addr+tt.path)
			if resp.StatusCode != tt.want {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tt.want, body)
			}
			if want := strings.ReplaceAll(tt.location, "HOST", addr); resp.Header.Get("Location") != want {
				t.Errorf("Location %q, want %q", resp.Header.Get("Location"), want)
			}
			if tt.want == http.StatusForbidden && !strings.Contains(body, `"code":"https_required"`) {
				t.Errorf("body %s, want the https_required error", body)
			}
		})
	}
}

// TestPlainHTTPServices: with TLS off a service listens on loopback unless told an
// interface, and its routes for one caller (/internal/) answer loopback callers only.
func TestPlainHTTPServices(t *testing.T) {
	a, err := New(Config{Service: "apptest", HTTPAddr: ":0", AdvertiseHost: "127.0.0.1", TLS: TLSOff, AdmitLimit: 1, LogLevel: "error"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	host, _, _ := net.SplitHostPort(a.listener.Addr().String())
	a.Close()
	if host != "127.0.0.1" {
		t.Errorf("-tls off -http-addr :0 listens on %s, want 127.0.0.1", host)
	}

	tests := []struct {
		name   string
		remote net.Addr
		path   string
		want   int
	}{
		{"internal route from elsewhere", elsewhere, "/internal/v1/reservations", http.StatusForbidden},
		{"public route from elsewhere", elsewhere, "/v1/products", http.StatusOK},
		{"health from elsewhere", elsewhere, "/health", http.StatusOK},
		{"internal route from loopback", nil, "/internal/v1/reservations", http.StatusOK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, err := New(Config{Service: "apptest", HTTPAddr: "127.0.0.1:0", AdvertiseHost: "127.0.0.1", TLS: TLSOff, AdmitLimit: 1, LogLevel: "error", Drain: time.Millisecond, ShutdownGrace: time.Second}, io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			a.RestrictPaths("/internal/", "order")
			if tt.remote != nil {
				a.listener = remoteListener{Listener: a.listener, addr: tt.remote}
			}
			ctx, stop := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- a.Run(ctx, hello) }()
			t.Cleanup(func() { stop(); <-done; a.Close() })
			resp, body := fetch(t, http.DefaultClient, "GET", "http://127.0.0.1:"+strconv.Itoa(a.Port())+tt.path)
			if resp.StatusCode != tt.want {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tt.want, body)
			}
		})
	}
}

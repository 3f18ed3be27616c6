package app_test

import (
	"context"
	"crypto/tls"
	"io"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/kitshop/kitshop/pkg/app"
	"github.com/kitshop/kitshop/pkg/connect"
	"github.com/kitshop/kitshop/pkg/testenv"
)

func serve(t *testing.T, a *app.App, h http.Handler) {
	t.Helper()
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx, h) }()
	t.Cleanup(func() { stop(); <-done })
}

// TestMutualTLS runs an instance with mTLS on (the flag's default): Consul's plain
// health check passes on the same port, a plain call elsewhere is refused, and a
// client built from another app's ClientOptions calls it over mTLS once an intention
// allows it.
func TestMutualTLS(t *testing.T) {
	c, addr := testenv.Consul(t)
	a := newApp(t, addr)
	serve(t, a, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, _ := connect.PeerFrom(r.Context())
		_, _ = io.WriteString(w, p.Service)
	}))
	testenv.Eventually(t, 15*time.Second, "passing over the plain health check", func() bool { return len(instances(t, c, a.Config.Service, true)) == 1 })
	if e := instances(t, c, a.Config.Service, true)[0]; e.Service.Meta["transport"] != "mtls" {
		t.Fatalf("registered transport %q, want mtls", e.Service.Meta["transport"])
	}
	plain := "http://127.0.0.1:" + strconv.Itoa(a.Port())
	if code, _ := get(t, plain+"/v1/anything"); code != http.StatusForbidden {
		t.Fatalf("plain call: %d, want 403", code)
	}

	caller := newApp(t, addr)
	if err := (connect.Intentions{a.Config.Service: {caller.Config.Service}}).Apply(c); err != nil {
		t.Fatal(err)
	}
	url := "https://127.0.0.1:" + strconv.Itoa(a.Port()) + "/v1/anything"
	hc := caller.ClientOptionsFor(a.Config.Service).HTTPClient
	resp, err := hc.Do(newGet(t, url))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != caller.Config.Service {
		t.Fatalf("mTLS call: %d %q, want 200 and the caller's name", resp.StatusCode, body)
	}
	// A client for another service refuses this instance at the handshake.
	if resp, err := caller.ClientOptionsFor("payment").HTTPClient.Do(newGet(t, url)); err == nil {
		resp.Body.Close()
		t.Fatal("an instance of another service was accepted as payment")
	}
}

func TestTLSNeedsConsul(t *testing.T) {
	if _, err := app.New(app.Config{Service: "x", HTTPAddr: "127.0.0.1:0", TLS: app.TLSOn}, io.Discard); err == nil {
		t.Fatal("mTLS without Consul started")
	}
}

// TestEdgeHTTPS serves the edge's certificate over HTTPS with HSTS, and plain HTTP on
// the same port without it.
func TestEdgeHTTPS(t *testing.T) {
	certFile, keyFile, pool := app.SelfSigned(t)
	a, err := app.New(app.Config{Service: testenv.Name("edge"), HTTPAddr: "127.0.0.1:0", AdvertiseHost: "127.0.0.1", TLS: app.TLSOff, Edge: true,
		TLSCert: certFile, TLSKey: keyFile, LogLevel: "error", Drain: time.Millisecond, ShutdownGrace: time.Second}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.Close)
	serve(t, a, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "ok") }))
	port := strconv.Itoa(a.Port())
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	var resp *http.Response
	testenv.Eventually(t, 15*time.Second, "https", func() bool {
		resp, err = hc.Get("https://localhost:" + port + "/x")
		return err == nil
	})
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Strict-Transport-Security") == "" {
		t.Fatalf("https: %d, HSTS %q", resp.StatusCode, resp.Header.Get("Strict-Transport-Security"))
	}
	resp, err = http.Get("http://127.0.0.1:" + port + "/x")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Strict-Transport-Security") != "" {
		t.Fatalf("plain: %d, HSTS %q", resp.StatusCode, resp.Header.Get("Strict-Transport-Security"))
	}
}

func newGet(t *testing.T, url string) *http.Request {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	return req
}

package app_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
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
	eventually(t, "passing over the plain health check", func() bool { return len(instances(t, c, a.Config.Service, true)) == 1 })
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
	certFile, keyFile, pool := selfSigned(t)
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
	eventually(t, "https", func() bool {
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

func selfSigned(t *testing.T) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "localhost"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, IsCA: true, BasicConstraintsValid: true,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(c)
	return certFile, keyFile, pool
}

func newGet(t *testing.T, url string) *http.Request {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	return req
}

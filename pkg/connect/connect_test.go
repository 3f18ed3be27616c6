package connect_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/go-kit/log"
	consul "github.com/hashicorp/consul/api"

	"github.com/kitshop/kitshop/pkg/connect"
	"github.com/kitshop/kitshop/pkg/testenv"
)

func identity(t testing.TB, c *consul.Client, service string) *connect.Identity {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	id, err := connect.New(ctx, c, service, log.NewNopLogger())
	if err != nil {
		t.Fatalf("identity of %s: %v", service, err)
	}
	t.Cleanup(func() { id.Close() })
	return id
}

func clientWith(cfg *tls.Config) *http.Client {
	return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: cfg}}
}

// foreignTLS is a client presenting a certificate of another CA with a plausible SPIFFE ID.
func foreignTLS(t *testing.T, uri string) *tls.Config {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse(uri)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "intruder"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		URIs: []*url.URL{u}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		KeyUsage: x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Config{InsecureSkipVerify: true, Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}
}

func TestMutualTLSAndIntentions(t *testing.T) {
	c, _ := testenv.Consul(t)
	target, caller, stranger := testenv.Name("inv"), testenv.Name("ord"), testenv.Name("stranger")
	if err := (connect.Intentions{target: {caller}}).Apply(c); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = c.ConfigEntries().Delete(consul.ServiceIntentions, target, nil) })

	server := identity(t, c, target)
	logs := &testenv.SyncBuffer{}
	authz := connect.NewAuthorizer(server, time.Second, []connect.PathRule{{Prefix: "/internal/", Callers: []string{caller}}}, log.NewLogfmtLogger(logs))
	h := authz.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, _ := connect.PeerFrom(r.Context())
		_, _ = io.WriteString(w, p.Service)
	}), "/health")
	srv := httptest.NewUnstartedServer(h)
	// Not StartTLS: it would add httptest's own certificate, which wins over GetCertificate.
	srv.Listener = tls.NewListener(srv.Listener, server.ServerTLS())
	srv.Start()
	defer srv.Close()
	base := strings.Replace(srv.URL, "http://", "https://", 1)

	callerID := identity(t, c, caller)
	strangerID := identity(t, c, stranger)

	cases := []struct {
		name     string
		client   *http.Client
		path     string
		status   int // 0: the handshake fails
		logged   string
		wantBody string
	}{
		{"allowed caller", clientWith(callerID.ClientTLS(target)), "/internal/v1/x", 200, "", caller},
		{"no certificate", clientWith(&tls.Config{InsecureSkipVerify: true}), "/v1/x", 403, "peer=none", ""},
		{"no certificate, health", clientWith(&tls.Config{InsecureSkipVerify: true}), "/health", 200, "", ""},
		{"certificate of another CA", clientWith(foreignTLS(t, "spiffe://x.consul/ns/default/dc/dc1/svc/"+caller)), "/v1/x", 0, "", ""},
		{"valid leaf, no intention", clientWith(strangerID.ClientTLS(target)), "/v1/x", 403, "svc/" + stranger, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := tc.client.Get(base + tc.path)
			if tc.status == 0 {
				if err == nil {
					resp.Body.Close()
					t.Fatalf("handshake succeeded with status %d", resp.StatusCode)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d (%s), want %d", resp.StatusCode, body, tc.status)
			}
			if tc.wantBody != "" && string(body) != tc.wantBody {
				t.Fatalf("body %q, want %q", body, tc.wantBody)
			}
			if tc.logged != "" && !strings.Contains(logs.String(), tc.logged) {
				t.Fatalf("refusal not logged with %q:\n%s", tc.logged, logs.String())
			}
		})
	}

	// The path rule narrows what an allowed service may call.
	if err := (connect.Intentions{target: {caller, stranger}}).Apply(c); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1100 * time.Millisecond) // the authorizer's cache
	resp, err := clientWith(strangerID.ClientTLS(target)).Get(base + "/internal/v1/x")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 403 || !strings.Contains(logs.String(), "are for "+caller+" only") {
		t.Fatalf("internal route: status %d, logs:\n%s", resp.StatusCode, logs.String())
	}
	resp, err = clientWith(strangerID.ClientTLS(target)).Get(base + "/v1/x")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("public route after the intention allowed it: status %d", resp.StatusCode)
	}
}

func TestClientChecksTheServer(t *testing.T) {
	c, _ := testenv.Consul(t)
	server := identity(t, c, testenv.Name("srv"))
	me := identity(t, c, testenv.Name("caller"))
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	srv.Listener = tls.NewListener(srv.Listener, server.ServerTLS())
	srv.Start()
	defer srv.Close()
	url := strings.Replace(srv.URL, "http://", "https://", 1)
	if resp, err := clientWith(me.ClientTLS(server.Service())).Get(url); err != nil {
		t.Fatalf("the expected server: %v", err)
	} else {
		resp.Body.Close()
	}
	if resp, err := clientWith(me.ClientTLS("payment")).Get(url); err == nil || !strings.Contains(err.Error(), "not payment") {
		if err == nil {
			resp.Body.Close()
		}
		t.Fatalf("a server of another service: %v, want refused", err)
	}
}

func TestClientRefusesServerOfAnotherCA(t *testing.T) {
	c, _ := testenv.Consul(t)
	me := identity(t, c, testenv.Name("caller"))
	srv := httptest.NewTLSServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	defer srv.Close()
	if resp, err := clientWith(me.ClientTLS("")).Get(srv.URL); err == nil {
		resp.Body.Close()
		t.Fatal("a server with a certificate of another CA was accepted")
	}
}

// BenchmarkCall measures one small GET over plain HTTP, over mTLS on a kept-alive
// connection, and over mTLS with a new connection (and so a handshake) per call.
func BenchmarkCall(b *testing.B) {
	c, _ := testenv.Consul(b)
	server := identity(b, c, testenv.Name("bench-srv"))
	client := identity(b, c, testenv.Name("bench-cli"))
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "ok") })
	plain := httptest.NewServer(h)
	defer plain.Close()
	secure := httptest.NewUnstartedServer(h)
	secure.Listener = tls.NewListener(secure.Listener, server.ServerTLS())
	secure.Start()
	defer secure.Close()
	secureURL := strings.Replace(secure.URL, "http://", "https://", 1)

	run := func(b *testing.B, url string, tr *http.Transport) {
		hc := &http.Client{Transport: tr}
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			resp, err := hc.Get(url)
			if err != nil {
				b.Fatal(err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	}
	b.Run("plain", func(b *testing.B) { run(b, plain.URL, &http.Transport{}) })
	b.Run("mtls-keepalive", func(b *testing.B) { run(b, secureURL, &http.Transport{TLSClientConfig: client.ClientTLS("")}) })
	b.Run("mtls-new-connection", func(b *testing.B) {
		run(b, secureURL, &http.Transport{TLSClientConfig: client.ClientTLS(""), DisableKeepAlives: true})
	})
}

package e2e

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
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	consul "github.com/hashicorp/consul/api"

	"github.com/kitshop/kitshop/pkg/testenv"
)

// TestTransportSecurity calls the services directly, past the gateway: without a
// certificate, with one of another CA, with a valid Connect leaf of a service the
// intentions do not allow, and as an allowed service on a route that is not its own;
// each is refused and the refusal logged with the peer. Then the CA is rotated and the
// instances present new leaves, and serve checkouts, without a restart. Last, the
// gateway serves HTTPS with the demo certificate, and HSTS.
func TestTransportSecurity(t *testing.T) {
	if env.stack.GatewayHTTPS == "" {
		t.Skip("KITSHOP_TLS=off")
	}
	c, err := env.stack.Consul()
	if err != nil {
		t.Fatal(err)
	}
	inventory := instanceAddr(t, c, "inventory")
	payment := instanceAddr(t, c, "payment")
	intruder := leafClient(t, c, "intruder")
	gateway := leafClient(t, c, "gateway")
	order := leafClient(t, c, "order")

	tests := []struct {
		name      string
		client    *http.Client
		url       string
		status    int    // 0: the handshake must fail
		proc      string // whose log must name the peer
		peerInLog string
	}{
		{"plain HTTP to an internal route", http.DefaultClient, "http://" + inventory + "/internal/v1/reservations/x", 403, "inventory", `"peer":"none"`},
		{"TLS without a client certificate", tlsClient(&tls.Config{InsecureSkipVerify: true}), "https://" + inventory + "/v1/products", 403, "inventory", `"peer":"none"`},
		{"a certificate of another CA", tlsClient(foreignCert(t)), "https://" + inventory + "/v1/products", 0, "", ""},
		{"a Connect leaf without an intention", intruder, "https://" + inventory + "/v1/products", 403, "inventory", "svc/intruder"},
		{"the gateway on inventory's reservations", gateway, "https://" + inventory + "/internal/v1/reservations/x", 403, "inventory", "svc/gateway"},
		{"the gateway on payment", gateway, "https://" + payment + "/internal/v1/charges?order_id=x", 403, "payment", "svc/gateway"},
		{"order on payment's charges", order, "https://" + payment + "/internal/v1/charges?order_id=x", 200, "", ""},
		{"the health check needs no certificate", http.DefaultClient, "http://" + inventory + "/health", 200, "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := tc.client.Get(tc.url)
			if tc.status == 0 {
				if err == nil {
					resp.Body.Close()
					t.Fatalf("handshake accepted, status %d", resp.StatusCode)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d %s, want %d", resp.StatusCode, body, tc.status)
			}
			if tc.proc != "" {
				testenv.Eventually(t, 5*time.Second, "the refusal in the "+tc.proc+" logs", func() bool { return logsContain(t, tc.proc, tc.peerInLog) })
			}
		})
	}

	t.Run("CA rotation without restart", func(t *testing.T) {
		before := servedSerial(t, inventory)
		conf, _, err := c.Connect().CAGetConfig(nil)
		if err != nil {
			t.Fatal(err)
		}
		// A new key size makes the built-in CA generate a new root (cross-signed by
		// the old one), and with it every leaf.
		bits := 384
		if v, ok := conf.Config["PrivateKeyBits"].(float64); ok && int(v) == 384 {
			bits = 256
		}
		conf.Config["PrivateKeyType"], conf.Config["PrivateKeyBits"] = "ec", bits
		if _, err := c.Connect().CASetConfig(conf, nil); err != nil {
			t.Fatal(err)
		}
		testenv.Eventually(t, 30*time.Second, "inventory serving a new leaf", func() bool { return servedSerial(t, inventory) != before })
		alice, _ := shopper(t)
		sku := newProduct(t, 10, 100)
		if status, _, err := checkout(context.Background(), alice, "rot-"+testenv.RandomHex(6), []line{{sku, 1}}, goodCard); status != 201 {
			t.Fatalf("checkout after the rotation: %d %v", status, err)
		}
	})

	t.Run("HTTPS at the gateway", func(t *testing.T) {
		pem, err := os.ReadFile(env.stack.CACert)
		if err != nil {
			t.Fatal(err)
		}
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(pem)
		resp, err := tlsClient(&tls.Config{RootCAs: pool}).Get(env.stack.GatewayHTTPS + "/v1/products")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(resp.Header.Get("Strict-Transport-Security"), "max-age=") {
			t.Fatalf("HTTPS: %d, HSTS %q", resp.StatusCode, resp.Header.Get("Strict-Transport-Security"))
		}
	})
}

func instanceAddr(t *testing.T, c *consul.Client, service string) string {
	t.Helper()
	entries, _, err := c.Health().Service(service, "", true, nil)
	if err != nil || len(entries) == 0 {
		t.Fatalf("no passing %s: %v", service, err)
	}
	s := entries[0].Service
	return net.JoinHostPort(s.Address, strconv.Itoa(s.Port))
}

func tlsClient(cfg *tls.Config) *http.Client {
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: cfg, DisableKeepAlives: true}}
}

// leafClient presents a Connect leaf of service, fetched from the agent as an instance
// of that service would (the server is not verified: this is the attacker's side).
func leafClient(t *testing.T, c *consul.Client, service string) *http.Client {
	t.Helper()
	leaf, _, err := c.Agent().ConnectCALeaf(service, nil)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := tls.X509KeyPair([]byte(leaf.CertPEM), []byte(leaf.PrivateKeyPEM))
	if err != nil {
		t.Fatal(err)
	}
	return tlsClient(&tls.Config{InsecureSkipVerify: true, Certificates: []tls.Certificate{cert}})
}

// foreignCert is a client certificate of a CA of its own, naming the order service.
func foreignCert(t *testing.T) *tls.Config {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse("spiffe://11111111-2222-3333-4444-555555555555.consul/ns/default/dc/dc1/svc/order")
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "order"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), URIs: []*url.URL{u},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Config{InsecureSkipVerify: true, Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}
}

// servedSerial is the serial number of the certificate an instance presents.
func servedSerial(t *testing.T, addr string) string {
	t.Helper()
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0].SerialNumber.String()
}

func logsContain(t *testing.T, service, s string) bool {
	t.Helper()
	for _, p := range env.stack.Procs {
		if p.Service != service {
			continue
		}
		b, err := os.ReadFile(p.Log)
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(string(b), "\n") {
			if strings.Contains(line, "call refused") && strings.Contains(line, s) {
				return true
			}
		}
	}
	return false
}

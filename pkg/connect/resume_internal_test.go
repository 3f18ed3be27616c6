package connect

import (
	"bytes"
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
	"net/url"
	"testing"
	"time"

	"github.com/kitshop/kitshop/pkg/client"
)

// testCA is a certificate authority of the test's own, standing in for Connect's.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

func newTestCA(t *testing.T, name string) testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return testCA{cert: cert, key: key}
}

func (ca testCA) pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.cert)
	return p
}

// leaf issues a certificate for service, usable by a client and a server.
func (ca testCA) leaf(t *testing.T, service string, serial int64) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse("spiffe://test.consul/ns/default/dc/dc1/svc/" + service)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: service},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		URIs: []*url.URL{u}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// TestServerChecksResumedSessions: a caller's session is resumed while its
// certificate's CA is trusted, and refused once that CA is replaced (and its grace
// is over), even with a valid session ticket.
func TestServerChecksResumedSessions(t *testing.T) {
	oldCA, newCA := newTestCA(t, "old"), newTestCA(t, "new")
	serverLeaf := oldCA.leaf(t, "inventory", 2)
	server := &Identity{service: "inventory", leaf: &serverLeaf, roots: oldCA.pool()}
	addr := echoPeerServer(t, server)

	callerLeaf := oldCA.leaf(t, "order", 3)
	caller := &tls.Config{
		MinVersion: tls.VersionTLS12, RootCAs: oldCA.pool(), ServerName: "127.0.0.1",
		Certificates:       []tls.Certificate{callerLeaf},
		ClientSessionCache: tls.NewLRUClientSessionCache(4),
		// The server's name is a SPIFFE ID, not 127.0.0.1: the test checks the server side.
		InsecureSkipVerify: true,
	}
	dial := func() (resumed bool, err error) {
		conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 2 * time.Second}, "tcp", addr, caller)
		if err != nil {
			return false, err
		}
		defer conn.Close()
		// In TLS 1.3 the server checks the client's certificate after the client's
		// handshake is done: its refusal comes as an alert on the first read.
		if _, err := io.ReadAll(conn); err != nil {
			return false, err
		}
		return conn.ConnectionState().DidResume, nil
	}
	for i, want := range []bool{false, true} {
		resumed, err := dial()
		if err != nil || resumed != want {
			t.Fatalf("connection %d: resumed %v, err %v; want resumed %v", i+1, resumed, err, want)
		}
	}

	server.mu.Lock()
	server.roots = newCA.pool() // rotated; the old roots' grace is over
	server.mu.Unlock()
	if resumed, err := dial(); err == nil {
		t.Fatalf("a session of a replaced CA's certificate was accepted (resumed %v)", resumed)
	}
}

// TestSessionsAfterIdentityChange: once roots or a leaf change, neither side resumes a
// session of before (it would carry the old certificates, which a replaced CA leaves
// untrusted): the next connection shakes hands in full, with the caller's new leaf,
// and the one after resumes again. A restarted dev agent reissues the same serial
// numbers, so the new leaves here reuse them.
func TestSessionsAfterIdentityChange(t *testing.T) {
	cases := []struct {
		name   string
		change func(t *testing.T, ca testCA, server, caller *Identity) tls.Certificate // the caller's leaf after it
	}{
		{"CA replaced", func(t *testing.T, _ testCA, server, caller *Identity) tls.Certificate {
			newCA := newTestCA(t, "new")
			serverLeaf, callerLeaf := newCA.leaf(t, "inventory", 2), newCA.leaf(t, "order", 3)
			for _, c := range []struct {
				id   *Identity
				leaf *tls.Certificate
			}{{server, &serverLeaf}, {caller, &callerLeaf}} {
				c.id.setRoots(newCA.pool())
				c.id.setLeaf(c.leaf, "03")
				c.id.mu.Lock()
				c.id.previousUntil = time.Now() // the old roots' grace is over
				c.id.mu.Unlock()
			}
			return callerLeaf
		}},
		{"caller's leaf reissued", func(t *testing.T, ca testCA, _, caller *Identity) tls.Certificate {
			leaf := ca.leaf(t, "order", 3)
			caller.setLeaf(&leaf, "03")
			return leaf
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			oldCA := newTestCA(t, "old")
			serverLeaf, callerLeaf := oldCA.leaf(t, "inventory", 2), oldCA.leaf(t, "order", 3)
			server := &Identity{service: "inventory", leaf: &serverLeaf, roots: oldCA.pool()}
			caller := &Identity{service: "order", leaf: &callerLeaf, roots: oldCA.pool()}
			addr := echoPeerServer(t, server)
			d := &client.Dialer{TLS: caller.ClientTLS("inventory")}
			dial := func(want bool, wantLeaf tls.Certificate) {
				t.Helper()
				conn, err := d.DialContext(context.Background(), "tcp", addr)
				if err != nil {
					t.Fatalf("dial: %v", err)
				}
				defer conn.Close()
				seen, err := io.ReadAll(conn)
				if err != nil {
					t.Fatalf("read: %v", err)
				}
				if resumed := conn.(*tls.Conn).ConnectionState().DidResume; resumed != want {
					t.Fatalf("resumed %v; want %v", resumed, want)
				}
				if !bytes.Equal(seen, wantLeaf.Certificate[0]) {
					t.Fatal("the server saw another certificate than the caller's current leaf")
				}
			}
			dial(false, callerLeaf)
			dial(true, callerLeaf)
			now := tc.change(t, oldCA, server, caller)
			dial(false, now)
			dial(true, now)
		})
	}
}

// echoPeerServer serves TLS with id's ServerTLS and answers each connection with the
// certificate its caller is known by (from a resumed session, the first one's).
func echoPeerServer(t *testing.T, id *Identity) string {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", id.ServerTLS())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer conn.Close()
				tc := conn.(*tls.Conn)
				if tc.Handshake() != nil {
					return
				}
				if peers := tc.ConnectionState().PeerCertificates; len(peers) > 0 {
					_, _ = conn.Write(peers[0].Raw) // also sends the session ticket
				}
			}()
		}
	}()
	return ln.Addr().String()
}

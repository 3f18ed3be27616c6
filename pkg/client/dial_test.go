package client_test

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kitshop/kitshop/pkg/client"
)

// tlsServer is an HTTPS test server whose handshakes can be held.
type tlsServer struct {
	*httptest.Server
	hold        chan struct{} // closed: handshakes go on
	inHandshake atomic.Int64
	maxSeen     atomic.Int64
	handshakes  atomic.Int64
}

func newTLSServer(t *testing.T, held bool) *tlsServer {
	s := &tlsServer{hold: make(chan struct{})}
	if !held {
		close(s.hold)
	}
	s.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "ok")
	}))
	s.Config.ErrorLog = log.New(io.Discard, "", 0) // handshakes the tests cut short
	s.TLS = &tls.Config{GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
		n := s.inHandshake.Add(1)
		defer s.inHandshake.Add(-1)
		s.handshakes.Add(1)
		for {
			m := s.maxSeen.Load()
			if n <= m || s.maxSeen.CompareAndSwap(m, n) {
				break
			}
		}
		<-s.hold
		return nil, nil
	}}
	s.StartTLS()
	t.Cleanup(s.Close)
	return s
}

func (s *tlsServer) trust() *tls.Config {
	return s.Client().Transport.(*http.Transport).TLSClientConfig
}

func (s *tlsServer) addr() string { return s.Listener.Addr().String() }

// roundTrip sends one request on conn and reads the answer, so that the client also
// reads the session ticket a TLS 1.3 server sends after the handshake.
func roundTrip(t *testing.T, conn net.Conn) {
	t.Helper()
	if _, err := io.WriteString(conn, "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadAll(conn); err != nil {
		t.Fatal(err)
	}
}

// TestDialerCapsDialsPerHost: twelve callers at once to one instance put at most
// MaxPerHost handshakes under way; all of them get a connection once the server goes
// on.
func TestDialerCapsDialsPerHost(t *testing.T) {
	srv := newTLSServer(t, true)
	d := &client.Dialer{TLS: srv.trust(), MaxPerHost: 3}
	var wg sync.WaitGroup
	var dialed atomic.Int64
	for range 12 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			conn, err := d.DialContext(context.Background(), "tcp", srv.addr())
			if err != nil {
				t.Error(err)
				return
			}
			dialed.Add(1)
			_ = conn.Close()
		}()
	}
	deadline := time.Now().Add(2 * time.Second)
	for srv.inHandshake.Load() < 3 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond) // room for a fourth handshake, should the cap leak
	if got := srv.maxSeen.Load(); got != 3 {
		t.Fatalf("%d handshakes under way at once, want 3", got)
	}
	close(srv.hold)
	wg.Wait()
	if dialed.Load() != 12 {
		t.Fatalf("%d of 12 callers got a connection", dialed.Load())
	}
}

// TestDialerBudget: a dial under way finishes whatever becomes of its caller's
// context; a caller still waiting for its turn leaves when its context ends, and
// its dial is never made.
func TestDialerBudget(t *testing.T) {
	srv := newTLSServer(t, true)
	d := &client.Dialer{TLS: srv.trust(), MaxPerHost: 1}
	ctx, cancel := context.WithCancel(context.Background())
	first := make(chan error, 1)
	go func() {
		conn, err := d.DialContext(ctx, "tcp", srv.addr())
		if err == nil {
			_ = conn.Close()
		}
		first <- err
	}()
	for srv.inHandshake.Load() < 1 {
		time.Sleep(5 * time.Millisecond)
	}
	waiting, stopWaiting := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer stopWaiting()
	if _, err := d.DialContext(waiting, "tcp", srv.addr()); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("a caller waiting for its turn: err %v, want its deadline", err)
	}
	cancel() // the first caller gives up mid-handshake
	time.Sleep(20 * time.Millisecond)
	close(srv.hold)
	if err := <-first; err != nil {
		t.Fatalf("the dial under way was cut short: %v", err)
	}
	if n := srv.handshakes.Load(); n != 1 {
		t.Fatalf("%d handshakes, want 1 (the caller that left before its turn dialed nothing)", n)
	}
}

// TestDialerResumesPerInstance: a second connection to an instance resumes the TLS
// session of the first, also after a connection to another instance on the same host
// (Go keys sessions by host name; one instance's ticket means nothing to another).
func TestDialerResumesPerInstance(t *testing.T) {
	a, b := newTLSServer(t, false), newTLSServer(t, false)
	d := &client.Dialer{TLS: a.trust()}
	resumed := func(addr string) bool {
		conn, err := d.DialContext(context.Background(), "tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		did := conn.(*tls.Conn).ConnectionState().DidResume
		roundTrip(t, conn)
		return did
	}
	for i, step := range []struct {
		addr string
		want bool
	}{{a.addr(), false}, {b.addr(), false}, {a.addr(), true}, {b.addr(), true}} {
		if got := resumed(step.addr); got != step.want {
			t.Fatalf("connection %d: resumed %v, want %v", i+1, got, step.want)
		}
	}
}

package client

import (
	"context"
	"crypto/tls"
	"net"
	"sync"
	"time"
)

// Dialer opens the connections of calls to other services' instances: TCP, then the
// TLS handshake when TLS is set. What a crowd arriving on a stack that has just
// started needs of it:
//   - at most MaxPerHost dials are under way to one instance at once; the other
//     callers wait for one of those (or, in a pool, for a connection handed back),
//     instead of opening one connection each and putting every handshake on the same
//     two cores at the same moment;
//   - a dial has a budget of its own (Timeout), not the request's: a handshake cut off
//     because one request ran out of time is work thrown away, and the connection
//     would have served the next request;
//   - TLS sessions are resumed, per instance: a resumed handshake skips the
//     certificate's signature and its chain's verification on both sides.
//
// The zero Dialer dials plain TCP with the defaults below.
type Dialer struct {
	TLS        *tls.Config   // nil: plain TCP
	Timeout    time.Duration // one dial plus its handshake; zero: DefaultDialTimeout
	MaxPerHost int           // dials under way to one instance at once; zero: DefaultDialsPerHost

	mu       sync.Mutex
	hosts    map[string]*dialHost
	sessions tls.ClientSessionCache
}

// Defaults of Dialer.
const (
	DefaultDialTimeout  = 5 * time.Second
	DefaultDialsPerHost = 4
)

// dialHost is what the dialer keeps per instance address.
type dialHost struct {
	slots chan struct{} // one per dial under way
	tls   *tls.Config   // the Dialer's, with this instance's name and sessions
}

// maxDialHosts bounds the instances the dialer remembers: instances come and go (each
// restart on a new port is a new address), and a forgotten one only loses its TLS
// session.
const maxDialHosts = 1024

// sessions is how many TLS sessions the dialer keeps when its TLS configuration has
// no session cache of its own.
const sessions = 1024

func (d *Dialer) host(addr string) *dialHost {
	d.mu.Lock()
	defer d.mu.Unlock()
	if h, ok := d.hosts[addr]; ok {
		return h
	}
	if d.hosts == nil || len(d.hosts) >= maxDialHosts {
		d.hosts = map[string]*dialHost{}
	}
	n := d.MaxPerHost
	if n <= 0 {
		n = DefaultDialsPerHost
	}
	h := &dialHost{slots: make(chan struct{}, n)}
	if d.TLS != nil {
		h.tls = d.TLS.Clone()
		if h.tls.ServerName == "" {
			h.tls.ServerName, _, _ = net.SplitHostPort(addr)
		}
		// Go keys a session by ServerName, the same for every instance on one host:
		// keys that name the instance keep one instance's tickets from being offered
		// to another, which could not resume them. The configuration's own cache, if
		// it has one, stays the store (connect's decides which sessions may resume).
		if d.sessions == nil {
			d.sessions = d.TLS.ClientSessionCache
			if d.sessions == nil {
				d.sessions = tls.NewLRUClientSessionCache(sessions)
			}
		}
		h.tls.ClientSessionCache = instanceSessions{d.sessions, addr}
	}
	d.hosts[addr] = h
	return h
}

// DialContext waits, at most until ctx ends, for its turn to dial addr, then dials
// and shakes hands within the dialer's own Timeout, whatever becomes of ctx: a caller
// that must not wait that long runs it in a goroutine and keeps the connection for
// later (net/http's Transport does: it passes a context without cancellation and
// pools what it gets). It has the signature of http.Transport.DialContext and
// DialTLSContext.
func (d *Dialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	h := d.host(addr)
	select {
	case h.slots <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	defer func() { <-h.slots }()
	timeout := d.Timeout
	if timeout <= 0 {
		timeout = DefaultDialTimeout
	}
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
	defer cancel()
	nd := net.Dialer{KeepAlive: 15 * time.Second}
	raw, err := nd.DialContext(dctx, network, addr)
	if err != nil || h.tls == nil {
		return raw, err
	}
	conn := tls.Client(raw, h.tls)
	if err := conn.HandshakeContext(dctx); err != nil {
		_ = raw.Close()
		return nil, err
	}
	return conn, nil
}

// instanceSessions is a session cache's part for one instance address.
type instanceSessions struct {
	sessions tls.ClientSessionCache
	addr     string
}

func (c instanceSessions) Get(key string) (*tls.ClientSessionState, bool) {
	return c.sessions.Get(c.addr + " " + key)
}

func (c instanceSessions) Put(key string, cs *tls.ClientSessionState) {
	c.sessions.Put(c.addr+" "+key, cs)
}

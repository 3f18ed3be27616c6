package app

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"

	"github.com/kitshop/kitshop/pkg/clientip"
	"github.com/kitshop/kitshop/pkg/connect"
	"github.com/kitshop/kitshop/pkg/errs"
)

// TLS modes of Config.TLS.
const (
	TLSOn  = "on"
	TLSOff = "off"
)

// tlsOn reports whether the instance uses mTLS (the zero Config does not: TLS is
// opt-in for the library, and on by default in the binaries through the flag).
func (c Config) tlsOn() bool { return c.TLS == TLSOn }

// listenAddr is HTTPAddr, except for a service (not the edge) in plain HTTP: there an
// address without a host (":8081", the default) means loopback, since nothing tells
// its callers apart. Naming an interface ("0.0.0.0:8081") still listens there.
func (c Config) listenAddr() string { return c.listenAddrOf(c.HTTPAddr) }

// listenAddrOf is listenAddr's rule for any of the instance's listen addresses.
func (c Config) listenAddrOf(addr string) string {
	if c.Edge || c.tlsOn() {
		return addr
	}
	if host, port, err := net.SplitHostPort(addr); err == nil && host == "" {
		return net.JoinHostPort("127.0.0.1", port)
	}
	return addr
}

// loopbackHost reports whether the host of addr is a loopback address or localhost.
func loopbackHost(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}

func (c Config) validateTLS() error {
	switch c.TLS {
	case "", TLSOn, TLSOff:
	default:
		return fmt.Errorf("-tls must be %q or %q, not %q", TLSOn, TLSOff, c.TLS)
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		return errors.New("-tls-cert and -tls-key go together")
	}
	if c.TLSCert != "" && !c.Edge {
		return errors.New("-tls-cert is for the public edge (the gateway); services use their Connect certificate")
	}
	if c.tlsOn() && c.ConsulAddr == "" {
		return errors.New("mTLS needs Consul's CA (-consul-addr); run with -tls=off without Consul")
	}
	if (c.TrustedProxies != "" || c.AdminAddr != "") && !c.Edge {
		return errors.New("-trusted-proxies and -admin-addr are for the public edge (the gateway)")
	}
	return nil
}

// identityTimeout bounds the first fetch of the leaf certificate at start-up (a dev
// agent that just started may need a moment to set up its CA).
const identityTimeout = 30 * time.Second

// newIdentity fetches the instance's Connect identity, retrying while the agent's CA is
// not ready yet.
func (a *App) newIdentity() (*connect.Identity, error) {
	ctx, cancel := context.WithTimeout(context.Background(), identityTimeout)
	defer cancel()
	for {
		id, err := connect.New(ctx, a.Consul, a.Config.Service, a.Logger)
		if err == nil {
			return id, nil
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("%w (start Consul with Connect on, or run with -tls=off)", err)
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// Identity is the instance's Connect identity; nil when TLS is off.
func (a *App) Identity() *connect.Identity { return a.identity }

// RestrictPaths lets only the named services call the routes (or gRPC methods, by
// their full name) under prefix, on top of the intentions, which allow or deny a
// calling service as a whole. It panics once the rules are in use (Handler, Run or
// GRPCServer was called): a rule added later would guard nothing.
func (a *App) RestrictPaths(prefix string, callers ...string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.rulesInUse {
		panic("app: RestrictPaths(" + prefix + ") after Handler, Run or GRPCServer: call it first")
	}
	a.pathRules = append(a.pathRules, connect.PathRule{Prefix: prefix, Callers: callers})
}

// rules are the path rules, fixed from now on.
func (a *App) rules() []connect.PathRule {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.rulesInUse = true
	return slices.Clone(a.pathRules)
}

// authorizer is the instance's one Authorizer (with mTLS), shared by HTTP and gRPC:
// one cache of intention answers, one question to the agent for both.
func (a *App) authorizer() *connect.Authorizer {
	rules := a.rules()
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.authz == nil {
		a.authz = connect.NewAuthorizer(a.identity, a.Config.IntentionsCache, rules, a.Logger)
	}
	return a.authz
}

// secure wraps the handler for the configured mode (secureListener is its listener):
//   - an internal service with mTLS: each caller authorised by its certificate against
//     the intentions; /health and /metrics stay open (Consul's check presents no
//     certificate), also in plain HTTP on the same port;
//   - an internal service in plain HTTP: no caller proves who it is, so the routes
//     restricted to some callers (RestrictPaths) answer loopback peers only;
//   - the edge (gateway) with a certificate: plain HTTP only for loopback clients
//     (local tools) and health checks; other plain requests are sent to HTTPS. HSTS on
//     HTTPS answers;
//   - the edge without a certificate: as it is.
func (a *App) secure(h http.Handler) http.Handler {
	c := a.Config
	rules := a.rules()
	switch {
	case c.Edge && c.TLSCert != "":
		return hsts(a.requireHTTPS(h))
	case c.Edge:
		return h
	case a.identity != nil:
		return a.authorizer().Middleware(h, "/health", "/metrics")
	default:
		return loopbackOnly(h, rules, a.Logger)
	}
}

// secureListener is the listener of the configured mode: TLS with the Connect leaf for
// an internal service with mTLS, HTTPS with the edge's certificate, each beside plain
// HTTP on the same port (sniffListener); plain HTTP otherwise.
func (a *App) secureListener() (net.Listener, error) {
	c := a.Config
	switch {
	case c.Edge && c.TLSCert != "":
		cert, err := tls.LoadX509KeyPair(c.TLSCert, c.TLSKey)
		if err != nil {
			return nil, fmt.Errorf("edge certificate: %w", err)
		}
		cfg := &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}}
		_ = level.Info(a.Logger).Log("msg", "serving HTTPS, and plain HTTP to loopback clients and health checks, on one port", "cert", c.TLSCert)
		return newSniffListener(a.listener, cfg), nil
	case c.Edge:
		if c.tlsOn() {
			_ = level.Warn(a.Logger).Log("msg", "no -tls-cert: the public listener serves plain HTTP only")
		}
		return a.listener, nil
	case a.identity != nil:
		return newSniffListener(a.listener, a.identity.ServerTLS()), nil
	}
	return a.listener, nil
}

// loopbackOnly refuses, with 403 and a log line, the routes of rules to callers on
// other hosts: without certificates nothing says which service calls.
func loopbackOnly(h http.Handler, rules []connect.PathRule, logger log.Logger) http.Handler {
	if len(rules) == 0 {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if rule, ok := connect.RuleFor(rules, r.URL.Path); ok && !clientip.Loopback(clientip.Peer(r)) {
			_ = level.Warn(logger).Log("msg", "plain HTTP: call from another host refused", "remote", r.RemoteAddr,
				"method", r.Method, "path", r.URL.Path, "reason", "routes under "+rule.Prefix+" answer loopback callers only without mTLS")
			errs.WriteHTTP(w, connect.ErrForbidden)
			return
		}
		h.ServeHTTP(w, r)
	})
}

func hsts(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.TLS != nil {
			w.Header().Set("Strict-Transport-Security", "max-age=31536000")
		}
		h.ServeHTTP(w, r)
	})
}

// sniffListener serves TLS and plain HTTP on one port: a connection whose first byte
// opens a TLS handshake (0x16) is served as TLS, any other as plain HTTP. One port keeps
// Consul's registration (one address, one HTTP check) unchanged whatever the mode.
type sniffListener struct {
	net.Listener
	cfg   *tls.Config
	conns chan net.Conn
	errs  chan error
	done  chan struct{}
	once  sync.Once
}

// sniffTimeout bounds how long a new connection may wait before its first byte.
const sniffTimeout = 10 * time.Second

func newSniffListener(ln net.Listener, cfg *tls.Config) *sniffListener {
	l := &sniffListener{Listener: ln, cfg: cfg, conns: make(chan net.Conn), errs: make(chan error, 1), done: make(chan struct{})}
	go l.acceptLoop()
	return l
}

func (l *sniffListener) acceptLoop() {
	for {
		conn, err := l.Listener.Accept()
		if err != nil {
			select {
			case l.errs <- err:
			case <-l.done:
			}
			return
		}
		// Sniffed apart from the loop, so a client that sends nothing holds up no one.
		go l.sniff(conn)
	}
}

func (l *sniffListener) sniff(conn net.Conn) {
	_ = conn.SetReadDeadline(time.Now().Add(sniffTimeout))
	br := bufio.NewReaderSize(conn, 1)
	first, err := br.Peek(1)
	_ = conn.SetReadDeadline(time.Time{})
	if err != nil {
		_ = conn.Close()
		return
	}
	var c net.Conn = &peekedConn{Conn: conn, r: br}
	if first[0] == 0x16 {
		c = tls.Server(c, l.cfg)
	}
	select {
	case l.conns <- c:
	case <-l.done:
		_ = conn.Close()
	}
}

func (l *sniffListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case err := <-l.errs:
		return nil, err
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *sniffListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return l.Listener.Close()
}

// peekedConn replays the sniffed byte before the rest of the connection.
type peekedConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *peekedConn) Read(p []byte) (int, error) { return c.r.Read(p) }

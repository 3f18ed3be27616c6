package gateway

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/kitshop/kitshop/pkg/client"
)

// upstreamClient sends the gateway's HTTP/1.1 requests to upstream instances over
// kept-alive connections, in the calling goroutine. net/http's Transport hands every
// request to a writing goroutine and every response back from a reading one: two
// handoffs, with their wake-ups, per request, which the profile of the proxy path
// showed next to the socket I/O itself. The gateway reads every answer whole, so it
// needs neither. It is the go-kit client's HTTPClient (kithttp.SetClient): it never
// follows redirects, and answers with the context's error once the context is done.
type upstreamClient struct {
	dial        func(ctx context.Context, network, addr string) (net.Conn, error) // a client.Dialer's
	maxIdle     int                                                               // idle connections kept per instance
	idleTimeout time.Duration                                                     // an idle connection older than this is closed, not reused

	mu      sync.Mutex
	idle    map[string][]*upstreamConn        // by host:port; the most recently used last
	waiting map[string][]chan<- *upstreamConn // by host:port: calls waiting for a connection, oldest first
}

func newUpstreamClient(maxIdle int, tlsConf *tls.Config) *upstreamClient {
	return &upstreamClient{
		dial:        (&client.Dialer{TLS: tlsConf}).DialContext,
		maxIdle:     maxIdle,
		idleTimeout: 90 * time.Second, // below the services' 120 s server IdleTimeout
		idle:        map[string][]*upstreamConn{},
		waiting:     map[string][]chan<- *upstreamConn{},
	}
}

type upstreamConn struct {
	net.Conn
	br     *bufio.Reader
	bw     *bufio.Writer
	host   string
	reused bool
	expiry *time.Timer // closes the connection once idle for idleTimeout
}

// errStaleConnection is a kept-alive connection found closed by the upstream before
// it answered: the request is sent again on a new connection.
var errStaleConnection = errors.New("gateway: kept-alive upstream connection was closed")

// Do sends req and returns the response, whose body must be read or closed.
func (c *upstreamClient) Do(req *http.Request) (*http.Response, error) {
	ctx := req.Context()
	for try := 0; ; try++ {
		if try > 0 && req.GetBody != nil {
			body, err := req.GetBody() // the last try consumed the body
			if err != nil {
				return nil, err
			}
			req = req.WithContext(ctx)
			req.Body = body
		}
		conn, err := c.get(ctx, req.URL.Host)
		if err != nil {
			return nil, contextError(ctx, err)
		}
		resp, err := c.roundTrip(ctx, conn, req)
		if err == nil {
			return resp, nil
		}
		_ = conn.Close()
		// As net/http does: a request that met a connection the upstream had closed
		// while idle is sent again on another connection, when sending it twice is
		// safe and its body can be read anew.
		if errors.Is(err, errStaleConnection) && ctx.Err() == nil && replayable(req) {
			continue
		}
		return nil, contextError(ctx, err)
	}
}

// contextError is ctx's error once ctx has ended, including when err is the timeout of
// the deadline the connection took from ctx (its timer may fire before the context's
// own): a spent budget must read as one, not as an unreachable instance.
func contextError(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	var netErr net.Error
	if d, ok := ctx.Deadline(); ok && !time.Now().Before(d) && errors.As(err, &netErr) && netErr.Timeout() {
		return context.DeadlineExceeded
	}
	return err
}

// replayable reports whether req may be sent again: an idempotent method or an
// Idempotency-Key (net/http's rule), and a body that is empty or can be read anew.
func replayable(req *http.Request) bool {
	switch req.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace:
	default:
		if req.Header.Get("Idempotency-Key") == "" {
			return false
		}
	}
	return req.Body == nil || req.Body == http.NoBody || req.GetBody != nil
}

func (c *upstreamClient) roundTrip(ctx context.Context, conn *upstreamConn, req *http.Request) (*http.Response, error) {
	deadline, _ := ctx.Deadline() // zero: none
	if err := conn.SetDeadline(deadline); err != nil {
		return nil, err
	}
	// The context ending (a client gone, a budget spent) interrupts the I/O at once.
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	resp, err := c.exchange(conn, req)
	if err != nil {
		stop()
		return nil, err
	}
	body := &upstreamBody{ctx: ctx, rc: resp.Body, conn: conn, client: c, stop: stop, reuse: !resp.Close && !req.Close}
	resp.Body = body
	if resp.ContentLength == 0 || req.Method == http.MethodHead {
		body.finish(true)
	}
	return resp, nil
}

// exchange writes req on conn and reads the final response's head.
func (c *upstreamClient) exchange(conn *upstreamConn, req *http.Request) (*http.Response, error) {
	if err := req.Write(conn.bw); err != nil {
		return nil, c.stale(conn, err)
	}
	if err := conn.bw.Flush(); err != nil {
		return nil, c.stale(conn, err)
	}
	if _, err := conn.br.Peek(1); err != nil {
		return nil, c.stale(conn, err)
	}
	for interim := 0; ; interim++ {
		if interim > maxInterim {
			return nil, errors.New("gateway: upstream sent too many 1xx answers")
		}
		resp, err := http.ReadResponse(conn.br, req)
		if err != nil {
			return nil, err
		}
		switch {
		case resp.StatusCode == http.StatusSwitchingProtocols:
			return nil, errors.New("gateway: upstream switched protocols")
		case resp.StatusCode >= 200:
			return resp, nil
		}
		// Any other 1xx is interim (103 Early Hints, say; the gateway sends no
		// Expect): the final answer follows.
	}
}

// maxInterim bounds the 1xx answers read before the final one (net/http's bound).
const maxInterim = 5

// stale marks err as a closed kept-alive connection when conn was reused and nothing
// of an answer came back.
func (c *upstreamClient) stale(conn *upstreamConn, err error) error {
	if conn.reused && (errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) || isReset(err)) {
		return fmt.Errorf("%w: %w", errStaleConnection, err)
	}
	return err
}

func isReset(err error) bool {
	var opErr *net.OpError
	return errors.As(err, &opErr) && !opErr.Timeout()
}

// get returns an idle connection to host; with none, whichever comes first of a new
// one (client.Dialer: a few dials at a time per instance) and one that another call
// hands back. A dial that is no longer needed when its turn comes is not made; one
// under way when its caller stops waiting goes on, and its connection is kept.
func (c *upstreamClient) get(ctx context.Context, host string) (*upstreamConn, error) {
	if conn := c.takeIdle(host); conn != nil {
		return conn, nil
	}
	handed := make(chan *upstreamConn, 1)
	c.mu.Lock()
	c.waiting[host] = append(c.waiting[host], handed)
	c.mu.Unlock()
	dialCtx, stopDial := context.WithCancel(context.WithoutCancel(ctx))
	dialed := make(chan dialResult, 1)
	go func() {
		conn, err := c.dial(dialCtx, "tcp", host)
		dialed <- dialResult{conn, err}
	}()
	select {
	case conn := <-handed:
		stopDial()
		go c.keep(host, dialed)
		return conn, nil
	case r := <-dialed:
		stopDial()
		c.unwait(host, handed)
		if r.err != nil {
			return nil, r.err
		}
		return newUpstreamConn(r.conn, host), nil
	case <-ctx.Done():
		stopDial()
		c.unwait(host, handed)
		go c.keep(host, dialed)
		return nil, ctx.Err()
	}
}

type dialResult struct {
	conn net.Conn
	err  error
}

// takeIdle returns an idle connection to host that is still usable, or nil.
func (c *upstreamClient) takeIdle(host string) *upstreamConn {
	for {
		c.mu.Lock()
		conns := c.idle[host]
		if len(conns) == 0 {
			c.mu.Unlock()
			return nil
		}
		conn := conns[len(conns)-1]
		c.idle[host] = conns[:len(conns)-1]
		c.mu.Unlock()
		// Should the timer fire anyway, expire no longer finds the connection idle.
		conn.expiry.Stop()
		// net/http's reader goroutine notices an upstream closing an idle connection
		// (a graceful restart closes them all); without one, the connection is looked
		// at before use, so that a request that cannot be sent twice is not lost on it.
		if conn.br.Buffered() > 0 || !idleAlive(conn.Conn) {
			_ = conn.Close()
			continue
		}
		conn.reused = true
		return conn
	}
}

// unwait takes handed off the waiting list of host. A connection handed to it in the
// meantime goes back to the pool.
func (c *upstreamClient) unwait(host string, handed chan *upstreamConn) {
	c.mu.Lock()
	ws := c.waiting[host]
	i := slices.Index(ws, chan<- *upstreamConn(handed))
	if i >= 0 {
		c.waiting[host] = slices.Delete(ws, i, i+1)
	}
	c.mu.Unlock()
	if i < 0 { // put took it off the list and handed a connection (under the lock)
		c.put(<-handed)
	}
}

// keep pools the connection of a dial whose caller took another one or left.
func (c *upstreamClient) keep(host string, dialed <-chan dialResult) {
	if r := <-dialed; r.err == nil {
		c.put(newUpstreamConn(r.conn, host))
	}
}

func newUpstreamConn(conn net.Conn, host string) *upstreamConn {
	return &upstreamConn{Conn: conn, br: bufio.NewReaderSize(conn, 8<<10), bw: bufio.NewWriterSize(conn, 4<<10), host: host}
}

// put hands conn to the oldest call waiting for a connection to its host, or keeps it
// for the next one, or closes it when enough are kept. A kept connection is closed
// after idleTimeout unused, so an instance that went away leaves no sockets behind.
func (c *upstreamClient) put(conn *upstreamConn) {
	c.mu.Lock()
	if ws := c.waiting[conn.host]; len(ws) > 0 {
		c.waiting[conn.host] = ws[1:]
		if len(ws) == 1 {
			delete(c.waiting, conn.host)
		}
		conn.reused = true
		ws[0] <- conn // buffered, and each waiter is handed one connection at most
		c.mu.Unlock()
		return
	}
	if len(c.idle[conn.host]) >= c.maxIdle {
		c.mu.Unlock()
		_ = conn.Close()
		return
	}
	c.idle[conn.host] = append(c.idle[conn.host], conn)
	if conn.expiry == nil {
		conn.expiry = time.AfterFunc(c.idleTimeout, func() { c.expire(conn) })
	} else {
		conn.expiry.Reset(c.idleTimeout)
	}
	c.mu.Unlock()
}

// expire closes conn if it is still idle.
func (c *upstreamClient) expire(conn *upstreamConn) {
	c.mu.Lock()
	conns := c.idle[conn.host]
	i := slices.Index(conns, conn)
	if i >= 0 {
		c.idle[conn.host] = slices.Delete(conns, i, i+1)
		if len(c.idle[conn.host]) == 0 {
			delete(c.idle, conn.host)
		}
	}
	c.mu.Unlock()
	if i >= 0 {
		_ = conn.Close()
	}
}

// CloseIdleConnections closes the connections kept for reuse.
func (c *upstreamClient) CloseIdleConnections() {
	c.mu.Lock()
	idle := c.idle
	c.idle = map[string][]*upstreamConn{}
	c.mu.Unlock()
	for _, conns := range idle {
		for _, conn := range conns {
			conn.expiry.Stop()
			_ = conn.Close()
		}
	}
}

// upstreamBody is a response body: once read to its end (or closed after that) the
// connection goes back to the pool; closed early, the connection is closed.
type upstreamBody struct {
	ctx    context.Context
	rc     io.ReadCloser
	conn   *upstreamConn
	client *upstreamClient
	stop   func() bool // stops the context's interruption; false: it already fired
	reuse  bool        // the answer allows the connection to be kept
	mu     sync.Mutex
	done   bool
}

func (b *upstreamBody) Read(p []byte) (int, error) {
	n, err := b.rc.Read(p)
	switch {
	case err == io.EOF:
		b.finish(true)
	case err != nil:
		b.finish(false)
		err = contextError(b.ctx, err)
	}
	return n, err
}

// maxDrain is how much unread body Close still reads to keep the connection.
const maxDrain = 4 << 10

func (b *upstreamBody) Close() error {
	b.mu.Lock()
	done := b.done
	b.mu.Unlock()
	if done {
		return nil
	}
	// A body read up to its last byte has not necessarily seen io.EOF yet.
	_, err := io.CopyN(io.Discard, b.rc, maxDrain+1)
	b.finish(err == io.EOF)
	return nil
}

func (b *upstreamBody) finish(complete bool) {
	b.mu.Lock()
	if b.done {
		b.mu.Unlock()
		return
	}
	b.done = true
	b.mu.Unlock()
	// Bytes past the end of the answer (an upstream that sent more than it announced)
	// would be read as the next request's answer: such a connection is not kept.
	if b.stop() && complete && b.reuse && b.conn.br.Buffered() == 0 {
		if err := b.conn.SetDeadline(time.Time{}); err == nil {
			b.client.put(b.conn)
			return
		}
	}
	_ = b.conn.Close()
}

package client

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"sync"
	"time"

	"github.com/go-kit/kit/endpoint"
	"github.com/go-kit/kit/sd"
	kitzipkin "github.com/go-kit/kit/tracing/zipkin"
	kitgrpc "github.com/go-kit/kit/transport/grpc"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/status"

	"github.com/kitshop/kitshop/pkg/errs"
)

// GRPCRoute is one upstream gRPC method.
type GRPCRoute struct {
	Name    string // for spans: "<service>.<name>"
	Service string // the gRPC service's full name, "kitshop.inventory.v1.Reservations"
	Method  string // "Reserve"
	Encode  kitgrpc.EncodeRequestFunc
	Decode  kitgrpc.DecodeResponseFunc
	Reply   any // a pointer to a zero reply message, &pb.Reservation{}: its type is what is read
	// Read: the call only reads, so a try may be cut off after AttemptTimeout and
	// sent to another instance (see Options).
	Read       bool
	Idempotent bool // safe to send twice: a read, or a call keyed by an idempotency key
}

// GRPCService builds client endpoints for one upstream service, over gRPC: the same
// chain as Service (Consul instancer → round robin → retry → breaker → zipkin), over
// one multiplexed HTTP/2 connection per instance that every route to it shares.
// Errors come back as over HTTP: a business answer (errs.FromGRPC of a kind below
// 500) is a value through retry and breaker; a shed call is errs.ErrOverloaded.
type GRPCService struct {
	*chain
	instancer sd.Instancer
	conns     *connPool
}

// NewGRPC prepares calls to service, whose gRPC instances instancer reports
// (discovery.NewConsulGRPCInstancer).
func NewGRPC(service string, instancer sd.Instancer, opts Options) *GRPCService {
	c := newChain(service, opts)
	return &GRPCService{chain: c, instancer: instancer, conns: newConnPool(c.opts.TLS, c.opts.Timeout)}
}

// Endpoint returns the client endpoint for r.
func (s *GRPCService) Endpoint(r GRPCRoute) endpoint.Endpoint {
	return s.balance(s.instancer, s.factory(r), r.Name, r.Idempotent)
}

// factory turns an instance address into an endpoint for r over the instance's shared
// connection, with a deadline per try of a read, a client span carrying B3 metadata
// and ejection, as Service's factory has: an instance whose connection is not ready
// yet ranks below a ready one, and one that failed a call for want of a connection is
// skipped for a while.
func (s *GRPCService) factory(r GRPCRoute) sd.Factory {
	ej := &ejections{until: map[string]time.Time{}, cold: s.conns.cold}
	return func(instance string) (endpoint.Endpoint, io.Closer, error) {
		conn, err := s.conns.acquire(instance)
		if err != nil {
			return nil, nil, err
		}
		var opts []kitgrpc.ClientOption
		if len(s.opts.GRPCBefore) > 0 {
			opts = append(opts, kitgrpc.ClientBefore(s.opts.GRPCBefore...))
		}
		if s.opts.Tracer != nil {
			opts = append(opts, kitzipkin.GRPCClientTrace(s.opts.Tracer, kitzipkin.Name(s.name+"."+r.Name)))
		}
		e := kitgrpc.NewClient(conn, r.Service, r.Method, r.Encode, r.Decode, r.Reply, opts...).Endpoint()
		attempt := time.Duration(0)
		if r.Read {
			attempt = s.opts.AttemptTimeout
		}
		call := func(ctx context.Context, request any) (any, error) {
			response, err := e(ctx, request)
			if err == nil {
				return response, nil
			}
			if status.Code(err) == codes.Canceled && ctx.Err() == nil {
				// Not the caller's cancellation: the connection closed under the call.
				return nil, errors.Join(errUnreachable, err)
			}
			return fromGRPC(err)
		}
		ej.add(instance)
		return ej.try(instance, attempt, call), closerFunc(func() error { ej.remove(instance); s.conns.release(instance); return nil }), nil
	}
}

// errUnreachable is a gRPC call that found no working connection to its instance.
var errUnreachable = errors.New("client: no connection to the instance")

// fromGRPC reads a failed call as the errors the chain acts on, as decodeWith does for
// HTTP: a kitshop answer below 500 becomes a businessFailure value, one of 500 and
// above an upstreamError with that status (so that 503 and 504 are retried elsewhere,
// and a shed call is errs.ErrOverloaded); a failure of the transport becomes the
// context's error or errUnreachable.
func fromGRPC(err error) (any, error) {
	if e, ok := errs.FromGRPC(err); ok {
		return errorAnswer(e.Kind.Status(), e)
	}
	switch status.Code(err) {
	case codes.DeadlineExceeded:
		return nil, errors.Join(context.DeadlineExceeded, err)
	case codes.Canceled:
		return nil, errors.Join(context.Canceled, err)
	case codes.Unavailable:
		return nil, errors.Join(errUnreachable, err)
	}
	return nil, err
}

// GRPCWindow is the flow-control window of kitshop's gRPC streams and connections,
// client side here and server side (app.GRPCServer): fixed, so that grpc-go does not
// estimate the bandwidth-delay product with a PING per burst of data, two more frames
// and wake-ups per call when calls come one at a time (measured: bench/transport.sh).
const GRPCWindow = 1 << 20

// connPool holds one gRPC connection per instance, shared by the routes that know it.
type connPool struct {
	creds credentials.TransportCredentials
	// closeAfter is how long a connection no route knows any more stays open: the
	// calls already on it (an instance leaves Consul while it drains) finish first.
	closeAfter time.Duration

	mu    sync.Mutex
	conns map[string]*pooledConn
}

type pooledConn struct {
	cc    *grpc.ClientConn
	users int // routes whose endpointer knows the instance
}

func newConnPool(tlsConf *tls.Config, closeAfter time.Duration) *connPool {
	creds := insecure.NewCredentials()
	if tlsConf != nil {
		creds = credentials.NewTLS(tlsConf)
	}
	return &connPool{creds: creds, closeAfter: closeAfter, conns: map[string]*pooledConn{}}
}

// acquire returns instance's connection, opening it (and starting its dial at once,
// so that it is ready by the first call) when it is new.
func (p *connPool) acquire(instance string) (*grpc.ClientConn, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if c, ok := p.conns[instance]; ok {
		c.users++
		return c.cc, nil
	}
	// passthrough: the address is Consul's, already resolved; no DNS on the way.
	cc, err := grpc.NewClient("passthrough:///"+instance,
		grpc.WithTransportCredentials(p.creds),
		// A ping on an idle connection finds a peer that went away without a FIN (a
		// container removed) before a call does.
		grpc.WithKeepaliveParams(keepalive.ClientParameters{Time: 30 * time.Second, Timeout: 5 * time.Second, PermitWithoutStream: true}),
		grpc.WithInitialWindowSize(GRPCWindow),
		grpc.WithInitialConnWindowSize(GRPCWindow),
		// Never idle: an idle channel reconnects only when a call comes, and cold ranks a
		// connection that is not ready below the others, so none would come.
		grpc.WithIdleTimeout(0),
	)
	if err != nil {
		return nil, err
	}
	cc.Connect()
	p.conns[instance] = &pooledConn{cc: cc, users: 1}
	return cc, nil
}

// release lets a route's hold on instance go; the last closes its connection, once
// the calls still on it have had closeAfter (a call's whole budget) to finish: closing
// at once would cancel them ("the client connection is closing").
func (p *connPool) release(instance string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	c, ok := p.conns[instance]
	if !ok {
		return
	}
	if c.users--; c.users == 0 {
		delete(p.conns, instance) // an instance that comes back gets a connection of its own
		time.AfterFunc(p.closeAfter, func() { _ = c.cc.Close() })
	}
}

// cold reports whether instance's connection is connecting or failing, so that a
// ready instance is preferred. An idle one (its connection ended: a GOAWAY, a reset)
// is asked to connect again and is not cold: the next call would connect it anyway.
func (p *connPool) cold(instance string) bool {
	p.mu.Lock()
	c, ok := p.conns[instance]
	p.mu.Unlock()
	if !ok {
		return false
	}
	switch c.cc.GetState() {
	case connectivity.Ready:
		return false
	case connectivity.Idle:
		c.cc.Connect()
		return false
	}
	return true
}

package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/go-kit/kit/endpoint"
	"github.com/go-kit/kit/sd"
	kithttp "github.com/go-kit/kit/transport/http"

	"github.com/kitshop/kitshop/pkg/auth"
	"github.com/kitshop/kitshop/pkg/client"
	"github.com/kitshop/kitshop/pkg/errs"
)

// makeEndpoints builds the client endpoint of every route. Per upstream service there
// is one HTTP client and one breaker (gateway→<service>), whose timeout is the longest
// route timeout of that service; each route's own deadline is set per call. A route
// that may be retried gets the configured attempt timeout, which pkg/client applies to
// reads only (a slow write is not cut off and sent again), so one hung instance leaves
// time for another; a route sent once gets its whole timeout for its one try.
func (g *gateway) makeEndpoints(routes []Route) (map[string]routeEndpoints, error) {
	longest := longestTimeouts(routes)
	type key struct {
		service string
		attempt time.Duration
	}
	clients := map[key]*client.Service{}
	httpClients := map[string]*upstreamClient{}
	instancers := map[string]sd.Instancer{}
	serviceFor := func(service string, attempt time.Duration) (*client.Service, error) {
		k := key{service, attempt}
		if c, ok := clients[k]; ok {
			return c, nil
		}
		name := g.opts.ServiceName(service)
		ins, ok := instancers[name]
		if !ok {
			var err error
			if ins, err = g.opts.Instancer(name); err != nil {
				return nil, fmt.Errorf("gateway: instances of %s: %w", name, err)
			}
			instancers[name] = ins
		}
		opts := g.opts.Client
		opts.Timeout = longest[service]
		opts.AttemptTimeout = attempt
		opts.Before = nil // the client's own Authorization header is forwarded as it came
		if g.opts.UpstreamTLS != nil && opts.TLS != nil {
			opts.TLS = g.opts.UpstreamTLS(name)
		}
		if httpClients[name] == nil {
			httpClients[name] = newUpstreamClient(max(opts.Breaker.MaxConcurrent, client.DefaultBreaker.MaxConcurrent), opts.TLS)
		}
		opts.HTTPClient = httpClients[name]
		c := client.New(name, ins, opts)
		clients[k] = c
		return c, nil
	}

	out := map[string]routeEndpoints{}
	for _, rt := range routes {
		var re routeEndpoints
		once, err := serviceFor(rt.Service, rt.Timeout)
		if err != nil {
			return nil, err
		}
		re.once = routeEndpoint(once, rt, false, g.opts.MaxResponse)
		if rt.Retry != NoRetry {
			attempt := rt.Timeout
			if a := g.opts.Client.AttemptTimeout; a > 0 && a < attempt {
				attempt = a
			}
			retried, err := serviceFor(rt.Service, attempt)
			if err != nil {
				return nil, err
			}
			re.retried = routeEndpoint(retried, rt, true, g.opts.MaxResponse)
		}
		out[rt.Name()] = re
	}
	return out, nil
}

func longestTimeouts(routes []Route) map[string]time.Duration {
	longest := map[string]time.Duration{}
	for _, rt := range routes {
		longest[rt.Service] = max(longest[rt.Service], rt.Timeout)
	}
	return longest
}

// VerifierClientOptions are the client options to fetch the user service's keys with
// (app.UserKeys): the breaker's settings of the routes (the fetch has a breaker of
// its own, so a login flood that opens gateway→user cannot stop it), and with TLS on
// the user service's pinned identity, as its routes have.
func VerifierClientOptions(o Options) client.Options {
	o = o.defaults()
	c := o.Client
	c.Timeout = longestTimeouts(Routes())[UserService]
	c.Before = nil
	if o.UpstreamTLS != nil && c.TLS != nil {
		c.TLS = o.UpstreamTLS(o.ServiceName(UserService))
	}
	return c
}

// routeEndpoints are a route's two ways upstream: sent once, or with retries when the
// route is idempotent (or the request carries an Idempotency-Key, for WithKeyOnly).
type routeEndpoints struct {
	once, retried endpoint.Endpoint
}

func (re routeEndpoints) endpoint(rt Route) endpoint.Endpoint {
	return func(ctx context.Context, request any) (any, error) {
		ctx, cancel := context.WithTimeout(ctx, rt.Timeout)
		defer cancel() // the answer is fully buffered by the time the endpoint returns
		e := re.once
		switch rt.Retry {
		case Idempotent:
			e = re.retried
		case WithKeyOnly:
			if request.(*proxyRequest).header.Get("Idempotency-Key") != "" {
				e = re.retried
			}
		}
		return e(ctx, request)
	}
}

// routeHandler is one route: admission in the route's class, token check and rate
// limit, then the go-kit server around the route's client endpoint.
func (g *gateway) routeHandler(rt Route, re routeEndpoints) http.Handler {
	var h http.Handler = kithttp.NewServer(
		re.endpoint(rt),
		g.decodeProxyRequest,
		encodeProxyResponse,
		kithttp.ServerErrorEncoder(encodeError),
	)
	switch rt.Access {
	case Public:
		h = g.limitByAddress(h)
	case Customer:
		h = g.limitByAddress(g.authenticate(false, g.limitByUser(h)))
	case Admin:
		h = g.limitByAddress(g.authenticate(true, g.limitByUser(h)))
	}
	// Admission first: under overload a call is shed for the price of reading its
	// request line, before its token's signature is checked.
	return g.classes[rt.Class].Middleware(h)
}

// ErrTooLarge answers a request body above the limit.
var ErrTooLarge = errs.E(errs.TooLarge, "body_too_large", "the request body is larger than the gateway accepts")

func (g *gateway) decodeProxyRequest(ctx context.Context, r *http.Request) (any, error) {
	if r.ContentLength > g.opts.MaxBody {
		return nil, ErrTooLarge
	}
	var body []byte
	if r.ContentLength != 0 { // 0 is a known empty body; chunked bodies are -1
		var err error
		body, err = io.ReadAll(http.MaxBytesReader(nil, r.Body, g.opts.MaxBody))
		if err != nil {
			var tooLarge *http.MaxBytesError
			if errors.As(err, &tooLarge) {
				return nil, ErrTooLarge
			}
			return nil, errUnreadableBody
		}
	}
	ex := exchangeFrom(ctx)
	proto := "http"
	if g.opts.ClientIP.HTTPS(r) {
		proto = "https"
	}
	return &proxyRequest{
		path:     r.URL.Path,
		rawPath:  r.URL.RawPath,
		rawQuery: r.URL.RawQuery,
		header:   forwardHeaders(r.Header, ex.clientAddr(), r.Host, proto, ex.requestID),
		body:     body,
		exchange: ex,
	}, nil
}

func encodeProxyResponse(ctx context.Context, w http.ResponseWriter, response any) error {
	resp := response.(*proxyResponse)
	h := w.Header()
	for k, vs := range resp.header {
		h[k] = vs
	}
	body := resp.body
	if resp.status >= 400 {
		body = relayedError(h, resp.status, body, exchangeFrom(ctx).requestID)
	}
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(resp.status)
	_, err := w.Write(body)
	return err
}

// relayedError is an upstream's error body with the request ID added beside its code
// and message (anything else it holds is kept). A body that is not the error
// convention's (a proxy's HTML page, nothing at all) is replaced by one, as
// errs.FromBody reads it, so that every error answer of the gateway is
// {"error": {"code", "message", "request_id"}}; h then describes the new body.
func relayedError(h http.Header, status int, body []byte, requestID string) []byte {
	id, _ := json.Marshal(requestID)
	var answer, e map[string]json.RawMessage
	if json.Unmarshal(body, &answer) == nil && json.Unmarshal(answer["error"], &e) == nil && e["code"] != nil {
		e["request_id"] = id
		answer["error"], _ = json.Marshal(e)
		out, _ := json.Marshal(answer) // raw messages that were just decoded
		return append(out, '\n')
	}
	read := errs.FromBody(status, body)
	var b errs.Body
	b.Error.Code, b.Error.Message, b.Error.RequestID = read.Code, read.Message, requestID
	out, _ := json.Marshal(b)
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Del("Content-Encoding")
	return append(out, '\n')
}

// encodeError writes the gateway's own answers: 401 with WWW-Authenticate, 413, 429
// and 503 with Retry-After, 504. A client that went away gets nothing.
func encodeError(ctx context.Context, err error, w http.ResponseWriter) {
	ex := exchangeFrom(ctx)
	ex.err = err
	if errors.Is(err, context.Canceled) {
		w.WriteHeader(statusClientClosed)
		return
	}
	writeError(w, err)
}

// statusClientClosed is logged (nginx's 499) for a client that left before the answer.
const statusClientClosed = 499

// writeError is errs.WriteHTTP plus the challenge RFC 6750 asks of a 401.
func writeError(w http.ResponseWriter, err error) {
	if e := errs.From(err); e.Kind == errs.Unauthenticated {
		challenge := `Bearer realm="kitshop"`
		if e.Code == auth.ErrInvalidToken.Code {
			challenge += `, error="invalid_token"`
		}
		w.Header().Set("WWW-Authenticate", challenge)
	}
	errs.WriteHTTP(w, err)
}

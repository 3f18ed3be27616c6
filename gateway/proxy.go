package gateway

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/netip"
	"strings"
	"sync/atomic"

	"github.com/go-kit/kit/endpoint"

	"github.com/kitshop/kitshop/pkg/client"
	"github.com/kitshop/kitshop/pkg/errs"
)

// proxyRequest is a client request as the gateway forwards it. It is read once (the
// body is bounded) and encoded again for every try, so a retry resends the same bytes.
type proxyRequest struct {
	path, rawPath, rawQuery string
	header                  http.Header // end-to-end headers plus the gateway's X-Forwarded-*
	body                    []byte
	exchange                *exchange
}

// proxyResponse is an upstream answer, passed back unchanged: 2xx, 3xx and 4xx alike.
type proxyResponse struct {
	status int
	header http.Header
	body   []byte
}

// routeEndpoint is the go-kit client endpoint of rt through svc's chain. Every answer
// below 500 comes back as a *proxyResponse value (Route.PassThrough), so a 404 or a 422
// is relayed as the upstream wrote it and neither retried nor counted against the breaker.
func routeEndpoint(svc *client.Service, rt Route, retry bool, maxResponse int64) endpoint.Endpoint {
	return svc.Endpoint(client.Route{
		Name:        rt.Name(),
		Method:      rt.Method,
		Encode:      encodeProxyRequest,
		Decode:      decodeProxyResponse(maxResponse),
		Idempotent:  retry,
		PassThrough: true,
	})
}

func encodeProxyRequest(_ context.Context, r *http.Request, request any) error {
	req := request.(*proxyRequest)
	r.URL.Path, r.URL.RawPath, r.URL.RawQuery = req.path, req.rawPath, req.rawQuery
	// A copy for each try: ClientBefore functions add to the request's header.
	r.Header = req.header.Clone()
	if len(req.body) > 0 {
		body := req.body
		r.Body = io.NopCloser(bytes.NewReader(body))
		r.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
		r.ContentLength = int64(len(body))
	}
	instance := r.URL.Host
	req.exchange.upstream.Store(&instance)
	return nil
}

// errResponseTooLarge fails a try whose answer exceeds the gateway's buffer.
var errResponseTooLarge = errors.New("gateway: upstream response larger than the buffer")

func decodeProxyResponse(maxResponse int64) func(context.Context, *http.Response) (any, error) {
	return func(_ context.Context, resp *http.Response) (any, error) {
		body, err := readBody(resp, maxResponse)
		if err != nil {
			return nil, err
		}
		// The response is done with once decoded: its header is taken over as it is.
		header := resp.Header
		removeHopByHop(header)
		delete(header, "Content-Length")
		// The answer names the gateway's request and trace, not the upstream's.
		delete(header, errs.RequestIDHeader)
		delete(header, "X-Trace-Id")
		return &proxyResponse{status: resp.StatusCode, header: header, body: body}, nil
	}
}

// readBody reads resp's body, at most max bytes, into a buffer of the announced length
// when there is one (io.ReadAll would grow one from 512 bytes).
func readBody(resp *http.Response, max int64) ([]byte, error) {
	if n := resp.ContentLength; n >= 0 {
		if n > max {
			return nil, errResponseTooLarge
		}
		body := make([]byte, n)
		if _, err := io.ReadFull(resp.Body, body); err != nil {
			return nil, err
		}
		return body, nil
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(body)) > max {
		return nil, errResponseTooLarge
	}
	return body, nil
}

// hopByHop are the headers that describe one connection, not the message (RFC 9110
// §7.6.1), plus the trace and forwarding headers the gateway sets itself.
var hopByHop = []string{
	"Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate",
	"Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade",
}

func removeHopByHop(h http.Header) {
	for _, v := range h.Values("Connection") {
		for _, name := range strings.Split(v, ",") {
			if name = strings.TrimSpace(name); name != "" {
				h.Del(name)
			}
		}
	}
	for _, name := range hopByHop {
		h.Del(name)
	}
}

// gatewayHeaders (canonical keys) are set by the gateway alone; a client's values are dropped so it
// cannot spoof its address (user's login throttling trusts X-Forwarded-For) or a
// trace.
var gatewayHeaders = []string{
	"X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto", "Forwarded", "X-Real-Ip",
	"X-Request-Id", "B3", "X-B3-Traceid", "X-B3-Spanid", "X-B3-Parentspanid", "X-B3-Sampled", "X-B3-Flags",
	"X-Request-Timeout-Ms", // the gateway's own deadline goes upstream (admission.TimeoutHeader)
}

// forwardHeaders is the header set sent upstream for a client request. It shares the
// value slices of in (the request's, read only from here on); encodeProxyRequest
// copies the set for each try.
func forwardHeaders(in http.Header, clientAddr, host, proto, requestID string) http.Header {
	h := make(http.Header, len(in)+4)
	for k, vs := range in {
		h[k] = vs
	}
	removeHopByHop(h)
	for _, name := range gatewayHeaders {
		delete(h, name)
	}
	// The gateway has read the whole body already: an Expect: 100-continue is answered
	// by its own server and means nothing upstream.
	delete(h, "Expect")
	// One backing array for the four values the gateway sets.
	vals := []string{clientAddr, host, proto, requestID}
	h["X-Forwarded-For"] = vals[0:1:1]
	h["X-Forwarded-Host"] = vals[1:2:2]
	h["X-Forwarded-Proto"] = vals[2:3:3]
	h["X-Request-Id"] = vals[3:4:4]
	return h
}

// exchange is what the gateway learns about one request as it travels: the access log
// line and the metrics are written from it when the answer is complete.
type exchange struct {
	route     string
	requestID string
	client    netip.Addr             // behind the trusted proxies (Options.ClientIP)
	upstream  atomic.Pointer[string] // written by the try in flight, which may outlive a timeout
	err       error
}

// clientAddr is the client's address as logged and forwarded.
func (e *exchange) clientAddr() string {
	if !e.client.IsValid() {
		return ""
	}
	return e.client.String()
}

func (e *exchange) instance() string {
	if p := e.upstream.Load(); p != nil {
		return *p
	}
	return ""
}

type exchangeKey struct{}

func exchangeFrom(ctx context.Context) *exchange {
	if e, ok := ctx.Value(exchangeKey{}).(*exchange); ok {
		return e
	}
	return &exchange{}
}

// errUnreadableBody answers a body that broke off.
var errUnreadableBody = errs.E(errs.Invalid, "unreadable_body", "the request body could not be read")

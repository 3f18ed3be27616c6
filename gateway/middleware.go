package gateway

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
	"runtime/debug"
	"strconv"

	"github.com/go-kit/log/level"
	"github.com/openzipkin/zipkin-go"
	zipkinhttp "github.com/openzipkin/zipkin-go/middleware/http"

	"github.com/kitshop/kitshop/pkg/auth"
	"github.com/kitshop/kitshop/pkg/clientip"
	"github.com/kitshop/kitshop/pkg/errs"
	"github.com/kitshop/kitshop/pkg/httpstatus"
)

// instrument wraps every request. Outermost, identify names it and its trace; inside
// that, Options.Listener's own answers; then, around the routes, the access log line
// and the per-route metrics (observe), which also answer a panic.
func (g *gateway) instrument(routes http.Handler) http.Handler {
	h := g.observe(routes)
	if g.opts.Listener != nil {
		h = g.opts.Listener(h)
	}
	return g.identify(h)
}

// identify gives every request a request ID (the client's X-Request-ID when sane, else
// a new one; forwarded upstream) and a zipkin server span of a new trace (the client's
// B3 headers are dropped), and names both in the answer (X-Request-Id, X-Trace-Id)
// before anything else can be written, so that every answer carries them.
func (g *gateway) identify(next http.Handler) http.Handler {
	traced := zipkinhttp.NewServerMiddleware(g.opts.Tracer, zipkinhttp.SpanName("gateway"))(
		http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			ex := &exchange{route: "unmatched", requestID: requestID(r.Header.Get("X-Request-ID")), client: g.opts.ClientIP.Addr(r)}
			h := w.Header()
			h.Set(errs.RequestIDHeader, ex.requestID)
			// The trace's ID, sampled or not: a user can quote it and an operator find the
			// trace and the log lines (they carry trace_id).
			h.Set("X-Trace-Id", zipkin.SpanFromContext(r.Context()).Context().TraceID.String())
			next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), exchangeKey{}, ex)))
		}))
	// A trace starts here: a client that chose its trace ID could join or pollute
	// others' traces, and one that set X-B3-Flags: 1 (debug) would force every span of
	// the request to be recorded and sent, whatever the sampler says.
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for _, name := range b3Headers {
			delete(r.Header, name)
		}
		traced.ServeHTTP(w, r)
	})
}

// observe writes one access log line and the per-route metrics for every answer of
// next. A panic in next is logged with its stack and answered 500 internal, or, when
// the answer had begun, ends the connection (panic(http.ErrAbortHandler)) so that a
// half answer never looks complete; either way the log line and metrics see it.
func (g *gateway) observe(next http.Handler) http.Handler {
	accessLog := level.Info(g.opts.Logger)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := g.opts.Now()
		ex := exchangeFrom(r.Context())
		rec := httpstatus.NewRecorder(w)
		broken := g.serveRecovering(next, rec, r)

		elapsed := g.opts.Now().Sub(start)
		status := strconv.Itoa(rec.Status)
		g.requests.With("route", ex.route, "status", status).Add(1)
		g.duration.With("route", ex.route, "status", status).Observe(elapsed.Seconds())
		kv := make([]any, 0, 24) // room for err and trace_id: one allocation per line
		kv = append(kv,
			"msg", "request", "request_id", ex.requestID, "method", r.Method, "route", ex.route,
			"path", r.URL.Path, "status", rec.Status, "duration_ms", float64(elapsed.Microseconds())/1000,
			"upstream", ex.instance(), "client", ex.clientAddr(),
		)
		if ex.err != nil && rec.Status >= 500 {
			kv = append(kv, "err", ex.err)
		}
		// trace_id as logging.WithTrace writes it, without a log.With context per request.
		kv = append(kv, "trace_id", zipkin.SpanFromContext(r.Context()).Context().TraceID.String())
		_ = accessLog.Log(kv...)
		if broken {
			panic(http.ErrAbortHandler)
		}
	})
}

// serveRecovering serves r with next. A panic is the exchange's error, logged with its
// stack, and answered 500 internal (the JSON error body, with the request ID) when
// nothing of the answer was written yet; broken reports a panic after that, for the
// caller to end the connection once it has logged the request.
func (g *gateway) serveRecovering(next http.Handler, w *httpstatus.Recorder, r *http.Request) (broken bool) {
	defer func() {
		v := recover()
		if v == nil {
			return
		}
		ex := exchangeFrom(r.Context())
		ex.err = fmt.Errorf("panic: %v", v)
		_ = level.Error(g.opts.Logger).Log("msg", "handler panicked", "request_id", ex.requestID, "route", ex.route,
			"err", ex.err, "stack", string(debug.Stack()))
		if w.Written() {
			broken = true
			return
		}
		// What the handler said of the body it did not write must not describe this one.
		h := w.Header()
		h.Del("Content-Length")
		h.Del("Content-Encoding")
		writeError(w, ex.err)
	}()
	next.ServeHTTP(w, r)
	return false
}

// b3Headers are the B3 propagation headers, canonical keys, single and multi form.
var b3Headers = []string{"B3", "X-B3-Traceid", "X-B3-Spanid", "X-B3-Parentspanid", "X-B3-Sampled", "X-B3-Flags"}

// named labels the request with its route, for the log, the metrics and the span.
func named(route string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		exchangeFrom(r.Context()).route = route
		if span := zipkin.SpanFromContext(r.Context()); span != nil {
			span.SetName(route)
		}
		next.ServeHTTP(w, r)
	})
}

// maxRequestID bounds a client's X-Request-ID; longer or odd ones are replaced.
const maxRequestID = 128

func requestID(given string) string {
	if given != "" && len(given) <= maxRequestID && printableToken(given) {
		return given
	}
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func printableToken(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c >= 0x7f || c == '"' || c == '\\' {
			return false
		}
	}
	return true
}

// authenticate answers 401 (with WWW-Authenticate) without a valid bearer token, 403
// to a non-admin on admin routes, and otherwise puts the Caller in the context. The
// token itself is forwarded in the Authorization header, and upstreams check it again.
func (g *gateway) authenticate(admin bool, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		token, ok := auth.BearerToken(r.Header.Get("Authorization"))
		if !ok {
			writeError(w, auth.ErrNoToken)
			return
		}
		caller, err := g.opts.Verifier.Verify(r.Context(), token)
		if err != nil {
			exchangeFrom(r.Context()).err = err
			writeError(w, err)
			return
		}
		if admin && caller.Role != auth.RoleAdmin {
			writeError(w, auth.ErrForbidden)
			return
		}
		next.ServeHTTP(w, r.WithContext(auth.NewContext(r.Context(), caller)))
	})
}

// limitByUser applies the per-user limit to an authenticated request.
func (g *gateway) limitByUser(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		caller, _ := auth.CallerFrom(r.Context())
		g.limit(g.users, "user:"+caller.UserID, next, w, r)
	})
}

// limitByAddress applies the per-address limit, keyed by the client's address (its
// /64 for IPv6). It comes before the token check on 🔒 routes too, so a flood of
// made-up tokens is limited like any other.
func (g *gateway) limitByAddress(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		g.limit(g.anons, clientip.Key(exchangeFrom(r.Context()).client), next, w, r)
	})
}

func (g *gateway) limit(l *limiters, key string, next http.Handler, w http.ResponseWriter, r *http.Request) {
	if ok, wait := l.allow(key); !ok {
		writeError(w, rateLimited{wait: wait})
		return
	}
	next.ServeHTTP(w, r)
}

package gateway

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/http"
	"strconv"

	"github.com/go-kit/log/level"
	"github.com/openzipkin/zipkin-go"
	zipkinhttp "github.com/openzipkin/zipkin-go/middleware/http"

	"github.com/kitshop/kitshop/pkg/auth"
	"github.com/kitshop/kitshop/pkg/clientip"
	"github.com/kitshop/kitshop/pkg/httpstatus"
)

// instrument wraps every request: a request ID (the client's X-Request-ID when sane,
// else a new one; echoed and forwarded), a zipkin server span of a new trace (the
// client's B3 headers are dropped; its ID answered in X-Trace-Id), one access log line
// and the per-route metrics.
func (g *gateway) instrument(next http.Handler) http.Handler {
	accessLog := level.Info(g.opts.Logger)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := g.opts.Now()
		ex := &exchange{route: "unmatched", requestID: requestID(r.Header.Get("X-Request-ID")), client: g.opts.ClientIP.Addr(r)}
		w.Header().Set("X-Request-ID", ex.requestID)
		// The trace's ID, sampled or not: a user can quote it and an operator find the
		// trace and the log lines (they carry trace_id).
		if span := zipkin.SpanFromContext(r.Context()); span != nil {
			w.Header().Set("X-Trace-Id", span.Context().TraceID.String())
		}
		rec := httpstatus.NewRecorder(w)
		ctx := context.WithValue(r.Context(), exchangeKey{}, ex)
		next.ServeHTTP(rec, r.WithContext(ctx))

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
		if span := zipkin.SpanFromContext(ctx); span != nil {
			kv = append(kv, "trace_id", span.Context().TraceID.String())
		}
		_ = accessLog.Log(kv...)
	})
	if g.opts.Tracer == nil {
		return h
	}
	traced := zipkinhttp.NewServerMiddleware(g.opts.Tracer, zipkinhttp.SpanName("gateway"))(h)
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

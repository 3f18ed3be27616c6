package connect

import (
	"context"
	"crypto/tls"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	consul "github.com/hashicorp/consul/api"

	"github.com/kitshop/kitshop/pkg/errs"
)

// Authorizer decides whether a peer may call this service: Consul's intentions
// (through the agent's authorize endpoint, which reads its own cache of them) say
// which services may call it at all, and path rules narrow some routes further.
type Authorizer struct {
	id     *Identity
	ttl    time.Duration
	rules  []PathRule
	logger log.Logger

	mu    sync.Mutex
	cache map[string]decision // by peer URI and serial
	// last is the latest answer per calling service: while the agent cannot be asked
	// (it is restarting), calls go on under it rather than being refused.
	last map[string]decision
	// asking holds the questions to the agent under way, by cache key: the first calls
	// over a caller's new connections arrive together, and one question answers them all.
	asking map[string]*question
}

// question is one question to the agent, which the calls asking the same wait for.
type question struct {
	done chan struct{}
	d    decision
	err  error
}

// PathRule restricts the routes under Prefix to the named calling services: intentions
// work per service, and some routes (reservations, charges) are for one caller only.
type PathRule struct {
	Prefix  string
	Callers []string
}

type decision struct {
	allowed bool
	reason  string
	expires time.Time
}

// NewAuthorizer authorises callers of id's service, remembering each answer for ttl
// (an intention changed in Consul applies within ttl).
func NewAuthorizer(id *Identity, ttl time.Duration, rules []PathRule, logger log.Logger) *Authorizer {
	return &Authorizer{id: id, ttl: ttl, rules: rules, logger: logger,
		cache: map[string]decision{}, last: map[string]decision{}, asking: map[string]*question{}}
}

// Middleware refuses, with 403 and a log line naming the peer, a request whose
// connection carries no verified Connect certificate or whose peer the intentions or
// path rules do not allow. open paths (the health check, metrics) skip it.
func (a *Authorizer) Middleware(next http.Handler, open ...string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for _, p := range open {
			if r.URL.Path == p {
				next.ServeHTTP(w, r)
				return
			}
		}
		peer, refusal, err := a.check(r.Context(), r.TLS, r.URL.Path)
		switch {
		case err != nil:
			errs.WriteHTTP(w, err)
		case refusal != "":
			a.refuse(w, r, peer.URI, refusal)
		default:
			next.ServeHTTP(w, r.WithContext(WithPeer(r.Context(), peer)))
		}
	})
}

// ErrForbidden is the answer to a caller the intentions or path rules refuse, over
// either transport.
var ErrForbidden = errs.E(errs.Forbidden, "forbidden", "this caller may not call this service")

// errIntentionsUnavailable answers a call whose caller cannot be checked now. No
// answer is not a refusal: the caller may try again (the client chain retries it), and
// nothing is let through unchecked.
var errIntentionsUnavailable = errs.E(errs.Unavailable, "intentions_unavailable", "the caller's authorisation cannot be checked now; try again shortly")

// check decides a call to path over a connection in state cs (nil: plain, not TLS).
// It returns the caller, or the reason it is refused, or errIntentionsUnavailable.
func (a *Authorizer) check(ctx context.Context, cs *tls.ConnectionState, path string) (peer Peer, refusal string, err error) {
	if cs == nil || len(cs.PeerCertificates) == 0 {
		return Peer{}, "no client certificate", nil
	}
	// The handshake verified the chain (ServerTLS); this reads its identity.
	peer, err = PeerFromCert(cs.PeerCertificates[0])
	if err != nil {
		return Peer{}, err.Error(), nil
	}
	ok, reason, err := a.allowed(ctx, peer)
	if err != nil {
		_ = level.Warn(a.logger).Log("msg", "connect: intentions unavailable", "peer", peer.URI, "err", err)
		return peer, "", errIntentionsUnavailable
	}
	if ok {
		ok, reason = a.pathAllowed(peer.Service, path)
	}
	if !ok {
		return peer, reason, nil
	}
	return peer, "", nil
}

func (a *Authorizer) pathAllowed(caller, path string) (bool, string) {
	rule, ok := RuleFor(a.rules, path)
	if !ok || slices.Contains(rule.Callers, caller) {
		return true, ""
	}
	return false, "routes under " + rule.Prefix + " are for " + strings.Join(rule.Callers, ", ") + " only"
}

// RuleFor is the first of rules whose prefix path has, if any.
func RuleFor(rules []PathRule, path string) (PathRule, bool) {
	for _, rule := range rules {
		if strings.HasPrefix(path, rule.Prefix) {
			return rule, true
		}
	}
	return PathRule{}, false
}

// allowed answers from the cache, else from the agent. When the agent cannot be
// asked, the latest answer for the same calling service stands; with none, it is an
// error (no answer), not a refusal.
func (a *Authorizer) allowed(ctx context.Context, peer Peer) (bool, string, error) {
	key := peer.URI + "|" + peer.Serial
	now := time.Now()
	a.mu.Lock()
	d, ok := a.cache[key]
	a.mu.Unlock()
	if ok && now.Before(d.expires) {
		return d.allowed, d.reason, nil
	}
	d, err := a.ask(ctx, key, peer)
	if err != nil {
		a.mu.Lock()
		last, ok := a.last[peer.Service]
		a.mu.Unlock()
		if ok {
			return last.allowed, last.reason, nil
		}
		return false, "", err
	}
	return d.allowed, d.reason, nil
}

// ask asks the agent about peer, or waits for the same question already under way,
// and remembers the answer. The question is asked apart from ctx: a caller that
// leaves does not fail the others waiting for its answer, nor lose it for the next.
func (a *Authorizer) ask(ctx context.Context, key string, peer Peer) (decision, error) {
	a.mu.Lock()
	q, ok := a.asking[key]
	if !ok {
		q = &question{done: make(chan struct{})}
		a.asking[key] = q
		go a.answer(context.WithoutCancel(ctx), key, peer, q)
	}
	a.mu.Unlock()
	select {
	case <-q.done:
		return q.d, q.err
	case <-ctx.Done():
		return decision{}, ctx.Err()
	}
}

func (a *Authorizer) answer(ctx context.Context, key string, peer Peer, q *question) {
	res, err := a.authorize(ctx, peer)
	a.mu.Lock()
	defer a.mu.Unlock()
	delete(a.asking, key)
	if err == nil {
		q.d = decision{allowed: res.Authorized, reason: res.Reason, expires: time.Now().Add(a.ttl)}
		if len(a.cache) > 4096 {
			clear(a.cache)
		}
		a.cache[key] = q.d
		a.last[peer.Service] = q.d
	}
	q.err = err
	close(q.done)
}

// authorizeTimeout bounds one question to the local agent.
const authorizeTimeout = 2 * time.Second

// authorize asks the agent, giving up after authorizeTimeout or when the request ends:
// consul/api's ConnectAuthorize takes no context, so a hung agent would hold the request.
func (a *Authorizer) authorize(ctx context.Context, peer Peer) (*consul.AgentAuthorize, error) {
	type answer struct {
		res *consul.AgentAuthorize
		err error
	}
	ch := make(chan answer, 1)
	go func() {
		res, err := a.id.agent.ConnectAuthorize(&consul.AgentAuthorizeParams{
			Target: a.id.service, ClientCertURI: peer.URI, ClientCertSerial: peer.Serial,
		})
		ch <- answer{res, err}
	}()
	ctx, cancel := context.WithTimeout(ctx, authorizeTimeout)
	defer cancel()
	select {
	case ans := <-ch:
		return ans.res, ans.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (a *Authorizer) refuse(w http.ResponseWriter, r *http.Request, peer, reason string) {
	a.logRefusal(peer, r.RemoteAddr, r.Method, r.URL.Path, reason)
	errs.WriteHTTP(w, ErrForbidden)
}

type peerKey struct{}

// WithPeer records the authorised calling service in ctx.
func WithPeer(ctx context.Context, p Peer) context.Context {
	return context.WithValue(ctx, peerKey{}, p)
}

// PeerFrom is the authorised calling service of a request, if it came over mTLS.
func PeerFrom(ctx context.Context) (Peer, bool) {
	p, ok := ctx.Value(peerKey{}).(Peer)
	return p, ok
}

// logRefusal logs a refused call, naming its peer ("none" without a certificate).
func (a *Authorizer) logRefusal(peer, remote, method, path, reason string) {
	if peer == "" {
		peer = "none"
	}
	_ = level.Warn(a.logger).Log("msg", "connect: call refused", "peer", peer, "remote", remote,
		"method", method, "path", path, "reason", reason)
}

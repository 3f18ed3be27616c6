// Package admission sheds load early: a Limiter lets a bounded number of calls work at
// once, lets more wait a while for their turn, and answers the rest at once with
// errs.ErrOverloaded (503 with Retry-After). Work a saturated server admits
// then finishes inside its deadline, instead of every call queueing until all of them
// time out; an answer in milliseconds tells a client to come back, where a timeout
// after seconds tells it nothing and, counted by its circuit breaker, takes the
// server out for everyone.
//
// A limit is fixed, or adaptive: then, once per target's time, it is scaled by how the
// calls that ended in that time compare with a latency target — by target/mean, at
// most halved and at most a tenth (and at least one call) more at a time, within a
// floor and a ceiling; a call whose answer says what is behind the limiter is
// overloaded counts as twice the target. It starts at the ceiling, so that a crowd
// on an idle server is taken in, then finds how much work the machine really takes at
// once, whatever its size, and keeps the latency of admitted work near the target
// however much more is offered.
//
// The wait is CoDel's idea applied to a line of calls: a crowd that fits in the line is
// a burst, and its calls wait up to MaxWait, so that it is served rather than refused;
// a call that finds the line full is overload, and from then until no call has been
// refused for Patience the calls wait at most BusyWait, so that the work admitted is
// not held up behind a standing queue.
//
// A call may be a follow-up of one admitted a moment before (see Tickets): the next
// request of a page or a purchase its client has begun. Follow-ups go first in line,
// and one that finds the line full takes the place of the last first call in it, so
// under overload a server refuses the work that has cost it least so far — an action's
// first step — rather than the rest of actions it has already served a part of.
package admission

import (
	"container/list"
	"context"
	"errors"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/go-kit/kit/metrics"

	"github.com/kitshop/kitshop/pkg/errs"
	"github.com/kitshop/kitshop/pkg/httpstatus"
)

// Limiter admits calls up to its limit. A call that finds the limit reached waits in
// line — for at most MaxWait, or BusyWait while the limiter is busy (see busy), and
// never past its own deadline; when as many calls as the ceiling already wait, it is
// refused at once.
type Limiter struct {
	cfg Config

	mu       sync.Mutex
	limit    float64 // calls admitted at once
	inFlight int
	// line holds the calls waiting, per Priority, first come first (of *waiter); the
	// follow-ups' turn comes before the first calls'.
	line [priorities]list.List
	// refusedAt is when a call was last refused while busy, or found the line full.
	refusedAt time.Time

	// The calls of the current window (adaptive limits).
	windowStart time.Time
	windowSum   time.Duration
	windowCalls int
}

// Config is a Limiter's settings.
type Config struct {
	// Limit is the fixed limit, or the adaptive limit's start and ceiling.
	Limit int
	// Min is the adaptive limit's floor (at least 1).
	Min int
	// Target makes the limit adaptive: the mean latency of admitted calls it steers
	// toward. Zero: the limit is fixed.
	Target time.Duration
	// MaxWait is the longest a call waits for its turn; zero: no wait.
	MaxWait time.Duration
	// Patience, when set, is how long the limiter stays busy after its last refusal,
	// once a call has found the line full; zero: never busy.
	Patience time.Duration
	// BusyWait is the longest wait while the limiter is busy.
	BusyWait time.Duration
	// Shed, when set, counts the calls refused.
	Shed metrics.Counter
	// Tickets, when set, tell the follow-ups among the requests of Middleware, and
	// give the first calls admitted while the limiter is busy a ticket.
	Tickets *Tickets
	// Limits, when set, reports the limit each time it changes.
	Limits metrics.Gauge
	// Now is the clock; nil: time.Now.
	Now func() time.Time
}

// Priority orders the calls waiting in line.
type Priority int

const (
	First    Priority = iota // a call that begins something
	FollowUp                 // a call that goes on with what an admitted one began
	priorities
)

// NewLimiter returns a fixed limiter of limit calls at once (at least 1) and a wait of
// at most maxWait for a turn. shed, when not nil, counts the refused calls.
func NewLimiter(limit int, maxWait time.Duration, shed metrics.Counter) *Limiter {
	return New(Config{Limit: limit, MaxWait: maxWait, Shed: shed})
}

// New returns a limiter with cfg.
func New(cfg Config) *Limiter {
	cfg.Limit = max(cfg.Limit, 1)
	cfg.Min = min(max(cfg.Min, 1), cfg.Limit)
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	l := &Limiter{cfg: cfg, limit: float64(cfg.Limit), windowStart: cfg.Now()}
	l.report()
	return l
}

// Release gives a call's slot back. overloaded says the call ended in a sign that
// what is behind the limiter is overloaded (it shed the call, or did not answer in
// time); an adaptive limit counts it as twice its target.
type Release func(overloaded bool)

// Admit waits for a turn as a first call. It returns the Release of the call, or
// errs.ErrOverloaded, or ctx's error when the caller goes away while it waits.
func (l *Limiter) Admit(ctx context.Context) (Release, error) { return l.admit(ctx, First) }

// AdmitFollowUp is Admit for a follow-up: it waits ahead of the first calls, and takes
// the place of the last of them in a full line.
func (l *Limiter) AdmitFollowUp(ctx context.Context) (Release, error) {
	return l.admit(ctx, FollowUp)
}

func (l *Limiter) admit(ctx context.Context, p Priority) (Release, error) {
	l.mu.Lock()
	if l.inFlight < l.current() && l.waiting() == 0 {
		l.inFlight++
		l.mu.Unlock()
		return l.releaser(), nil
	}
	now := l.cfg.Now()
	wait := l.wait(now)
	if d, ok := ctx.Deadline(); ok {
		wait = min(wait, time.Until(d))
	}
	full := l.waiting() >= l.cfg.Limit
	if full && wait > 0 && p == FollowUp && l.line[First].Len() > 0 {
		last := l.line[First].Remove(l.line[First].Back()).(*waiter)
		l.refused(now, true)
		last.turn <- false
		full = false
	}
	if wait <= 0 || full {
		l.refused(now, full)
		l.mu.Unlock()
		return nil, errs.ErrOverloaded
	}
	w := &waiter{turn: make(chan bool, 1), since: now}
	place := l.line[p].PushBack(w)
	l.mu.Unlock()

	t := time.NewTimer(wait)
	defer t.Stop()
	var err error
	select {
	case admitted := <-w.turn:
		if !admitted {
			return nil, errs.ErrOverloaded
		}
		return l.releaser(), nil
	case <-t.C:
		err = errs.ErrOverloaded
	case <-ctx.Done():
		err = ctx.Err()
		if errors.Is(err, context.DeadlineExceeded) {
			err = errs.ErrOverloaded // its time ran out in line, as the timer says too
		}
	}
	l.mu.Lock()
	if len(w.turn) == 0 { // still in line (turns are handed under the lock)
		l.line[p].Remove(place)
		if errors.Is(err, errs.ErrOverloaded) {
			l.refused(l.cfg.Now(), false)
		}
		l.mu.Unlock()
		return nil, err
	}
	l.mu.Unlock()
	if <-w.turn { // handed a turn just as it gave up: pass it on
		l.done(false, 0)
	}
	return nil, err
}

// waiter is a call in line: done sends on turn whether it is admitted.
type waiter struct {
	turn  chan bool
	since time.Time
}

// waiting is the number of calls in line; l.mu is held.
func (l *Limiter) waiting() int { return l.line[First].Len() + l.line[FollowUp].Len() }

// current is the limit as a number of calls; l.mu is held.
func (l *Limiter) current() int { return int(l.limit) }

func (l *Limiter) releaser() Release {
	start := l.cfg.Now()
	return func(overloaded bool) { l.done(overloaded, l.cfg.Now().Sub(start)) }
}

// done ends a call that took took, adapts the limit, and hands free turns to the
// calls waiting in line, follow-ups first — refusing, while the limiter is busy,
// those that have waited longer than BusyWait already.
func (l *Limiter) done(overloaded bool, took time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.inFlight--
	if l.cfg.Target > 0 && took > 0 {
		if overloaded {
			took = max(took, 2*l.cfg.Target)
		}
		l.adapt(took)
	}
	now := l.cfg.Now()
	for l.inFlight < l.current() && l.waiting() > 0 {
		line := &l.line[FollowUp]
		if line.Len() == 0 {
			line = &l.line[First]
		}
		w := line.Remove(line.Front()).(*waiter)
		if l.busy(now) && now.Sub(w.since) > l.cfg.BusyWait {
			l.refused(now, false)
			w.turn <- false
			continue
		}
		l.inFlight++
		w.turn <- true
	}
}

// busy says whether the limiter is overloaded, not taking in a burst: a call found
// the line full, and calls have gone on being refused, each within Patience of the
// last. A crowd that fits in the line leaves it calm, even if a few of its calls
// outwait MaxWait. l.mu is held.
func (l *Limiter) busy(now time.Time) bool {
	return l.cfg.Patience > 0 && !l.refusedAt.IsZero() && now.Sub(l.refusedAt) < l.cfg.Patience
}

// Busy says whether the limiter is overloaded now (see busy).
func (l *Limiter) Busy() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.busy(l.cfg.Now())
}

// wait is how long a call may wait in line now. l.mu is held.
func (l *Limiter) wait(now time.Time) time.Duration {
	if l.busy(now) {
		return l.cfg.BusyWait
	}
	return l.cfg.MaxWait
}

// refused counts a refusal; full says the line was. l.mu is held.
func (l *Limiter) refused(now time.Time, full bool) {
	if full || l.busy(now) {
		l.refusedAt = now
	}
	if l.cfg.Shed != nil {
		l.cfg.Shed.Add(1)
	}
}

// adapt counts a call that took took, and at the end of a window (the target's time)
// scales the limit by target/mean of the window's calls. l.mu is held.
func (l *Limiter) adapt(took time.Duration) {
	l.windowSum += took
	l.windowCalls++
	now := l.cfg.Now()
	if now.Sub(l.windowStart) < l.cfg.Target {
		return
	}
	mean := l.windowSum / time.Duration(l.windowCalls)
	l.windowStart, l.windowSum, l.windowCalls = now, 0, 0
	before := l.current()
	ratio := min(max(float64(l.cfg.Target)/float64(mean), 0.5), 1.1)
	next := l.limit * ratio
	if ratio > 1 {
		next = max(next, l.limit+1)
	}
	l.limit = min(max(next, float64(l.cfg.Min)), float64(l.cfg.Limit))
	if l.current() != before {
		l.report()
	}
}

func (l *Limiter) report() {
	if l.cfg.Limits != nil {
		l.cfg.Limits.Set(float64(l.current()))
	}
}

// Limit is the number of calls admitted at once now.
func (l *Limiter) Limit() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.current()
}

// InFlight is the number of calls admitted and not yet done.
func (l *Limiter) InFlight() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.inFlight
}

// Middleware admits each request through l; a refused one is answered 503 with
// Retry-After and never reaches next. An answer of 503 or 504 from next counts as a
// sign of overload. With Config.Tickets, a request that brings a ticket is admitted
// as a follow-up, and one admitted as a first call while l is busy gets a ticket.
func (l *Limiter) Middleware(next http.Handler) http.Handler {
	tickets := l.cfg.Tickets
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := First
		if tickets != nil && tickets.FollowUp(r) {
			p = FollowUp
		}
		release, err := l.admit(r.Context(), p)
		if err != nil {
			// A caller that went away while waiting reads nothing either way.
			errs.WriteHTTP(w, errs.ErrOverloaded)
			return
		}
		if p == First && tickets != nil && l.Busy() {
			tickets.Issue(w, r)
		}
		sw := httpstatus.NewRecorder(w)
		defer func() { release(Overloaded(sw.Status)) }()
		next.ServeHTTP(sw, r)
	})
}

// Overloaded reports whether an answer's status says the server behind is overloaded:
// it shed the call (503) or did not answer in time (504).
func Overloaded(status int) bool {
	return status == http.StatusServiceUnavailable || status == http.StatusGatewayTimeout
}

// TimeoutHeader carries a caller's deadline across a call between services: the
// milliseconds it still waits for the answer. The server works, and waits for its
// turn, no longer than that, and its own calls onwards inherit what is left.
const TimeoutHeader = "X-Request-Timeout-Ms"

// MaxTimeout bounds a deadline a caller may send.
const MaxTimeout = 10 * time.Minute

// SetTimeout writes ctx's deadline, if it has one, into h.
func SetTimeout(ctx context.Context, h http.Header) {
	if d, ok := ctx.Deadline(); ok {
		h.Set(TimeoutHeader, strconv.FormatInt(max(time.Until(d).Milliseconds(), 1), 10))
	}
}

// WithCallerTimeout gives each request's context the deadline its caller sent (see
// TimeoutHeader); a request without one, or with one that is not a positive number of
// milliseconds up to ten minutes, keeps its own.
func WithCallerTimeout(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if v := r.Header.Get(TimeoutHeader); v != "" {
			if ms, err := strconv.ParseInt(v, 10, 64); err == nil && ms > 0 && time.Duration(ms)*time.Millisecond <= MaxTimeout {
				ctx, cancel := context.WithTimeout(r.Context(), time.Duration(ms)*time.Millisecond)
				defer cancel()
				r = r.WithContext(ctx)
			}
		}
		next.ServeHTTP(w, r)
	})
}

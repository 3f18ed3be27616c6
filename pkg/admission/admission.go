// Package admission sheds load early: a Limiter lets a bounded number of calls work at
// once, lets a few more wait a short while for their turn, and answers the rest at
// once with errs.ErrOverloaded (503 with Retry-After). Work a saturated server admits
// then finishes inside its deadline, instead of every call queueing until all of them
// time out; an answer in milliseconds tells a client to come back, where a timeout
// after seconds tells it nothing and, counted by its circuit breaker, takes the
// server out for everyone.
//
// The limits are configured, not adaptive: a concurrency somewhat above what the
// server's cores and its database can work on at once (more only queues inside the
// process, where nobody can see it), and a wait well below the callers' deadlines.
package admission

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/go-kit/kit/metrics"

	"github.com/kitshop/kitshop/pkg/errs"
)

// Limiter admits at most Limit calls at once. A call that finds every slot taken waits
// in line for at most MaxWait, and never past its own deadline; when as many calls
// as Limit are already waiting, it is refused at once.
type Limiter struct {
	slots   chan struct{}
	maxWait time.Duration
	waiting atomic.Int64

	shed metrics.Counter // calls refused; nil: not counted
}

// NewLimiter returns a limiter of limit calls at once (at least 1) and a wait of at
// most maxWait for a free slot (zero: no wait). shed, when not nil, counts the refused
// calls.
func NewLimiter(limit int, maxWait time.Duration, shed metrics.Counter) *Limiter {
	return &Limiter{slots: make(chan struct{}, max(limit, 1)), maxWait: maxWait, shed: shed}
}

// Admit waits for a slot. It returns the function that gives the slot back, or
// errs.ErrOverloaded, or ctx's error when ctx ends while it waits.
func (l *Limiter) Admit(ctx context.Context) (release func(), err error) {
	select {
	case l.slots <- struct{}{}:
		return l.release, nil
	default:
	}
	wait := l.maxWait
	if d, ok := ctx.Deadline(); ok {
		wait = min(wait, time.Until(d))
	}
	if wait <= 0 {
		return nil, l.refuse()
	}
	if l.waiting.Add(1) > int64(cap(l.slots)) {
		l.waiting.Add(-1)
		return nil, l.refuse()
	}
	defer l.waiting.Add(-1)
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case l.slots <- struct{}{}:
		return l.release, nil
	case <-t.C:
		return nil, l.refuse()
	case <-ctx.Done():
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return nil, l.refuse() // its time ran out in line, as the timer says too
		}
		return nil, ctx.Err()
	}
}

func (l *Limiter) release() { <-l.slots }

func (l *Limiter) refuse() error {
	if l.shed != nil {
		l.shed.Add(1)
	}
	return errs.ErrOverloaded
}

// InFlight is the number of calls admitted and not yet done.
func (l *Limiter) InFlight() int { return len(l.slots) }

// Middleware admits each request through l; a refused one is answered 503 with
// Retry-After and never reaches next.
func (l *Limiter) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		release, err := l.Admit(r.Context())
		if err != nil {
			// A caller that went away while waiting reads nothing either way.
			errs.WriteHTTP(w, errs.ErrOverloaded)
			return
		}
		defer release()
		next.ServeHTTP(w, r)
	})
}

// TimeoutHeader carries a caller's deadline across a call between services: the
// milliseconds it still waits for the answer. The server works, and waits for its
// turn, no longer than that, and its own calls onwards inherit what is left.
const TimeoutHeader = "X-Request-Timeout-Ms"

// maxTimeout bounds a deadline a caller may send.
const maxTimeout = 10 * time.Minute

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
			if ms, err := strconv.ParseInt(v, 10, 64); err == nil && ms > 0 && time.Duration(ms)*time.Millisecond <= maxTimeout {
				ctx, cancel := context.WithTimeout(r.Context(), time.Duration(ms)*time.Millisecond)
				defer cancel()
				r = r.WithContext(ctx)
			}
		}
		next.ServeHTTP(w, r)
	})
}

package user

import (
	"math"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/kitshop/kitshop/pkg/errs"
)

// ErrRateLimited is the answer to a login whose email or client address has failed too
// often lately.
var ErrRateLimited = errs.E(errs.RateLimited, "rate_limited", "too many failed logins; try again later")

// rateLimitedError is ErrRateLimited with the wait that errs.WriteHTTP puts in
// Retry-After.
type rateLimitedError struct {
	wait time.Duration
}

func (e rateLimitedError) Error() string { return ErrRateLimited.Error() }

func (e rateLimitedError) Unwrap() error { return ErrRateLimited }

// RetryAfterSeconds implements errs.RetryAfter.
func (e rateLimitedError) RetryAfterSeconds() int { return max(1, int(math.Ceil(e.wait.Seconds()))) }

// Throttle counts failures by key (an email, a client address) with a token bucket per
// key: burst failures at once, then one per 1/perSecond. Keys whose bucket is full again
// are forgotten, which loses nothing, so memory follows the keys failing right now.
type Throttle struct {
	limit rate.Limit
	burst int
	now   func() time.Time

	mu        sync.Mutex
	buckets   map[string]*rate.Limiter
	lastSweep time.Time
}

// NewThrottle allows burst failures per key within per, refilling evenly. A burst of
// 0 turns the throttle off.
func NewThrottle(burst int, per time.Duration, now func() time.Time) *Throttle {
	return &Throttle{
		limit:   rate.Limit(float64(burst) / per.Seconds()),
		burst:   burst,
		now:     now,
		buckets: map[string]*rate.Limiter{},
	}
}

// Wait is how long key must wait before its next attempt; zero when it may go now.
func (t *Throttle) Wait(key string) time.Duration {
	if t.burst == 0 {
		return 0
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	b, ok := t.buckets[key]
	if !ok {
		return 0
	}
	now := t.now()
	if tokens := b.TokensAt(now); tokens < 1 {
		return time.Duration((1 - tokens) / float64(t.limit) * float64(time.Second))
	}
	return 0
}

// Fail records a failed attempt by key.
func (t *Throttle) Fail(key string) {
	if t.burst == 0 {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	b, ok := t.buckets[key]
	if !ok {
		b = rate.NewLimiter(t.limit, t.burst)
		t.buckets[key] = b
	}
	b.AllowN(now, 1)
	t.sweep(now)
}

// sweep forgets full buckets, at most once per refill period of a whole burst.
func (t *Throttle) sweep(now time.Time) {
	full := time.Duration(float64(t.burst) / float64(t.limit) * float64(time.Second))
	if now.Sub(t.lastSweep) < full {
		return
	}
	t.lastSweep = now
	for key, b := range t.buckets {
		if b.TokensAt(now) >= float64(t.burst) {
			delete(t.buckets, key)
		}
	}
}

// Len is the number of keys remembered.
func (t *Throttle) Len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.buckets)
}

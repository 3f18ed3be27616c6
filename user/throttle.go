package user

import (
	"context"
	"math"
	"sync"
	"time"

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

// Throttle is a Budget in memory, for one instance (PostgresThrottle shares one
// between instances): a token bucket per key, burst attempts at once, then one per
// 1/perSecond. Keys whose bucket is full again are forgotten, which loses nothing, so
// memory follows the keys failing right now.
type Throttle struct {
	perSecond float64
	burst     float64
	now       func() time.Time

	mu        sync.Mutex
	buckets   map[string]*bucket
	lastSweep time.Time
}

// bucket holds tokens as of at.
type bucket struct {
	tokens float64
	at     time.Time
}

// NewThrottle allows burst failures per key within per, refilling evenly. A burst of
// 0 turns the throttle off.
func NewThrottle(burst int, per time.Duration, now func() time.Time) *Throttle {
	return &Throttle{
		perSecond: float64(burst) / per.Seconds(),
		burst:     float64(burst),
		now:       now,
		buckets:   map[string]*bucket{},
	}
}

// tokensAt is b's level at now, refilled since it was last written.
func (t *Throttle) tokensAt(b *bucket, now time.Time) float64 {
	return min(t.burst, b.tokens+now.Sub(b.at).Seconds()*t.perSecond)
}

// Take implements Budget.
func (t *Throttle) Take(_ context.Context, key string) (time.Duration, error) {
	if t.burst == 0 {
		return 0, nil
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	b, ok := t.buckets[key]
	if !ok {
		b = &bucket{tokens: t.burst, at: now}
		t.buckets[key] = b
	}
	tokens := t.tokensAt(b, now)
	if tokens < 1 {
		return time.Duration((1 - tokens) / t.perSecond * float64(time.Second)), nil
	}
	b.tokens, b.at = tokens-1, now
	t.sweep(now)
	return 0, nil
}

// Return implements Budget.
func (t *Throttle) Return(_ context.Context, key string) error {
	if t.burst == 0 {
		return nil
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if b, ok := t.buckets[key]; ok {
		now := t.now()
		b.tokens, b.at = min(t.burst, t.tokensAt(b, now)+1), now
	}
	return nil
}

// sweep forgets full buckets, at most once per refill period of a whole burst.
func (t *Throttle) sweep(now time.Time) {
	full := time.Duration(t.burst / t.perSecond * float64(time.Second))
	if now.Sub(t.lastSweep) < full {
		return
	}
	t.lastSweep = now
	for key, b := range t.buckets {
		if t.tokensAt(b, now) >= t.burst {
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

// Package backoff paces retries: pauses that double from a minimum up to a cap, and a
// wait for one of them that ends early with its context.
package backoff

import (
	"context"
	"math/rand/v2"
	"time"
)

// Exponential is a capped exponential backoff.
type Exponential struct {
	Min, Max time.Duration
}

// Delay is the pause before retry number attempt (0 is the first retry): Min doubled
// attempt times, capped at Max.
func (b Exponential) Delay(attempt int) time.Duration {
	d := b.Min
	for i := 0; i < attempt && d < b.Max; i++ {
		d *= 2
	}
	return min(d, b.Max)
}

// Jittered is Delay shortened by up to a half at random, so that many clients cut off
// at once do not come back in step.
func (b Exponential) Jittered(attempt int) time.Duration {
	d := b.Delay(attempt)
	return d/2 + rand.N(d/2+1)
}

// Sleep waits d or until ctx ends, reporting whether it waited the whole d.
func Sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

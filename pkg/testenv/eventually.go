package testenv

import (
	"testing"
	"time"
)

// Polling intervals of Eventually: it waits a tenth of the time it has waited so far,
// within these bounds, so a condition that holds soon is seen soon, the time it
// returns is off by a tenth at most, and a long wait (on a whole stack, say) does not
// poll it more than five times a second.
const (
	minPoll = 5 * time.Millisecond
	maxPoll = 200 * time.Millisecond
)

// Eventually calls cond until it returns true and returns how long that took, for the
// test to log; if cond is still false after timeout, it fails t with what, a
// description of the awaited state ("3 passing instances in Consul"). The timeout is a
// bound for a machine under load, not a measure: a test must not assert on the time
// returned.
func Eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	begin := time.Now()
	for !cond() {
		waited := time.Since(begin)
		if waited > timeout {
			t.Fatalf("%s: not yet after %v", what, timeout)
		}
		time.Sleep(min(max(waited/10, minPoll), maxPoll))
	}
	return time.Since(begin)
}

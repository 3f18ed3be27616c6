package client

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/afex/hystrix-go/hystrix"

	"github.com/kitshop/kitshop/pkg/errs"
)

// breaker guards the calls to one service with a hystrix-go circuit, in the caller's
// goroutine. hystrix.DoC runs every call in a goroutine of its own plus a second one
// for its timer (with a channel, a sync.Cond and a timer), about 7 % of the gateway's
// CPU under load. kitshop's calls end by their context's deadline anyway, so the
// circuit is asked and told directly: the same circuit, settings, rolling window and
// open → half-open → closed behaviour, the same event names in its metrics.
type breaker struct {
	circuit *hystrix.CircuitBreaker
	slots   chan struct{} // one per call in flight, up to MaxConcurrent
}

// breakers holds one breaker per circuit name. hystrix keeps its circuits process-wide
// by name, and so must the concurrency cap: the gateway builds several Services for
// one upstream (one per try timeout), which share their caller→service circuit.
var breakers = struct {
	sync.Mutex
	byName map[string]*breaker
}{byName: map[string]*breaker{}}

// breakerFor returns the breaker of circuit name, made with maxConcurrent slots by
// its first user.
func breakerFor(name string, maxConcurrent int) *breaker {
	breakers.Lock()
	defer breakers.Unlock()
	if b, ok := breakers.byName[name]; ok {
		return b
	}
	// GetCircuit only fails for a name it cannot create, which it always can.
	circuit, _, _ := hystrix.GetCircuit(name)
	b := &breaker{circuit: circuit, slots: make(chan struct{}, maxConcurrent)}
	breakers.byName[name] = b
	return b
}

// do runs call unless the circuit is open (hystrix.ErrCircuitOpen) or MaxConcurrent
// calls are in flight (hystrix.ErrMaxConcurrency), and reports how it went.
func (b *breaker) do(ctx context.Context, call func(context.Context) error) error {
	start := time.Now()
	if !b.circuit.AllowRequest() {
		b.report("short-circuit", start, 0)
		return hystrix.ErrCircuitOpen
	}
	select {
	case b.slots <- struct{}{}:
	default:
		// Not reported: hystrix counts a "rejected" call as an error, and the caller's
		// own spike of calls says nothing of the service's health.
		return hystrix.ErrMaxConcurrency
	}
	defer func() { <-b.slots }() // a panicking call must not keep its slot forever
	err := call(ctx)
	if ev := event(ctx, err); ev != "" {
		b.report(ev, start, time.Since(start))
	}
	return err
}

// event names the outcome as hystrix counts it; "" is an outcome it is not told of.
// The circuit opens on a service that fails, not on one that only says it is busy:
//   - a call the service shed (errs.ErrOverloaded: alive, protecting the work it has
//     admitted) is not reported, and neither is a caller that went away;
//   - a deadline running out is a "timeout" and counts against the service, whichever
//     budget set it (the call's, the route's, the saga's: kitshop's deadlines are its
//     own, so a hung upstream opens the circuit). With admission limits on every
//     server, a service that is merely busy sheds before its callers' deadlines pass.
func event(ctx context.Context, err error) string {
	switch {
	case err == nil:
		return "success"
	case errors.Is(ctx.Err(), context.Canceled):
		return "context_canceled"
	case errors.Is(err, errs.ErrOverloaded):
		return ""
	case errors.Is(err, context.DeadlineExceeded), errors.Is(ctx.Err(), context.DeadlineExceeded):
		return "timeout"
	}
	return "failure"
}

func (b *breaker) report(event string, start time.Time, took time.Duration) {
	// Only fails when hystrix's metrics channel is full; the circuit then misses one
	// sample, as it does under hystrix.DoC.
	_ = b.circuit.ReportEvent([]string{event}, start, took)
}

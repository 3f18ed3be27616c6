package client

import (
	"context"
	"errors"
	"time"

	"github.com/afex/hystrix-go/hystrix"
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

func newBreaker(name string, maxConcurrent int) *breaker {
	// GetCircuit only fails for a name it cannot create, which it always can.
	circuit, _, _ := hystrix.GetCircuit(name)
	return &breaker{circuit: circuit, slots: make(chan struct{}, maxConcurrent)}
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
		b.report("rejected", start, 0)
		return hystrix.ErrMaxConcurrency
	}
	err := call(ctx)
	<-b.slots
	b.report(event(ctx, err), start, time.Since(start))
	return err
}

// event names the outcome as hystrix does. The call's own budget running out is a
// "timeout" and counts against the service; the caller giving up (its context ended)
// does not.
func event(ctx context.Context, err error) string {
	switch {
	case err == nil:
		return "success"
	case errors.Is(ctx.Err(), context.Canceled):
		return "context_canceled"
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		return "context_deadline_exceeded"
	case errors.Is(err, context.DeadlineExceeded):
		return "timeout"
	}
	return "failure"
}

func (b *breaker) report(event string, start time.Time, took time.Duration) {
	// Only fails when hystrix's metrics channel is full; the circuit then misses one
	// sample, as it does under hystrix.DoC.
	_ = b.circuit.ReportEvent([]string{event}, start, took)
}

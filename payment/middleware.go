package payment

import (
	"context"
	"time"

	"github.com/go-kit/kit/metrics"
)

// Instrument counts the money-moving outcomes of s: charges created (succeeded, or
// declined by code) and refunds made, labelled outcome and code. Repeats move no money
// and are not counted; per-call counts and latencies are the endpoint metrics.
func Instrument(charges metrics.Counter) func(Service) Service {
	return func(s Service) Service { return &instrumented{Service: s, charges: charges} }
}

type instrumented struct {
	Service
	charges metrics.Counter
}

func (m *instrumented) Charge(ctx context.Context, r ChargeRequest) (Charge, bool, error) {
	c, created, err := m.Service.Charge(ctx, r)
	if created {
		m.charges.With("outcome", c.Status, "code", c.DeclineCode).Add(1)
	}
	return c, created, err
}

func (m *instrumented) Refund(ctx context.Context, id string) (Charge, bool, error) {
	c, refunded, err := m.Service.Refund(ctx, id)
	if refunded {
		m.charges.With("outcome", StatusRefunded, "code", "").Add(1)
	}
	return c, refunded, err
}

// InstrumentProcessor times every call to p, labelled outcome: approved, declined or
// error.
func InstrumentProcessor(p Processor, latency metrics.Histogram) Processor {
	return &timedProcessor{next: p, latency: latency}
}

type timedProcessor struct {
	next    Processor
	latency metrics.Histogram
}

func (p *timedProcessor) Authorize(ctx context.Context, card Card, amount Money) (Authorization, error) {
	begin := time.Now()
	auth, err := p.next.Authorize(ctx, card, amount)
	outcome := "approved"
	switch {
	case err != nil:
		outcome = "error"
	case !auth.Approved:
		outcome = "declined"
	}
	p.latency.With("outcome", outcome).Observe(time.Since(begin).Seconds())
	return auth, err
}

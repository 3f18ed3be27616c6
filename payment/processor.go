package payment

import (
	"context"
	"errors"
	"math/rand/v2"
	"sync"
	"time"
)

// Test card numbers the simulated processor declines, after the ones card processors
// publish; every other valid number is approved.
const (
	TestCardSucceeds          = "4242424242424242"
	TestCardDeclined          = "4000000000000002"
	TestCardInsufficientFunds = "4000000000009995"
)

// SimulatedConfig configures the simulated processor.
type SimulatedConfig struct {
	// Latency is added to every call, so timeouts and breakers meet a real wait.
	Latency time.Duration
	// FailureRate is the fraction of calls (0 to 1) that fail with
	// ErrProcessorUnavailable, so retries and breakers meet real failures.
	FailureRate float64
	// Seed makes the sequence of failures reproducible.
	Seed uint64
}

// simulatedProcessor stands in for a card processor: it approves every card except the
// test cards that decline, after a configurable latency and failure rate.
type simulatedProcessor struct {
	cfg SimulatedConfig

	mu  sync.Mutex // rand.Rand is not safe for concurrent use
	rnd *rand.Rand
}

// NewSimulatedProcessor returns the simulated card processor.
func NewSimulatedProcessor(cfg SimulatedConfig) (Processor, error) {
	if cfg.FailureRate < 0 || cfg.FailureRate > 1 {
		return nil, errors.New("processor failure rate must be between 0 and 1")
	}
	if cfg.Latency < 0 {
		return nil, errors.New("processor latency must not be negative")
	}
	return &simulatedProcessor{cfg: cfg, rnd: rand.New(rand.NewPCG(cfg.Seed, cfg.Seed^0x9e3779b97f4a7c15))}, nil
}

func (p *simulatedProcessor) Authorize(ctx context.Context, card Card, _ Money) (Authorization, error) {
	if p.cfg.Latency > 0 {
		t := time.NewTimer(p.cfg.Latency)
		defer t.Stop()
		select {
		case <-ctx.Done():
			return Authorization{}, ErrProcessorUnavailable.WithMessage("the card processor did not answer in time")
		case <-t.C:
		}
	}
	if p.cfg.FailureRate > 0 && p.fail() {
		return Authorization{}, ErrProcessorUnavailable
	}
	switch card.Number {
	case TestCardDeclined:
		return Authorization{DeclineCode: DeclineCardDeclined}, nil
	case TestCardInsufficientFunds:
		return Authorization{DeclineCode: DeclineInsufficientFunds}, nil
	}
	return Authorization{Approved: true}, nil
}

func (p *simulatedProcessor) fail() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.rnd.Float64() < p.cfg.FailureRate
}

package order

import (
	"errors"
	"maps"
	"sync"
	"testing"

	"github.com/go-kit/kit/metrics"
)

// outcomeCounter records the counts of a counter labelled outcome.
type outcomeCounter struct {
	mu     *sync.Mutex
	counts map[string]float64
	label  string
}

func (c outcomeCounter) With(labelValues ...string) metrics.Counter {
	c.label = labelValues[len(labelValues)-1]
	return c
}

func (c outcomeCounter) Add(delta float64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.counts[c.label] += delta
}

func TestCountCheckouts(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.seed(map[string]int{"A": 10})
	checkouts := outcomeCounter{mu: &sync.Mutex{}, counts: map[string]float64{}}
	svc := countCheckouts(e.svc.(*service), checkouts)
	ctx := as("u1")

	if _, err := svc.PlaceOrder(ctx, "k-ok", Checkout{Card: testCard, Items: []Line{{"A", 1}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.PlaceOrder(ctx, "k-ok", Checkout{Card: testCard, Items: []Line{{"A", 1}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.PlaceOrder(ctx, "k-declined", Checkout{Card: declinedCard, Items: []Line{{"A", 1}}}); !errors.Is(err, ErrPaymentDeclined) {
		t.Fatalf("declined: %v", err)
	}
	if _, err := svc.PlaceOrder(ctx, "", Checkout{Card: testCard}); !errors.Is(err, ErrMissingIdempotencyKey) {
		t.Fatalf("no key: %v", err)
	}
	// Confirmed, replayed and declined are counted; a refused request is not a checkout.
	want := map[string]float64{StatusConfirmed: 1, "replayed": 1, "payment_declined": 1}
	if !maps.Equal(checkouts.counts, want) {
		t.Errorf("checkouts counted = %v, want %v", checkouts.counts, want)
	}
}

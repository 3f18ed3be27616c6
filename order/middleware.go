package order

import (
	"context"

	"github.com/go-kit/kit/metrics"
)

// countCheckouts counts the checkouts of s that reach an answer, labelled outcome:
// the order's status (confirmed, pending), its failure code, or replayed for a
// repeat of an earlier checkout.
func countCheckouts(s *service, checkouts metrics.Counter) Service {
	return &checkoutCounter{service: s, checkouts: checkouts}
}

type checkoutCounter struct {
	*service
	checkouts metrics.Counter
}

func (m *checkoutCounter) PlaceOrder(ctx context.Context, rawKey string, co Checkout) (Order, error) {
	o, replayed, err := m.service.checkout(ctx, rawKey, co)
	if err != nil {
		return Order{}, err
	}
	outcome := o.Status
	switch {
	case replayed:
		outcome = "replayed"
	case o.Status == StatusFailed:
		outcome = o.FailureCode
	}
	m.checkouts.With("outcome", outcome).Add(1)
	return checkoutResult(o)
}

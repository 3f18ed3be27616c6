package payment

import (
	"context"
	"sync"
	"time"
)

// memoryStore keeps charges and the ledger in memory behind one mutex: for the demo
// and tests.
type memoryStore struct {
	mu      sync.Mutex
	charges map[string]Charge  // by ID
	byOrder map[string]string  // order ID → charge ID
	ledger  map[string][]entry // by order ID
}

// entry is a row of the ledger, reduced to what a balance needs.
type entry struct {
	kind   string
	amount Money
}

// NewMemoryStore returns an empty in-memory Store.
func NewMemoryStore() Store {
	return &memoryStore{charges: map[string]Charge{}, byOrder: map[string]string{}, ledger: map[string][]entry{}}
}

func (m *memoryStore) CreateCharge(_ context.Context, c Charge) (Charge, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if id, ok := m.byOrder[c.OrderID]; ok {
		return m.charges[id], false, nil
	}
	m.charges[c.ID] = c
	m.byOrder[c.OrderID] = c.ID
	if c.Status == StatusSucceeded {
		m.ledger[c.OrderID] = append(m.ledger[c.OrderID], entry{KindCharge, c.Amount})
	}
	return c, true, nil
}

func (m *memoryStore) Charge(_ context.Context, id string) (Charge, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	c, ok := m.charges[id]
	if !ok {
		return Charge{}, ErrChargeNotFound
	}
	return c, nil
}

func (m *memoryStore) ChargeByOrder(_ context.Context, orderID string) (Charge, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	id, ok := m.byOrder[orderID]
	if !ok {
		return Charge{}, ErrChargeNotFound
	}
	return m.charges[id], nil
}

func (m *memoryStore) Refund(_ context.Context, id string, now time.Time) (Charge, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	c, ok := m.charges[id]
	if !ok {
		return Charge{}, false, ErrChargeNotFound
	}
	if c.Status != StatusSucceeded {
		return c, false, nil
	}
	c.Status, c.RefundedAt = StatusRefunded, now
	m.charges[id] = c
	m.ledger[c.OrderID] = append(m.ledger[c.OrderID], entry{KindRefund, c.Amount})
	return c, true, nil
}

func (m *memoryStore) Balance(_ context.Context, orderID string) (Balance, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var b Balance
	for _, e := range m.ledger[orderID] {
		b.Currency = e.amount.Currency
		if e.kind == KindCharge {
			b.Charged += e.amount.Amount
		} else {
			b.Refunded += e.amount.Amount
		}
	}
	return b, nil
}

package order

import (
	"context"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/kitshop/kitshop/pkg/outbox"
)

// memoryStore keeps everything in maps behind one mutex: for the demo and tests. Its
// outbox is a slice nobody relays: without a database, events stay in memory.
type memoryStore struct {
	mu     sync.Mutex
	carts  map[string][]CartLine
	orders map[string]*memoryOrder
	keys   map[[2]string]memoryKey
	events []outbox.Event
}

type memoryOrder struct {
	Order
	lease Lease
}

type memoryKey struct {
	hash    string
	orderID string
	created time.Time
}

// NewMemoryStore returns an empty in-memory Store.
func NewMemoryStore() Store {
	return &memoryStore{carts: map[string][]CartLine{}, orders: map[string]*memoryOrder{}, keys: map[[2]string]memoryKey{}}
}

func (m *memoryStore) CartLines(_ context.Context, userID string) ([]CartLine, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.carts[userID]), nil
}

func (m *memoryStore) SetCartLine(_ context.Context, userID, sku string, quantity, maxLines int, now time.Time) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	lines := m.carts[userID]
	i := slices.IndexFunc(lines, func(l CartLine) bool { return l.SKU == sku })
	switch {
	case quantity == 0 && i >= 0:
		lines = slices.Delete(lines, i, i+1)
	case quantity == 0:
	case i >= 0:
		lines[i].Quantity = quantity
	case len(lines) >= maxLines:
		return ErrCartFull
	default:
		lines = append(lines, CartLine{SKU: sku, Quantity: quantity, AddedAt: now})
	}
	if len(lines) == 0 {
		delete(m.carts, userID)
		return nil
	}
	m.carts[userID] = lines
	return nil
}

// copyOrder returns o with its own items slice, in SKU order as PostgreSQL returns
// them, so callers cannot reach the stored one.
func copyOrder(o Order) Order {
	o.Items = slices.Clone(o.Items)
	sort.Slice(o.Items, func(i, j int) bool { return o.Items[i].SKU < o.Items[j].SKU })
	return o
}

func (m *memoryStore) CreateOrder(_ context.Context, o Order, key IdempotencyKey, lease Lease) (Order, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	k := [2]string{key.UserID, key.Key}
	if existing, ok := m.keys[k]; ok && !existing.created.Before(key.NotBefore) {
		if existing.hash != key.Hash {
			return Order{}, false, ErrIdempotencyMismatch
		}
		return copyOrder(m.orders[existing.orderID].Order), false, nil
	}
	m.keys[k] = memoryKey{hash: key.Hash, orderID: o.ID, created: o.CreatedAt}
	m.orders[o.ID] = &memoryOrder{Order: copyOrder(o), lease: lease}
	return copyOrder(o), true, nil
}

func (m *memoryStore) OrderByKey(_ context.Context, key IdempotencyKey) (Order, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	existing, ok := m.keys[[2]string{key.UserID, key.Key}]
	switch {
	case !ok || existing.created.Before(key.NotBefore):
		return Order{}, ErrOrderNotFound
	case existing.hash != key.Hash:
		return Order{}, ErrIdempotencyMismatch
	}
	return copyOrder(m.orders[existing.orderID].Order), nil
}

func (m *memoryStore) Order(_ context.Context, id string) (Order, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	o, ok := m.orders[id]
	if !ok {
		return Order{}, ErrOrderNotFound
	}
	return copyOrder(o.Order), nil
}

// newestFirst sorts orders by creation, newest first, then by ID.
func newestFirst(orders []Order) {
	sort.Slice(orders, func(i, j int) bool {
		if !orders[i].CreatedAt.Equal(orders[j].CreatedAt) {
			return orders[i].CreatedAt.After(orders[j].CreatedAt)
		}
		return orders[i].ID > orders[j].ID
	})
}

func (m *memoryStore) ListOrders(_ context.Context, userID string, limit int) ([]Order, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := []Order{}
	for _, o := range m.orders {
		if o.UserID == userID {
			out = append(out, copyOrder(o.Order))
		}
	}
	newestFirst(out)
	if len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}

func (m *memoryStore) Claim(_ context.Context, id string, lease Lease, now time.Time) (Order, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	o, ok := m.orders[id]
	if !ok {
		return Order{}, ErrOrderNotFound
	}
	if o.lease.Until.After(now) {
		return Order{}, ErrLeaseHeld
	}
	o.lease = lease
	return copyOrder(o.Order), nil
}

// unfinished reports whether o's saga still has steps to take.
func unfinished(o Order) bool {
	return o.Status == StatusPending || o.Step == StepCancelling || o.Step == StepRefunded
}

func (m *memoryStore) ClaimStale(_ context.Context, lease Lease, now time.Time, limit int) ([]Order, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var due []*memoryOrder
	for _, o := range m.orders {
		if unfinished(o.Order) && !o.lease.Until.After(now) {
			due = append(due, o)
		}
	}
	sort.Slice(due, func(i, j int) bool { return due[i].UpdatedAt.Before(due[j].UpdatedAt) })
	if len(due) > limit {
		due = due[:limit]
	}
	out := make([]Order, len(due))
	for i, o := range due {
		o.lease = lease
		out[i] = copyOrder(o.Order)
	}
	return out, nil
}

func (m *memoryStore) Touch(_ context.Context, id string, lease Lease) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	o, ok := m.orders[id]
	if !ok || o.lease.Token != lease.Token {
		return ErrStale
	}
	o.lease.Until = lease.Until
	return nil
}

func (m *memoryStore) Advance(_ context.Context, id, token string, c Change, now, leaseUntil time.Time) (Order, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	o, ok := m.orders[id]
	if !ok || o.lease.Token != token || o.Step != c.From {
		return Order{}, ErrStale
	}
	o.Status, o.Step, o.UpdatedAt = c.Status, c.Step, now
	if c.ChargeID != "" {
		o.ChargeID = c.ChargeID
	}
	o.FailureCode, o.FailureMessage = c.FailureCode, c.FailureMessage
	o.lease.Until = leaseUntil
	if c.Event != nil {
		m.events = append(m.events, *c.Event)
	}
	if c.ClearCart {
		lines := slices.DeleteFunc(m.carts[o.UserID], func(l CartLine) bool {
			return slices.ContainsFunc(o.Items, func(it Item) bool { return it.SKU == l.SKU })
		})
		if len(lines) == 0 {
			delete(m.carts, o.UserID)
		} else {
			m.carts[o.UserID] = lines
		}
	}
	return copyOrder(o.Order), nil
}

func (m *memoryStore) CountPending(context.Context) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := 0
	for _, o := range m.orders {
		if o.Status == StatusPending {
			n++
		}
	}
	return n, nil
}

func (m *memoryStore) PurgeIdempotencyKeys(_ context.Context, before time.Time) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := 0
	for k, v := range m.keys {
		if v.created.Before(before) {
			delete(m.keys, k)
			n++
		}
	}
	return n, nil
}

func (m *memoryStore) Events(_ context.Context, orderID string) ([]outbox.Event, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := []outbox.Event{}
	for _, e := range m.events {
		if e.AggregateID == orderID {
			out = append(out, e)
		}
	}
	return out, nil
}

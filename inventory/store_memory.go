package inventory

import (
	"context"
	"sort"
	"sync"
	"time"
)

// memoryStore keeps everything in maps behind one mutex: for the demo and tests.
type memoryStore struct {
	mu           sync.Mutex
	products     map[string]Product
	reservations map[string]Reservation
}

// NewMemoryStore returns an empty in-memory Store.
func NewMemoryStore() Store {
	return &memoryStore{products: map[string]Product{}, reservations: map[string]Reservation{}}
}

func (m *memoryStore) ListProducts(_ context.Context, category, after string, limit int) ([]Product, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	skus := make([]string, 0, len(m.products))
	for sku, p := range m.products {
		if sku > after && (category == "" || p.Category == category) {
			skus = append(skus, sku)
		}
	}
	sort.Strings(skus)
	if len(skus) > limit {
		skus = skus[:limit]
	}
	out := make([]Product, len(skus))
	for i, sku := range skus {
		out[i] = m.products[sku]
	}
	return out, nil
}

func (m *memoryStore) GetProduct(_ context.Context, sku string) (Product, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	p, ok := m.products[sku]
	if !ok {
		return Product{}, ErrProductNotFound
	}
	return p, nil
}

func (m *memoryStore) CreateProduct(_ context.Context, p Product) (Product, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.products[p.SKU]; ok {
		return Product{}, ErrSKUTaken
	}
	m.products[p.SKU] = p
	return p, nil
}

func (m *memoryStore) SetStock(_ context.Context, sku string, stock int, now time.Time) (Product, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	p, ok := m.products[sku]
	if !ok {
		return Product{}, ErrProductNotFound
	}
	if stock < p.Reserved {
		return Product{}, ErrStockBelowReserved
	}
	p.Stock, p.UpdatedAt = stock, now
	m.products[sku] = p
	return p, nil
}

func (m *memoryStore) Reserve(_ context.Context, orderID string, lines []Line, now, expiresAt time.Time) (Reservation, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if r, ok := m.reservations[orderID]; ok {
		return r, false, nil
	}
	reserved := make([]ReservedLine, len(lines))
	for i, l := range lines {
		p, ok := m.products[l.SKU]
		if !ok {
			return Reservation{}, false, ErrProductNotFound.WithMessage("no product with SKU %q", l.SKU)
		}
		if p.Available() < l.Quantity {
			return Reservation{}, false, ErrOutOfStock.WithMessage("only %d of %q available", p.Available(), l.SKU)
		}
		reserved[i] = ReservedLine{SKU: l.SKU, Name: p.Name, Quantity: l.Quantity, UnitPrice: p.Price}
	}
	for _, l := range lines {
		m.adjust(l.SKU, 0, l.Quantity, now)
	}
	r := Reservation{OrderID: orderID, Status: StatusReserved, Lines: reserved, ExpiresAt: expiresAt, CreatedAt: now, UpdatedAt: now}
	m.reservations[orderID] = r
	return r, true, nil
}

// adjust changes a product's stock and reserved counts; the caller holds the lock.
func (m *memoryStore) adjust(sku string, stock, reserved int, now time.Time) {
	p := m.products[sku]
	p.Stock += stock
	p.Reserved += reserved
	p.UpdatedAt = now
	m.products[sku] = p
}

func (m *memoryStore) GetReservation(_ context.Context, orderID string) (Reservation, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	r, ok := m.reservations[orderID]
	if !ok {
		return Reservation{}, ErrReservationNotFound
	}
	return r, nil
}

func (m *memoryStore) Commit(_ context.Context, orderID string, now time.Time) (Reservation, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	r, ok := m.reservations[orderID]
	if !ok {
		return Reservation{}, ErrReservationNotFound
	}
	if r.Status != StatusReserved {
		return r, nil
	}
	if !now.Before(r.ExpiresAt) {
		return m.transition(r, StatusExpired, now), nil
	}
	return m.transition(r, StatusCommitted, now), nil
}

func (m *memoryStore) Release(_ context.Context, orderID string, now time.Time) (Reservation, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	r, ok := m.reservations[orderID]
	if !ok {
		r = Reservation{OrderID: orderID, Status: StatusReleased, ExpiresAt: now, CreatedAt: now, UpdatedAt: now}
		m.reservations[orderID] = r
		return r, nil
	}
	if r.Status != StatusReserved && r.Status != StatusCommitted {
		return r, nil
	}
	return m.transition(r, StatusReleased, now), nil
}

func (m *memoryStore) ExpireReservations(_ context.Context, now time.Time, limit int) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := 0
	for _, r := range m.reservations {
		if n == limit {
			break
		}
		if r.Status == StatusReserved && !now.Before(r.ExpiresAt) {
			m.transition(r, StatusExpired, now)
			n++
		}
	}
	return n, nil
}

// transition moves r to status, adjusting stock as the move requires; the caller holds
// the lock.
func (m *memoryStore) transition(r Reservation, status string, now time.Time) Reservation {
	for _, l := range r.Lines {
		switch {
		case status == StatusCommitted:
			m.adjust(l.SKU, -l.Quantity, -l.Quantity, now)
		case r.Status == StatusReserved: // released or expired
			m.adjust(l.SKU, 0, -l.Quantity, now)
		case r.Status == StatusCommitted: // released after sale: back to stock
			m.adjust(l.SKU, l.Quantity, 0, now)
		}
	}
	r.Status, r.UpdatedAt = status, now
	m.reservations[r.OrderID] = r
	return r
}

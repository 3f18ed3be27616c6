package order

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kitshop/kitshop/pkg/outbox"
	"github.com/kitshop/kitshop/pkg/testenv"
)

func TestMemoryStore(t *testing.T) {
	testStore(t, func(t *testing.T) Store { return NewMemoryStore() })
}

func TestPostgresStore(t *testing.T) {
	testStore(t, func(t *testing.T) Store { return NewPostgresStore(testenv.Postgres(t, Migrations())) })
}

var t0 = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

// testOrder is a pending order of user with one line per SKU.
func testOrder(id, user string, at time.Time, skus ...string) Order {
	o := Order{ID: id, UserID: user, Email: user + "@example.com", Status: StatusPending, Step: StepCreated,
		Total: Money{Currency: "EUR"}, FromCart: true, CreatedAt: at, UpdatedAt: at}
	for _, sku := range skus {
		o.Items = append(o.Items, Item{SKU: sku, Name: "Product " + sku, Quantity: 2, UnitPrice: Money{Amount: 500, Currency: "EUR"}})
		o.Total.Amount += 1000
	}
	return o
}

func key(user, k, hash string) IdempotencyKey {
	return IdempotencyKey{UserID: user, Key: k, Hash: hash, NotBefore: t0.Add(-24 * time.Hour)}
}

// testStore is the conformance suite every Store implementation must pass.
func testStore(t *testing.T, newStore func(t *testing.T) Store) {
	ctx := context.Background()
	held := Lease{Token: "first", Until: t0.Add(time.Minute)}
	create := func(t *testing.T, s Store, o Order) Order {
		t.Helper()
		got, created, err := s.CreateOrder(ctx, o, key(o.UserID, "k-"+o.ID, "h"), held)
		if err != nil || !created {
			t.Fatalf("create %s: %v, created %v", o.ID, err, created)
		}
		return got
	}
	cartSKUs := func(t *testing.T, s Store, user string) string {
		t.Helper()
		lines, err := s.CartLines(ctx, user)
		if err != nil {
			t.Fatal(err)
		}
		out := ""
		for _, l := range lines {
			out += fmt.Sprintf("%s:%d ", l.SKU, l.Quantity)
		}
		return out
	}

	t.Run("cart", func(t *testing.T) {
		s := newStore(t)
		steps := []struct {
			sku      string
			quantity int
			want     error
			cart     string
		}{
			{"A", 1, nil, "A:1 "},
			{"B", 3, nil, "A:1 B:3 "},
			{"A", 5, nil, "A:5 B:3 "},
			{"C", 1, ErrCartFull, "A:5 B:3 "},
			{"A", 0, nil, "B:3 "},
			{"A", 0, nil, "B:3 "},
			{"C", 2, nil, "B:3 C:2 "},
		}
		for i, st := range steps {
			err := s.SetCartLine(ctx, "u1", st.sku, st.quantity, 2, t0.Add(time.Duration(i)*time.Second))
			if !errors.Is(err, st.want) {
				t.Fatalf("step %d: set %s=%d: %v, want %v", i, st.sku, st.quantity, err, st.want)
			}
			if got := cartSKUs(t, s, "u1"); got != st.cart {
				t.Fatalf("step %d: cart %q, want %q", i, got, st.cart)
			}
		}
		if got := cartSKUs(t, s, "u2"); got != "" {
			t.Fatalf("another user's cart: %q", got)
		}
	})

	t.Run("concurrent cart additions keep the line limit", func(t *testing.T) {
		s := newStore(t)
		var full atomic.Int64
		var wg sync.WaitGroup
		for i := 0; i < 20; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				err := s.SetCartLine(ctx, "u1", fmt.Sprint("S", i), 1, 5, t0)
				switch {
				case errors.Is(err, ErrCartFull):
					full.Add(1)
				case err != nil:
					t.Error(err)
				}
			}()
		}
		wg.Wait()
		lines, _ := s.CartLines(ctx, "u1")
		if len(lines) != 5 || full.Load() != 15 {
			t.Fatalf("%d lines, %d refused; want 5 and 15", len(lines), full.Load())
		}
	})

	t.Run("orders and idempotency keys", func(t *testing.T) {
		s := newStore(t)
		o := testOrder("o1", "u1", t0, "B", "A")
		got, created, err := s.CreateOrder(ctx, o, key("u1", "k1", "h1"), held)
		if err != nil || !created || got.ID != "o1" {
			t.Fatalf("create = %+v, %v, %v", got, created, err)
		}
		again, created, err := s.CreateOrder(ctx, testOrder("o2", "u1", t0.Add(time.Second), "A"), key("u1", "k1", "h1"), held)
		if err != nil || created || again.ID != "o1" || len(again.Items) != 2 || again.Total.Amount != 2000 {
			t.Fatalf("replay = %+v, %v, %v", again, created, err)
		}
		if _, _, err := s.CreateOrder(ctx, testOrder("o3", "u1", t0, "A"), key("u1", "k1", "other"), held); !errors.Is(err, ErrIdempotencyMismatch) {
			t.Fatalf("other request, same key: %v", err)
		}
		if _, created, err := s.CreateOrder(ctx, testOrder("o4", "u2", t0, "A"), key("u2", "k1", "h1"), held); err != nil || !created {
			t.Fatalf("same key, another user: %v, %v", created, err)
		}
		lookups := []struct {
			key  IdempotencyKey
			want error
		}{
			{key("u1", "k1", "h1"), nil},
			{key("u1", "k1", "other"), ErrIdempotencyMismatch},
			{key("u1", "unused", "h1"), ErrOrderNotFound},
			{key("u3", "k1", "h1"), ErrOrderNotFound},
			{IdempotencyKey{UserID: "u1", Key: "k1", Hash: "h1", NotBefore: t0.Add(time.Second)}, ErrOrderNotFound}, // expired
		}
		for _, l := range lookups {
			if got, err := s.OrderByKey(ctx, l.key); !errors.Is(err, l.want) || (err == nil && (got.ID != "o1" || len(got.Items) != 2)) {
				t.Fatalf("order by key %+v = %+v, %v; want %v", l.key, got, err, l.want)
			}
		}
		if _, err := s.Order(ctx, "o2"); !errors.Is(err, ErrOrderNotFound) {
			t.Fatalf("a replay stored an order: %v", err)
		}
		// A key older than NotBefore has expired and is used afresh.
		later := key("u1", "k1", "h2")
		later.NotBefore = t0.Add(time.Second)
		if got, created, err := s.CreateOrder(ctx, testOrder("o5", "u1", t0.Add(25*time.Hour), "A"), later, held); err != nil || !created || got.ID != "o5" {
			t.Fatalf("expired key: %+v, %v, %v", got, created, err)
		}

		got, err = s.Order(ctx, "o1")
		if err != nil || got.UserID != "u1" || got.Email != "u1@example.com" || got.Status != StatusPending || got.Step != StepCreated ||
			!got.FromCart || !got.CreatedAt.Equal(t0) || len(got.Items) != 2 || got.Items[0].SKU != "A" || got.Items[0].UnitPrice.Amount != 500 {
			t.Fatalf("get = %+v, %v", got, err)
		}
		if _, err := s.Order(ctx, "nope"); !errors.Is(err, ErrOrderNotFound) {
			t.Fatalf("unknown: %v", err)
		}
		list, err := s.ListOrders(ctx, "u1", 10)
		if err != nil || len(list) != 2 || list[0].ID != "o5" || list[1].ID != "o1" || len(list[1].Items) != 2 {
			t.Fatalf("list = %+v, %v", list, err)
		}
		if list, _ := s.ListOrders(ctx, "u1", 1); len(list) != 1 {
			t.Fatalf("limit 1 gave %d", len(list))
		}
		if list, _ := s.ListOrders(ctx, "nobody", 10); list == nil || len(list) != 0 {
			t.Fatalf("no orders = %#v", list)
		}
		// u1's k1 was reused at t0+25h; only u2's is older than an hour.
		if n, err := s.PurgeIdempotencyKeys(ctx, t0.Add(time.Hour)); err != nil || n != 1 {
			t.Fatalf("purged %d, %v; want 1", n, err)
		}
		if _, created, _ := s.CreateOrder(ctx, testOrder("o6", "u2", t0.Add(2*time.Hour), "A"), key("u2", "k1", "new"), held); !created {
			t.Fatal("a purged key was still in use")
		}
	})

	t.Run("concurrent duplicates create one order", func(t *testing.T) {
		s := newStore(t)
		var created atomic.Int64
		ids := make(chan string, 20)
		var wg sync.WaitGroup
		for i := 0; i < 20; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				o, c, err := s.CreateOrder(ctx, testOrder(fmt.Sprint("dup", i), "u1", t0, "A"), key("u1", "same", "h"), held)
				if err != nil {
					t.Error(err)
					return
				}
				if c {
					created.Add(1)
				}
				ids <- o.ID
			}()
		}
		wg.Wait()
		close(ids)
		first := ""
		for id := range ids {
			if first == "" {
				first = id
			}
			if id != first {
				t.Fatalf("answers name orders %s and %s", first, id)
			}
		}
		if created.Load() != 1 {
			t.Fatalf("created %d orders", created.Load())
		}
	})

	t.Run("leases and steps", func(t *testing.T) {
		s := newStore(t)
		create(t, s, testOrder("o1", "u1", t0, "A"))
		if _, err := s.Claim(ctx, "o1", Lease{Token: "second", Until: t0.Add(2 * time.Minute)}, t0.Add(time.Second)); !errors.Is(err, ErrLeaseHeld) {
			t.Fatalf("claim of a held lease: %v", err)
		}
		if _, err := s.Claim(ctx, "nope", held, t0); !errors.Is(err, ErrOrderNotFound) {
			t.Fatalf("claim unknown: %v", err)
		}
		if err := s.Touch(ctx, "o1", Lease{Token: "second", Until: t0.Add(time.Hour)}); !errors.Is(err, ErrStale) {
			t.Fatalf("touch by a stranger: %v", err)
		}
		if err := s.Touch(ctx, "o1", Lease{Token: "first", Until: t0.Add(2 * time.Minute)}); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Claim(ctx, "o1", Lease{Token: "second"}, t0.Add(90*time.Second)); !errors.Is(err, ErrLeaseHeld) {
			t.Fatalf("touch did not extend the lease: %v", err)
		}
		bad := []struct {
			name, token, from string
		}{
			{"wrong token", "second", StepCreated},
			{"wrong step", "first", StepReserved},
		}
		for _, b := range bad {
			if _, err := s.Advance(ctx, "o1", b.token, Change{From: b.from, Status: StatusPending, Step: StepCharged}, t0, t0); !errors.Is(err, ErrStale) {
				t.Fatalf("%s: %v", b.name, err)
			}
		}
		o, err := s.Advance(ctx, "o1", "first", Change{From: StepCreated, Status: StatusPending, Step: StepCharged, ChargeID: "ch_1"}, t0.Add(time.Second), t0.Add(time.Minute))
		if err != nil || o.Step != StepCharged || o.ChargeID != "ch_1" || !o.UpdatedAt.Equal(t0.Add(time.Second)) || len(o.Items) != 1 {
			t.Fatalf("advance = %+v, %v", o, err)
		}
		if want := (Item{SKU: "A", Name: "Product A", Quantity: 2, UnitPrice: Money{Amount: 500, Currency: "EUR"}}); o.Items[0] != want {
			t.Fatalf("advance returned item %+v, want %+v", o.Items[0], want)
		}
		o, err = s.Advance(ctx, "o1", "first", Change{From: StepCharged, Status: StatusFailed, Step: StepCompensated, FailureCode: "out_of_stock", FailureMessage: "none left"}, t0.Add(2*time.Second), t0)
		if err != nil || o.Status != StatusFailed || o.ChargeID != "ch_1" || o.FailureCode != "out_of_stock" || o.FailureMessage != "none left" {
			t.Fatalf("advance keeping the charge ID = %+v, %v", o, err)
		}
		if o, err := s.Claim(ctx, "o1", Lease{Token: "third", Until: t0.Add(time.Hour)}, t0.Add(time.Second)); err != nil || o.ID != "o1" {
			t.Fatalf("claim of a released lease = %+v, %v", o, err)
		}
	})

	t.Run("confirmation writes its event and clears the cart in one step", func(t *testing.T) {
		s := newStore(t)
		for _, sku := range []string{"A", "B", "C"} {
			if err := s.SetCartLine(ctx, "u1", sku, 1, 50, t0); err != nil {
				t.Fatal(err)
			}
		}
		create(t, s, testOrder("o1", "u1", t0, "A", "B"))
		e, err := outbox.NewEvent("order.confirmed", "o1", map[string]string{"order_id": "o1"}, t0)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Advance(ctx, "o1", "first", Change{From: StepCharged, Status: StatusConfirmed, Step: StepCommitted, Event: &e, ClearCart: true}, t0, t0); !errors.Is(err, ErrStale) {
			t.Fatalf("stale advance: %v", err)
		}
		if events, _ := s.Events(ctx, "o1"); len(events) != 0 || cartSKUs(t, s, "u1") != "A:1 B:1 C:1 " {
			t.Fatalf("a refused advance wrote %d events or changed the cart", len(events))
		}
		if _, err := s.Advance(ctx, "o1", "first", Change{From: StepCreated, Status: StatusConfirmed, Step: StepCommitted, Event: &e, ClearCart: true}, t0, t0); err != nil {
			t.Fatal(err)
		}
		events, err := s.Events(ctx, "o1")
		if err != nil || len(events) != 1 || events[0].ID != e.ID || events[0].Type != "order.confirmed" || string(events[0].Data) != `{"order_id":"o1"}` {
			t.Fatalf("events = %+v, %v", events, err)
		}
		if got := cartSKUs(t, s, "u1"); got != "C:1 " {
			t.Fatalf("cart after confirmation: %q", got)
		}
	})

	t.Run("stale sagas are claimed once", func(t *testing.T) {
		s := newStore(t)
		for i := 0; i < 6; i++ {
			create(t, s, testOrder(fmt.Sprint("o", i), "u1", t0.Add(time.Duration(i)*time.Second), "A"))
		}
		// o4 finished, o5 is being cancelled.
		if _, err := s.Advance(ctx, "o4", "first", Change{From: StepCreated, Status: StatusFailed, Step: StepCompensated}, t0, t0); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Advance(ctx, "o5", "first", Change{From: StepCreated, Status: StatusConfirmed, Step: StepCancelling}, t0, t0); err != nil {
			t.Fatal(err)
		}
		if n, err := s.CountPending(ctx); err != nil || n != 4 {
			t.Fatalf("pending %d, %v; want 4", n, err)
		}
		if got, err := s.ClaimStale(ctx, Lease{Token: "r", Until: t0.Add(time.Hour)}, t0.Add(30*time.Second), 10); err != nil || len(got) != 1 || got[0].ID != "o5" {
			t.Fatalf("claimed %+v, %v; want only o5, whose lease was let go", got, err)
		}
		var mu sync.Mutex
		seen := map[string]int{}
		var wg sync.WaitGroup
		for i := 0; i < 4; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				got, err := s.ClaimStale(ctx, Lease{Token: fmt.Sprint("r", i), Until: t0.Add(time.Hour)}, t0.Add(2*time.Minute), 2)
				if err != nil {
					t.Error(err)
				}
				mu.Lock()
				defer mu.Unlock()
				for _, o := range got {
					seen[o.ID]++
					if len(o.Items) != 1 {
						t.Errorf("claimed %s without items", o.ID)
					}
				}
			}()
		}
		wg.Wait()
		if len(seen) != 4 {
			t.Fatalf("claimed %v; want o0-o3", seen)
		}
		for id, n := range seen {
			if n != 1 {
				t.Fatalf("%s claimed %d times", id, n)
			}
		}
	})
}

package payment

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kitshop/kitshop/pkg/testenv"
)

func TestMemoryStore(t *testing.T) {
	testStore(t, func(t *testing.T) Store { return NewMemoryStore() })
}

func TestPostgresStore(t *testing.T) {
	testStore(t, func(t *testing.T) Store { return NewPostgresStore(testenv.Postgres(t, Migrations())) })
}

var t0 = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

// storedCharge is a charge as the service would hand it to the store.
func storedCharge(orderID, status string, amount int64) Charge {
	c := Charge{
		ID: newChargeID(), OrderID: orderID, UserID: "u1", Status: status,
		Amount: Money{Amount: amount, Currency: "EUR"}, Card: CardInfo{Brand: BrandVisa, Last4: "4242"}, CreatedAt: t0,
	}
	if status == StatusDeclined {
		c.DeclineCode = DeclineCardDeclined
	}
	return c
}

// testStore is the conformance suite every Store implementation must pass.
func testStore(t *testing.T, newStore func(t *testing.T) Store) {
	ctx := context.Background()
	create := func(t *testing.T, s Store, c Charge) Charge {
		t.Helper()
		got, created, err := s.CreateCharge(ctx, c)
		if err != nil || !created || got != c {
			t.Fatalf("create %s = %+v, %v, %v; want it stored", c.OrderID, got, created, err)
		}
		return got
	}
	expectBalance := func(t *testing.T, s Store, orderID string, want Balance) {
		t.Helper()
		if b, err := s.Balance(ctx, orderID); err != nil || b != want {
			t.Fatalf("balance of %s = %+v, %v; want %+v", orderID, b, err, want)
		}
	}

	t.Run("create and read", func(t *testing.T) {
		s := newStore(t)
		c := create(t, s, storedCharge("o1", StatusSucceeded, 1999))
		if got, err := s.Charge(ctx, c.ID); err != nil || got != c {
			t.Fatalf("charge by ID = %+v, %v", got, err)
		}
		if got, err := s.ChargeByOrder(ctx, "o1"); err != nil || got != c {
			t.Fatalf("charge by order = %+v, %v", got, err)
		}
		if _, err := s.Charge(ctx, newChargeID()); !errors.Is(err, ErrChargeNotFound) {
			t.Fatalf("unknown ID: err = %v", err)
		}
		if _, err := s.ChargeByOrder(ctx, "o2"); !errors.Is(err, ErrChargeNotFound) {
			t.Fatalf("unknown order: err = %v", err)
		}
		expectBalance(t, s, "o1", Balance{Currency: "EUR", Charged: 1999})
		expectBalance(t, s, "o2", Balance{})
	})

	t.Run("a second charge of an order stores nothing", func(t *testing.T) {
		s := newStore(t)
		first := create(t, s, storedCharge("o1", StatusSucceeded, 1999))
		got, created, err := s.CreateCharge(ctx, storedCharge("o1", StatusSucceeded, 500))
		if err != nil || created || got != first {
			t.Fatalf("second charge = %+v, %v, %v; want the first, not created", got, created, err)
		}
		expectBalance(t, s, "o1", Balance{Currency: "EUR", Charged: 1999})
	})

	t.Run("a declined charge is kept and moves no money", func(t *testing.T) {
		s := newStore(t)
		c := create(t, s, storedCharge("o1", StatusDeclined, 1999))
		if got, err := s.ChargeByOrder(ctx, "o1"); err != nil || got != c || got.DeclineCode != DeclineCardDeclined {
			t.Fatalf("declined charge = %+v, %v", got, err)
		}
		got, refunded, err := s.Refund(ctx, c.ID, t0.Add(time.Minute))
		if err != nil || refunded || got != c {
			t.Fatalf("refund of declined = %+v, %v, %v; want it unchanged", got, refunded, err)
		}
		expectBalance(t, s, "o1", Balance{})
	})

	t.Run("refund", func(t *testing.T) {
		s := newStore(t)
		c := create(t, s, storedCharge("o1", StatusSucceeded, 1999))
		at := t0.Add(time.Minute)
		want := c
		want.Status, want.RefundedAt = StatusRefunded, at
		got, refunded, err := s.Refund(ctx, c.ID, at)
		if err != nil || !refunded || got != want {
			t.Fatalf("refund = %+v, %v, %v; want %+v", got, refunded, err, want)
		}
		got, refunded, err = s.Refund(ctx, c.ID, at.Add(time.Minute))
		if err != nil || refunded || got != want {
			t.Fatalf("second refund = %+v, %v, %v; want the first, not refunded", got, refunded, err)
		}
		if got, err := s.Charge(ctx, c.ID); err != nil || got != want {
			t.Fatalf("refunded charge = %+v, %v", got, err)
		}
		if _, _, err := s.Refund(ctx, newChargeID(), at); !errors.Is(err, ErrChargeNotFound) {
			t.Fatalf("refund of unknown charge: err = %v", err)
		}
		expectBalance(t, s, "o1", Balance{Currency: "EUR", Charged: 1999, Refunded: 1999})
	})

	t.Run("concurrent charges of one order store one", func(t *testing.T) {
		s := newStore(t)
		const n = 16
		var (
			wg      sync.WaitGroup
			created atomic.Int32
			ids     = make([]string, n)
			errs    = make([]error, n)
		)
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				c, ok, err := s.CreateCharge(ctx, storedCharge("o1", StatusSucceeded, 1999))
				if ok {
					created.Add(1)
				}
				ids[i], errs[i] = c.ID, err
			}()
		}
		wg.Wait()
		for i := range n {
			if errs[i] != nil || ids[i] != ids[0] {
				t.Fatalf("call %d: id %q, err %v; want %q", i, ids[i], errs[i], ids[0])
			}
		}
		if created.Load() != 1 {
			t.Fatalf("%d calls created a charge, want 1", created.Load())
		}
		expectBalance(t, s, "o1", Balance{Currency: "EUR", Charged: 1999})
	})

	t.Run("concurrent refunds refund once", func(t *testing.T) {
		s := newStore(t)
		c := create(t, s, storedCharge("o1", StatusSucceeded, 1999))
		var (
			wg       sync.WaitGroup
			refunded atomic.Int32
			failed   atomic.Int32
		)
		for range 16 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				got, ok, err := s.Refund(ctx, c.ID, t0.Add(time.Minute))
				if err != nil || got.Status != StatusRefunded {
					failed.Add(1)
				}
				if ok {
					refunded.Add(1)
				}
			}()
		}
		wg.Wait()
		if failed.Load() != 0 || refunded.Load() != 1 {
			t.Fatalf("%d refunds failed, %d refunded; want 0 and 1", failed.Load(), refunded.Load())
		}
		expectBalance(t, s, "o1", Balance{Currency: "EUR", Charged: 1999, Refunded: 1999})
	})

	t.Run("money is conserved", func(t *testing.T) {
		// Through the service, concurrently and with repeats: for every order the
		// ledger keeps exactly the amount of a charge that stands (succeeded), and
		// nothing for one declined or refunded.
		s := newStore(t)
		proc, err := NewSimulatedProcessor(SimulatedConfig{Seed: 1})
		if err != nil {
			t.Fatal(err)
		}
		svc := NewService(s, proc, func() time.Time { return t0 })
		const orders = 40
		cards := []string{TestCardSucceeds, TestCardSucceeds, TestCardDeclined, TestCardInsufficientFunds}
		var wg sync.WaitGroup
		errCh := make(chan error, orders*4)
		for i := range orders {
			r := ChargeRequest{
				OrderID: fmt.Sprintf("order-%d", i), UserID: "u1",
				Amount: Money{Amount: int64(100 + i), Currency: "EUR"},
				Card:   Card{Number: cards[i%len(cards)], ExpMonth: 12, ExpYear: 2030, CVC: "123"},
			}
			for range 2 { // every order charged twice at once
				wg.Add(1)
				go func() {
					defer wg.Done()
					c, _, err := svc.Charge(ctx, r)
					if err != nil {
						errCh <- err
						return
					}
					if i%3 == 0 && c.Status == StatusSucceeded { // a third refunded, twice
						if _, _, err := svc.Refund(ctx, c.ID); err != nil {
							errCh <- err
						}
					}
				}()
			}
		}
		wg.Wait()
		close(errCh)
		for err := range errCh {
			t.Fatalf("charge or refund failed: %v", err)
		}
		var charged, refunded, kept int64
		for i := range orders {
			orderID := fmt.Sprintf("order-%d", i)
			c, err := s.ChargeByOrder(ctx, orderID)
			if err != nil {
				t.Fatal(err)
			}
			b, err := s.Balance(ctx, orderID)
			if err != nil {
				t.Fatal(err)
			}
			var want int64
			if c.Status == StatusSucceeded {
				want = c.Amount.Amount
			}
			if b.Net() != want {
				t.Fatalf("%s (%s): ledger keeps %d, want %d", orderID, c.Status, b.Net(), want)
			}
			charged, refunded, kept = charged+b.Charged, refunded+b.Refunded, kept+want
		}
		if charged-refunded != kept || refunded == 0 || kept == 0 {
			t.Fatalf("charged %d - refunded %d != kept %d", charged, refunded, kept)
		}
	})
}

package order

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/kitshop/kitshop/inventory"
	"github.com/kitshop/kitshop/payment"
)

func TestKillBetweenStepsMemory(t *testing.T) { testKillBetweenSteps(t, false) }

func TestKillBetweenStepsPostgres(t *testing.T) { testKillBetweenSteps(t, true) }

// testKillBetweenSteps stops a checkout (or a cancellation) at every point of its saga,
// as a crash would, then lets a fresh instance on the same store recover it: the
// order completes or is compensated, and nothing is charged twice or left reserved.
func testKillBetweenSteps(t *testing.T, postgres bool) {
	e := newEnv(t, envOptions{postgres: postgres})
	points := []struct {
		point  string
		cancel bool
		want   string
	}{
		// Before the charge, a resumed checkout has no card: it is compensated.
		{"created", false, StatusFailed},
		{"reserve_called", false, StatusFailed},
		{"reserved", false, StatusFailed},
		// From the charge on, it completes.
		{"charge_called", false, StatusConfirmed},
		{"charged", false, StatusConfirmed},
		{"commit_called", false, StatusConfirmed},
		{"cancelling", true, StatusCancelled},
		{"refund_called", true, StatusCancelled},
		{"refunded", true, StatusCancelled},
	}
	for i, p := range points {
		t.Run(p.point, func(t *testing.T) {
			e.t = t
			sku, user := fmt.Sprint("K", i), as(fmt.Sprint("killed-", i))
			e.seed(map[string]int{sku: 5})
			cfg := e.cfg
			var stopped atomic.Bool
			cfg.StopAt = func(point string) bool { return point == p.point && stopped.CompareAndSwap(false, true) }
			dying, svc := e.newService(cfg)

			o, err := svc.PlaceOrder(user, "k", Checkout{Card: testCard, Items: []Line{{sku, 2}}})
			if p.cancel {
				if err != nil || o.Status != StatusConfirmed {
					t.Fatalf("checkout = %+v, %v", o, err)
				}
				o, err = svc.CancelOrder(user, o.ID)
			}
			if err != nil || !stopped.Load() {
				t.Fatalf("the saga did not stop at %s: %+v, %v", p.point, o, err)
			}
			if o.Status != StatusPending && o.Status != StatusConfirmed {
				t.Fatalf("stopped order is %s", o.Status)
			}
			dying.Close()

			// A new instance sees nothing to recover while the dead one's lease runs…
			fresh, _ := e.newService(e.cfg)
			if n, err := fresh.Recover(context.Background()); err != nil || n != 0 {
				t.Fatalf("recovered %d, %v before the lease ran out", n, err)
			}
			// …and takes the saga over once it has.
			e.clock.Advance(e.cfg.RecoveryGrace)
			if n, err := fresh.Recover(context.Background()); err != nil || n != 1 {
				t.Fatalf("recovered %d, %v; want 1", n, err)
			}
			got, err := e.store.Order(context.Background(), o.ID)
			if err != nil || got.Status != p.want {
				t.Fatalf("after recovery = %+v, %v; want %s", got, err, p.want)
			}
			e.checkSettled(got)
			onHand, reserved := e.stock(sku)
			wantOnHand := 5
			if got.Status == StatusConfirmed {
				wantOnHand = 3
			}
			if onHand != wantOnHand || reserved != 0 {
				t.Fatalf("%s: %d on hand, %d reserved; want %d and 0", sku, onHand, reserved, wantOnHand)
			}
			events, _ := e.store.Events(context.Background(), o.ID)
			wantEvents := map[string]int{StatusFailed: 0, StatusConfirmed: 1, StatusCancelled: 2}[p.want]
			if len(events) != wantEvents {
				t.Fatalf("%d events, want %d", len(events), wantEvents)
			}
			if got.Status == StatusFailed && got.FailureCode != ErrCheckoutInterrupted.Code {
				t.Fatalf("failure %s", got.FailureCode)
			}
		})
	}
}

// noCommit is an Inventory whose commits fail as if inventory were down.
type noCommit struct{ Inventory }

func (noCommit) Commit(context.Context, string) (inventory.Reservation, error) {
	return inventory.Reservation{}, unavailable
}

// TestRecoveryCompensatesPastTTL: a charged checkout that cannot be committed before
// its reservation's TTL is compensated: released, refunded, failed.
func TestRecoveryCompensatesPastTTL(t *testing.T) {
	e := newEnv(t, envOptions{wrapInv: func(i Inventory) Inventory { return noCommit{i} }})
	e.seed(map[string]int{"A": 5})
	cfg := e.cfg
	cfg.StopAt = func(point string) bool { return point == StepCharged }
	dying, svc := e.newService(cfg)
	o, err := svc.PlaceOrder(as("u1"), "k", Checkout{Card: testCard, Items: []Line{{"A", 1}}})
	if err != nil || o.Status != StatusPending {
		t.Fatalf("checkout = %+v, %v", o, err)
	}
	dying.Close()

	e.clock.Advance(e.cfg.ReservationTTL + e.cfg.RecoveryGrace)
	fresh, _ := e.newService(e.cfg)
	if n, err := fresh.Recover(context.Background()); err != nil || n != 1 {
		t.Fatalf("recovered %d, %v", n, err)
	}
	got, _ := e.store.Order(context.Background(), o.ID)
	if got.Status != StatusFailed || got.FailureCode != ErrCheckoutExpired.Code {
		t.Fatalf("order %+v", got)
	}
	e.checkSettled(got)
	if c := e.charges(o.ID); len(c) != 1 || c[0].Status != payment.StatusRefunded {
		t.Fatalf("charges %+v", c)
	}
	if a, r := e.stock("A"); a != 5 || r != 0 {
		t.Fatalf("A: %d on hand, %d reserved", a, r)
	}
}

package inventory

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

func product(sku string, stock int) Product {
	return Product{SKU: sku, Name: "Name " + sku, Description: "d", Price: Money{Amount: 1999, Currency: "EUR"}, Stock: stock, CreatedAt: t0, UpdatedAt: t0}
}

// testStore is the conformance suite every Store implementation must pass.
func testStore(t *testing.T, newStore func(t *testing.T) Store) {
	ctx := context.Background()
	seed := func(t *testing.T, s Store, products ...Product) {
		t.Helper()
		for _, p := range products {
			if _, err := s.CreateProduct(ctx, p); err != nil {
				t.Fatalf("create %s: %v", p.SKU, err)
			}
		}
	}
	stockOf := func(t *testing.T, s Store, sku string) (stock, reserved int) {
		t.Helper()
		p, err := s.GetProduct(ctx, sku)
		if err != nil {
			t.Fatalf("get %s: %v", sku, err)
		}
		return p.Stock, p.Reserved
	}
	expectStock := func(t *testing.T, s Store, sku string, stock, reserved int) {
		t.Helper()
		if gs, gr := stockOf(t, s, sku); gs != stock || gr != reserved {
			t.Fatalf("%s: stock %d reserved %d, want %d %d", sku, gs, gr, stock, reserved)
		}
	}

	t.Run("products", func(t *testing.T) {
		s := newStore(t)
		seed(t, s, product("B", 1), product("A", 2), product("C", 3))
		if _, err := s.CreateProduct(ctx, product("A", 9)); !errors.Is(err, ErrSKUTaken) {
			t.Fatalf("duplicate SKU: err = %v, want ErrSKUTaken", err)
		}
		if _, err := s.GetProduct(ctx, "nope"); !errors.Is(err, ErrProductNotFound) {
			t.Fatalf("unknown SKU: err = %v", err)
		}
		got, err := s.GetProduct(ctx, "A")
		if err != nil || got.Name != "Name A" || got.Price != (Money{1999, "EUR"}) || got.Stock != 2 || !got.CreatedAt.Equal(t0) {
			t.Fatalf("get A = %+v, %v", got, err)
		}
		tea, mugs := product("D", 1), product("E", 1)
		tea.Category, mugs.Category = "tea", "mugs"
		seed(t, s, tea, mugs)
		if got, err := s.GetProduct(ctx, "D"); err != nil || got.Category != "tea" {
			t.Fatalf("get D = %+v, %v; want category tea", got, err)
		}
		pages := []struct {
			category, after string
			limit           int
			want            []string
		}{
			{"", "", 10, []string{"A", "B", "C", "D", "E"}},
			{"", "", 2, []string{"A", "B"}},
			{"", "B", 2, []string{"C", "D"}},
			{"", "E", 2, nil},
			{"tea", "", 10, []string{"D"}},
			{"tea", "D", 10, nil},
			{"mugs", "A", 1, []string{"E"}},
			{"none", "", 10, nil},
		}
		for _, p := range pages {
			list, err := s.ListProducts(ctx, p.category, p.after, p.limit)
			if err != nil {
				t.Fatal(err)
			}
			var skus []string
			for _, x := range list {
				skus = append(skus, x.SKU)
			}
			if fmt.Sprint(skus) != fmt.Sprint(p.want) {
				t.Errorf("list category %q after %q limit %d = %v, want %v", p.category, p.after, p.limit, skus, p.want)
			}
		}
	})

	t.Run("set stock", func(t *testing.T) {
		s := newStore(t)
		seed(t, s, product("A", 5))
		if _, _, err := s.Reserve(ctx, "o1", []Line{{"A", 3}}, t0, t0.Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
		if _, err := s.SetStock(ctx, "A", 2, t0); !errors.Is(err, ErrStockBelowReserved) {
			t.Fatalf("below reserved: err = %v", err)
		}
		if _, err := s.SetStock(ctx, "Z", 2, t0); !errors.Is(err, ErrProductNotFound) {
			t.Fatalf("unknown: err = %v", err)
		}
		p, err := s.SetStock(ctx, "A", 3, t0.Add(time.Minute))
		if err != nil || p.Stock != 3 || p.Reserved != 3 || !p.UpdatedAt.Equal(t0.Add(time.Minute)) {
			t.Fatalf("set stock = %+v, %v", p, err)
		}
	})

	t.Run("reserve is all or nothing", func(t *testing.T) {
		s := newStore(t)
		seed(t, s, product("A", 5), product("B", 1))
		_, _, err := s.Reserve(ctx, "o1", []Line{{"A", 2}, {"B", 2}}, t0, t0.Add(time.Hour))
		if !errors.Is(err, ErrOutOfStock) {
			t.Fatalf("err = %v, want ErrOutOfStock", err)
		}
		_, _, err = s.Reserve(ctx, "o2", []Line{{"A", 2}, {"X", 1}}, t0, t0.Add(time.Hour))
		if !errors.Is(err, ErrProductNotFound) {
			t.Fatalf("err = %v, want ErrProductNotFound", err)
		}
		expectStock(t, s, "A", 5, 0)
		expectStock(t, s, "B", 1, 0)
		if _, err := s.GetReservation(ctx, "o1"); !errors.Is(err, ErrReservationNotFound) {
			t.Fatalf("failed reservation was kept: %v", err)
		}
	})

	t.Run("reserve is idempotent", func(t *testing.T) {
		s := newStore(t)
		seed(t, s, product("A", 5))
		r1, created, err := s.Reserve(ctx, "o1", []Line{{"A", 2}}, t0, t0.Add(time.Hour))
		if err != nil || !created || r1.Status != StatusReserved || len(r1.Lines) != 1 || r1.Lines[0].UnitPrice.Amount != 1999 || r1.Lines[0].Name != "Name A" {
			t.Fatalf("first reserve = %+v, %v, %v", r1, created, err)
		}
		r2, created, err := s.Reserve(ctx, "o1", []Line{{"A", 2}}, t0.Add(time.Second), t0.Add(2*time.Hour))
		if err != nil || created || r2.Status != StatusReserved || !r2.ExpiresAt.Equal(r1.ExpiresAt) || len(r2.Lines) != 1 {
			t.Fatalf("repeat = %+v, %v, %v", r2, created, err)
		}
		expectStock(t, s, "A", 5, 2)
	})

	t.Run("commit and release", func(t *testing.T) {
		s := newStore(t)
		seed(t, s, product("A", 10), product("B", 10))
		lines := []Line{{"A", 2}, {"B", 3}}
		for _, id := range []string{"c", "r", "x"} {
			if _, _, err := s.Reserve(ctx, id, lines, t0, t0.Add(time.Hour)); err != nil {
				t.Fatal(err)
			}
		}
		expectStock(t, s, "A", 10, 6)
		steps := []struct {
			name       string
			do         func(context.Context, string, time.Time) (Reservation, error)
			id         string
			at         time.Time
			wantStatus string
			a, aRes    int
		}{
			{"commit", s.Commit, "c", t0, StatusCommitted, 8, 4},
			{"commit again", s.Commit, "c", t0, StatusCommitted, 8, 4},
			{"release reserved", s.Release, "r", t0, StatusReleased, 8, 2},
			{"release again", s.Release, "r", t0, StatusReleased, 8, 2},
			{"commit released", s.Commit, "r", t0, StatusReleased, 8, 2},
			{"commit past expiry", s.Commit, "x", t0.Add(time.Hour), StatusExpired, 8, 0},
			{"release expired", s.Release, "x", t0.Add(time.Hour), StatusExpired, 8, 0},
			{"release committed returns stock", s.Release, "c", t0, StatusReleased, 10, 0},
			{"release unknown records it", s.Release, "late", t0, StatusReleased, 10, 0},
		}
		for _, st := range steps {
			r, err := st.do(ctx, st.id, st.at)
			if err != nil || r.Status != st.wantStatus {
				t.Fatalf("%s: %+v, %v; want status %s", st.name, r, err, st.wantStatus)
			}
			expectStock(t, s, "A", st.a, st.aRes)
		}
		expectStock(t, s, "B", 10, 0)
		r, created, err := s.Reserve(ctx, "late", lines, t0, t0.Add(time.Hour))
		if err != nil || created || r.Status != StatusReleased {
			t.Fatalf("reserve after release = %+v, %v, %v", r, created, err)
		}
		if _, err := s.Commit(ctx, "nope", t0); !errors.Is(err, ErrReservationNotFound) {
			t.Fatalf("commit unknown: %v", err)
		}
	})

	t.Run("expiry", func(t *testing.T) {
		s := newStore(t)
		seed(t, s, product("A", 10))
		for i, ttl := range []time.Duration{time.Minute, time.Minute, time.Hour} {
			if _, _, err := s.Reserve(ctx, fmt.Sprint("o", i), []Line{{"A", 1}}, t0, t0.Add(ttl)); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := s.Commit(ctx, "o1", t0); err != nil {
			t.Fatal(err)
		}
		n, err := s.ExpireReservations(ctx, t0.Add(2*time.Minute), 10)
		if err != nil || n != 1 {
			t.Fatalf("expired %d, %v; want 1", n, err)
		}
		expectStock(t, s, "A", 9, 1)
		if r, _ := s.GetReservation(ctx, "o0"); r.Status != StatusExpired {
			t.Fatalf("o0 status %s", r.Status)
		}
	})

	t.Run("concurrent reservations never oversell", func(t *testing.T) {
		s := newStore(t)
		const stock, buyers = 25, 100
		seed(t, s, product("LAST", stock), product("OTHER", buyers))
		var ok, out atomic.Int64
		var wg sync.WaitGroup
		for i := 0; i < buyers; i++ {
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				// Two lines in SKU order, as the service sends them.
				_, _, err := s.Reserve(ctx, fmt.Sprint("order-", i), []Line{{"LAST", 1}, {"OTHER", 1}}, t0, t0.Add(time.Hour))
				switch {
				case err == nil:
					ok.Add(1)
				case errors.Is(err, ErrOutOfStock):
					out.Add(1)
				default:
					t.Errorf("reserve %d: %v", i, err)
				}
			}(i)
		}
		wg.Wait()
		if ok.Load() != stock || out.Load() != buyers-stock {
			t.Fatalf("%d reserved, %d out of stock; want %d and %d", ok.Load(), out.Load(), stock, buyers-stock)
		}
		expectStock(t, s, "LAST", stock, stock)
		expectStock(t, s, "OTHER", buyers, stock)
	})

	t.Run("concurrent duplicate reserve holds once", func(t *testing.T) {
		s := newStore(t)
		seed(t, s, product("A", 100))
		var created atomic.Int64
		var wg sync.WaitGroup
		for i := 0; i < 20; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, c, err := s.Reserve(ctx, "same", []Line{{"A", 3}}, t0, t0.Add(time.Hour))
				if err != nil {
					t.Errorf("reserve: %v", err)
				}
				if c {
					created.Add(1)
				}
			}()
		}
		wg.Wait()
		if created.Load() != 1 {
			t.Fatalf("created %d times", created.Load())
		}
		expectStock(t, s, "A", 100, 3)
	})
}

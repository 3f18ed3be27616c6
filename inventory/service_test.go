package inventory

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

func newTestService(t testing.TB) (Service, Store, *time.Time) {
	t.Helper()
	store := NewMemoryStore()
	now := t0
	svc := NewService(store, "EUR", 15*time.Minute, func() time.Time { return now })
	for _, p := range []Product{product("A", 10), product("B", 2)} {
		if _, err := svc.CreateProduct(context.Background(), p); err != nil {
			t.Fatal(err)
		}
	}
	return svc, store, &now
}

func TestCreateProductValidation(t *testing.T) {
	valid := product("NEW-1", 5)
	tests := []struct {
		name   string
		change func(*Product)
		want   error
	}{
		{"valid", func(*Product) {}, nil},
		{"with a category", func(p *Product) { p.Category = "tea-2" }, nil},
		{"category in capitals", func(p *Product) { p.Category = "Tea" }, ErrInvalidCategory},
		{"category with a space", func(p *Product) { p.Category = "green tea" }, ErrInvalidCategory},
		{"category too long", func(p *Product) { p.Category = strings.Repeat("c", 33) }, ErrInvalidCategory},
		{"empty sku", func(p *Product) { p.SKU = "" }, ErrInvalidSKU},
		{"sku with slash", func(p *Product) { p.SKU = "a/b" }, ErrInvalidSKU},
		{"sku too long", func(p *Product) { p.SKU = strings.Repeat("x", 65) }, ErrInvalidSKU},
		{"taken sku", func(p *Product) { p.SKU = "A" }, ErrSKUTaken},
		{"no name", func(p *Product) { p.Name = "" }, ErrInvalidName},
		{"long name", func(p *Product) { p.Name = strings.Repeat("é", 201) }, ErrInvalidName},
		{"long description", func(p *Product) { p.Description = strings.Repeat("d", 2001) }, ErrInvalidDescription},
		{"zero price", func(p *Product) { p.Price.Amount = 0 }, ErrInvalidPrice},
		{"negative price", func(p *Product) { p.Price.Amount = -5 }, ErrInvalidPrice},
		{"absurd price", func(p *Product) { p.Price.Amount = MaxPrice + 1 }, ErrInvalidPrice},
		{"other currency", func(p *Product) { p.Price.Currency = "USD" }, ErrInvalidCurrency},
		{"negative stock", func(p *Product) { p.Stock = -1 }, ErrInvalidStock},
		{"absurd stock", func(p *Product) { p.Stock = MaxStock + 1 }, ErrInvalidStock},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			svc, store, _ := newTestService(t)
			p := valid
			tt.change(&p)
			p.Reserved = 7 // callers cannot set reserved units
			got, err := svc.CreateProduct(context.Background(), p)
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			if tt.want == nil {
				if got.Reserved != 0 || !got.CreatedAt.Equal(t0) {
					t.Errorf("created %+v", got)
				}
				return
			}
			if list, _ := store.ListProducts(context.Background(), "", "", 10); len(list) != 2 {
				t.Errorf("a refused product changed the catalogue: %d products", len(list))
			}
		})
	}
}

func TestListProducts(t *testing.T) {
	svc, _, _ := newTestService(t)
	ctx := context.Background()
	for _, sku := range []string{"C", "D", "E"} {
		if _, err := svc.CreateProduct(ctx, product(sku, 1)); err != nil {
			t.Fatal(err)
		}
	}
	var seen []string
	cursor := ""
	for pages := 0; ; pages++ {
		page, err := svc.ListProducts(ctx, "", 2, cursor)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range page.Products {
			seen = append(seen, p.SKU)
		}
		if page.NextCursor == "" {
			break
		}
		if pages > 5 {
			t.Fatal("pagination does not end")
		}
		cursor = page.NextCursor
	}
	if strings.Join(seen, ",") != "A,B,C,D,E" {
		t.Errorf("pages gave %v", seen)
	}

	bad := []struct {
		category string
		limit    int
		cursor   string
		want     error
	}{
		{category: "Tea", want: ErrInvalidCategory},
		{category: "-tea", want: ErrInvalidCategory},
		{category: strings.Repeat("a", 33), want: ErrInvalidCategory},
		{limit: -1, want: ErrInvalidLimit},
		{limit: MaxPageSize + 1, want: ErrInvalidLimit},
		{limit: 1000000, want: ErrInvalidLimit},
		{cursor: "!!!", want: ErrInvalidCursor},
		{cursor: "Lw", want: ErrInvalidCursor}, // base64 of "/", not a SKU
	}
	for _, b := range bad {
		if _, err := svc.ListProducts(ctx, b.category, b.limit, b.cursor); !errors.Is(err, b.want) {
			t.Errorf("category %q limit %d cursor %q: err = %v, want %v", b.category, b.limit, b.cursor, err, b.want)
		}
	}
}

func TestReserveValidation(t *testing.T) {
	many := make([]Line, MaxLines+1)
	for i := range many {
		many[i] = Line{SKU: "A", Quantity: 1}
	}
	tests := []struct {
		name    string
		orderID string
		lines   []Line
		want    error
	}{
		{"valid", "o-1", []Line{{"B", 1}, {"A", 2}}, nil},
		{"empty order id", "", []Line{{"A", 1}}, ErrInvalidOrderID},
		{"odd order id", "o 1;drop", []Line{{"A", 1}}, ErrInvalidOrderID},
		{"no lines", "o-1", nil, ErrNoLines},
		{"too many lines", "o-1", many, ErrNoLines},
		{"zero quantity", "o-1", []Line{{"A", 0}}, ErrInvalidQuantity},
		{"negative quantity", "o-1", []Line{{"A", -3}}, ErrInvalidQuantity},
		{"huge quantity", "o-1", []Line{{"A", MaxQuantity + 1}}, ErrInvalidQuantity},
		{"duplicate sku", "o-1", []Line{{"A", 1}, {"A", 1}}, ErrDuplicateSKU},
		{"bad sku", "o-1", []Line{{"", 1}}, ErrInvalidSKU},
		{"unknown sku", "o-1", []Line{{"A", 1}, {"Z", 1}}, ErrProductNotFound},
		{"out of stock", "o-1", []Line{{"A", 1}, {"B", 3}}, ErrOutOfStock},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			svc, store, _ := newTestService(t)
			r, err := svc.Reserve(context.Background(), tt.orderID, tt.lines)
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			a, _ := store.GetProduct(context.Background(), "A")
			if tt.want == nil {
				if r.Status != StatusReserved || !r.ExpiresAt.Equal(t0.Add(15*time.Minute)) || len(r.Lines) != 2 || r.Lines[0].SKU != "A" {
					t.Errorf("reservation %+v", r)
				}
				if a.Reserved != 2 {
					t.Errorf("A reserved %d, want 2", a.Reserved)
				}
				return
			}
			if a.Reserved != 0 {
				t.Errorf("a refused reservation holds %d units", a.Reserved)
			}
		})
	}
}

func TestReservationLifecycle(t *testing.T) {
	ctx := context.Background()
	svc, store, now := newTestService(t)
	lines := []Line{{"A", 3}}

	if _, err := svc.Reserve(ctx, "o1", lines); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Reserve(ctx, "o1", []Line{{"A", 4}}); !errors.Is(err, ErrIdempotencyMismatch) {
		t.Fatalf("different lines, same order: %v", err)
	}
	if r, err := svc.Reserve(ctx, "o1", lines); err != nil || r.Status != StatusReserved {
		t.Fatalf("repeat: %+v %v", r, err)
	}
	if r, err := svc.Commit(ctx, "o1"); err != nil || r.Status != StatusCommitted {
		t.Fatalf("commit: %+v %v", r, err)
	}
	if r, err := svc.Reserve(ctx, "o1", lines); err != nil || r.Status != StatusCommitted {
		t.Fatalf("reserve after commit returns the first result: %+v %v", r, err)
	}

	if _, err := svc.Release(ctx, "o2"); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Reserve(ctx, "o2", lines); !errors.Is(err, ErrReservationReleased) {
		t.Fatalf("reserve after release: %v", err)
	}
	if _, err := svc.Commit(ctx, "o2"); !errors.Is(err, ErrReservationReleased) {
		t.Fatalf("commit after release: %v", err)
	}

	if _, err := svc.Reserve(ctx, "o3", lines); err != nil {
		t.Fatal(err)
	}
	*now = now.Add(16 * time.Minute)
	if _, err := svc.Commit(ctx, "o3"); !errors.Is(err, ErrReservationExpired) {
		t.Fatalf("commit after TTL: %v", err)
	}
	if _, err := svc.Reserve(ctx, "o3", lines); !errors.Is(err, ErrReservationExpired) {
		t.Fatalf("reserve after expiry: %v", err)
	}
	if _, err := svc.Commit(ctx, "unknown"); !errors.Is(err, ErrReservationNotFound) {
		t.Fatalf("commit unknown: %v", err)
	}
	a, _ := store.GetProduct(ctx, "A")
	if a.Stock != 7 || a.Reserved != 0 {
		t.Fatalf("A stock %d reserved %d, want 7 0", a.Stock, a.Reserved)
	}
}

func TestSetStock(t *testing.T) {
	ctx := context.Background()
	svc, _, _ := newTestService(t)
	if _, err := svc.Reserve(ctx, "o1", []Line{{"A", 4}}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		sku   string
		stock int
		want  error
	}{
		{"A", 4, nil},
		{"A", 3, ErrStockBelowReserved},
		{"A", -1, ErrInvalidStock},
		{"A", MaxStock + 1, ErrInvalidStock},
		{"Z", 1, ErrProductNotFound},
		{"../x", 1, ErrProductNotFound},
	}
	for _, tt := range tests {
		if _, err := svc.SetStock(ctx, tt.sku, tt.stock); !errors.Is(err, tt.want) {
			t.Errorf("SetStock(%q, %d) = %v, want %v", tt.sku, tt.stock, err, tt.want)
		}
	}
}

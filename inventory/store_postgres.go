package inventory

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"io/fs"
	"time"

	"github.com/kitshop/kitshop/pkg/postgres"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// Migrations is the inventory schema, for postgres.Migrate.
func Migrations() fs.FS {
	return postgres.Dir(migrationFiles, "migrations")
}

// postgresStore keeps the catalogue in PostgreSQL. Stock moves are single conditional
// UPDATEs (reserve) or run under a row lock on the reservation (commit, release, expire),
// so concurrent requests never oversell.
type postgresStore struct {
	db *sql.DB
}

// NewPostgresStore returns a Store on db, whose schema Migrations created.
func NewPostgresStore(db *sql.DB) Store { return &postgresStore{db: db} }

const productColumns = `sku, name, description, category, price_amount, currency, stock, reserved, created_at, updated_at`

type scanner interface{ Scan(dest ...any) error }

func scanProduct(row scanner) (Product, error) {
	var p Product
	err := row.Scan(&p.SKU, &p.Name, &p.Description, &p.Category, &p.Price.Amount, &p.Price.Currency, &p.Stock, &p.Reserved, &p.CreatedAt, &p.UpdatedAt)
	p.CreatedAt, p.UpdatedAt = p.CreatedAt.UTC(), p.UpdatedAt.UTC()
	return p, err
}

func (s *postgresStore) ListProducts(ctx context.Context, category, after string, limit int) ([]Product, error) {
	// Two statements rather than one with "$1 = '' OR category = $1", whose one plan
	// would not use the category index.
	query, args := `SELECT `+productColumns+` FROM products WHERE sku > $1 ORDER BY sku LIMIT $2`, []any{after, limit}
	if category != "" {
		query, args = `SELECT `+productColumns+` FROM products WHERE category = $1 AND sku > $2 ORDER BY sku LIMIT $3`, []any{category, after, limit}
	}
	rows, err := s.db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	products := []Product{}
	for rows.Next() {
		p, err := scanProduct(rows)
		if err != nil {
			return nil, err
		}
		products = append(products, p)
	}
	return products, rows.Err()
}

func (s *postgresStore) GetProduct(ctx context.Context, sku string) (Product, error) {
	p, err := scanProduct(s.db.QueryRowContext(ctx, `SELECT `+productColumns+` FROM products WHERE sku = $1`, sku))
	if errors.Is(err, sql.ErrNoRows) {
		return Product{}, ErrProductNotFound
	}
	return p, err
}

func (s *postgresStore) CreateProduct(ctx context.Context, p Product) (Product, error) {
	_, err := s.db.ExecContext(ctx, `INSERT INTO products (`+productColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
		p.SKU, p.Name, p.Description, p.Category, p.Price.Amount, p.Price.Currency, p.Stock, p.Reserved, p.CreatedAt, p.UpdatedAt)
	if postgres.IsCode(err, "23505") {
		return Product{}, ErrSKUTaken
	}
	return p, err
}

func (s *postgresStore) SetStock(ctx context.Context, sku string, stock int, now time.Time) (Product, error) {
	p, err := scanProduct(s.db.QueryRowContext(ctx,
		`UPDATE products SET stock = $2, updated_at = $3 WHERE sku = $1 AND reserved <= $2 RETURNING `+productColumns, sku, stock, now))
	if errors.Is(err, sql.ErrNoRows) {
		if _, err := s.GetProduct(ctx, sku); err != nil {
			return Product{}, err
		}
		return Product{}, ErrStockBelowReserved
	}
	return p, err
}

func (s *postgresStore) Reserve(ctx context.Context, orderID string, lines []Line, now, expiresAt time.Time) (Reservation, bool, error) {
	var (
		r       Reservation
		created bool
	)
	err := postgres.InTx(ctx, s.db, nil, func(tx *sql.Tx) error {
		// A concurrent reserve of the same order waits here on the primary key until
		// this one commits or rolls back.
		res, err := tx.ExecContext(ctx, `INSERT INTO reservations (order_id, status, expires_at, created_at, updated_at)
			VALUES ($1, 'reserved', $2, $3, $3) ON CONFLICT (order_id) DO NOTHING`, orderID, expiresAt, now)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			r, err = getReservation(ctx, tx, orderID, false)
			created = false
			return err
		}
		r = Reservation{OrderID: orderID, Status: StatusReserved, ExpiresAt: expiresAt, CreatedAt: now, UpdatedAt: now}
		for _, l := range lines {
			rl := ReservedLine{SKU: l.SKU, Quantity: l.Quantity}
			err := tx.QueryRowContext(ctx, `UPDATE products SET reserved = reserved + $2, updated_at = $3
				WHERE sku = $1 AND stock - reserved >= $2 RETURNING name, price_amount, currency`,
				l.SKU, l.Quantity, now).Scan(&rl.Name, &rl.UnitPrice.Amount, &rl.UnitPrice.Currency)
			if errors.Is(err, sql.ErrNoRows) {
				return s.shortage(ctx, tx, l)
			}
			if err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, `INSERT INTO reservation_lines (order_id, sku, name, quantity, price_amount, currency)
				VALUES ($1, $2, $3, $4, $5, $6)`, orderID, rl.SKU, rl.Name, rl.Quantity, rl.UnitPrice.Amount, rl.UnitPrice.Currency); err != nil {
				return err
			}
			r.Lines = append(r.Lines, rl)
		}
		created = true
		return nil
	})
	if err != nil {
		return Reservation{}, false, err
	}
	return r, created, nil
}

// shortage explains why line could not be reserved.
func (s *postgresStore) shortage(ctx context.Context, tx *sql.Tx, l Line) error {
	var available int
	err := tx.QueryRowContext(ctx, `SELECT stock - reserved FROM products WHERE sku = $1`, l.SKU).Scan(&available)
	if errors.Is(err, sql.ErrNoRows) {
		return ErrProductNotFound.WithMessage("no product with SKU %q", l.SKU)
	}
	if err != nil {
		return err
	}
	return ErrOutOfStock.WithMessage("only %d of %q available", available, l.SKU)
}

type querier interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// getReservation reads a reservation and its lines, locking the reservation row when
// forUpdate is set.
func getReservation(ctx context.Context, q querier, orderID string, forUpdate bool) (Reservation, error) {
	query := `SELECT order_id, status, expires_at, created_at, updated_at FROM reservations WHERE order_id = $1`
	if forUpdate {
		query += ` FOR UPDATE`
	}
	var r Reservation
	err := q.QueryRowContext(ctx, query, orderID).Scan(&r.OrderID, &r.Status, &r.ExpiresAt, &r.CreatedAt, &r.UpdatedAt)
	if errors.Is(err, sql.ErrNoRows) {
		return Reservation{}, ErrReservationNotFound
	}
	if err != nil {
		return Reservation{}, err
	}
	r.ExpiresAt, r.CreatedAt, r.UpdatedAt = r.ExpiresAt.UTC(), r.CreatedAt.UTC(), r.UpdatedAt.UTC()
	rows, err := q.QueryContext(ctx, `SELECT sku, name, quantity, price_amount, currency FROM reservation_lines
		WHERE order_id = $1 ORDER BY sku`, orderID)
	if err != nil {
		return Reservation{}, err
	}
	defer rows.Close()
	for rows.Next() {
		var l ReservedLine
		if err := rows.Scan(&l.SKU, &l.Name, &l.Quantity, &l.UnitPrice.Amount, &l.UnitPrice.Currency); err != nil {
			return Reservation{}, err
		}
		r.Lines = append(r.Lines, l)
	}
	return r, rows.Err()
}

func (s *postgresStore) GetReservation(ctx context.Context, orderID string) (Reservation, error) {
	return getReservation(ctx, s.db, orderID, false)
}

func (s *postgresStore) Commit(ctx context.Context, orderID string, now time.Time) (Reservation, error) {
	var r Reservation
	err := postgres.InTx(ctx, s.db, nil, func(tx *sql.Tx) error {
		var err error
		if r, err = getReservation(ctx, tx, orderID, true); err != nil || r.Status != StatusReserved {
			return err
		}
		to := StatusCommitted
		if !now.Before(r.ExpiresAt) {
			to = StatusExpired
		}
		r, err = transition(ctx, tx, r, to, now)
		return err
	})
	return r, err
}

func (s *postgresStore) Release(ctx context.Context, orderID string, now time.Time) (Reservation, error) {
	var r Reservation
	err := postgres.InTx(ctx, s.db, nil, func(tx *sql.Tx) error {
		var err error
		r, err = getReservation(ctx, tx, orderID, true)
		if errors.Is(err, ErrReservationNotFound) {
			// Record the release so that a reserve still in flight for this order is refused.
			r = Reservation{OrderID: orderID, Status: StatusReleased, ExpiresAt: now, CreatedAt: now, UpdatedAt: now}
			_, err = tx.ExecContext(ctx, `INSERT INTO reservations (order_id, status, expires_at, created_at, updated_at)
				VALUES ($1, 'released', $2, $2, $2)`, orderID, now)
			return err
		}
		if err != nil || (r.Status != StatusReserved && r.Status != StatusCommitted) {
			return err
		}
		r, err = transition(ctx, tx, r, StatusReleased, now)
		return err
	})
	if postgres.IsCode(err, "23505") { // a reserve for this order landed meanwhile
		return s.Release(ctx, orderID, now)
	}
	return r, err
}

func (s *postgresStore) ExpireReservations(ctx context.Context, now time.Time, limit int) (int, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT order_id FROM reservations
		WHERE status = 'reserved' AND expires_at <= $1 ORDER BY expires_at LIMIT $2`, now, limit)
	if err != nil {
		return 0, err
	}
	var due []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return 0, err
		}
		due = append(due, id)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, err
	}
	// One transaction per reservation keeps lock order per SKU, as reserve does.
	n := 0
	for _, id := range due {
		expired := false
		err := postgres.InTx(ctx, s.db, nil, func(tx *sql.Tx) error {
			r, err := getReservation(ctx, tx, id, true)
			if err != nil || r.Status != StatusReserved || now.Before(r.ExpiresAt) {
				return err // committed or released meanwhile
			}
			_, err = transition(ctx, tx, r, StatusExpired, now)
			expired = err == nil
			return err
		})
		if err != nil {
			return n, err
		}
		if expired {
			n++
		}
	}
	return n, nil
}

// transition moves the locked reservation r to status and adjusts stock the way the
// move requires, in SKU order.
func transition(ctx context.Context, tx *sql.Tx, r Reservation, status string, now time.Time) (Reservation, error) {
	var adjust string
	switch {
	case status == StatusCommitted:
		adjust = `stock = stock - $2, reserved = reserved - $2`
	case r.Status == StatusReserved: // released or expired
		adjust = `reserved = reserved - $2`
	default: // a committed reservation released: units back to stock
		adjust = `stock = stock + $2`
	}
	for _, l := range r.Lines {
		if _, err := tx.ExecContext(ctx, `UPDATE products SET `+adjust+`, updated_at = $3 WHERE sku = $1`, l.SKU, l.Quantity, now); err != nil {
			return Reservation{}, err
		}
	}
	if _, err := tx.ExecContext(ctx, `UPDATE reservations SET status = $2, updated_at = $3 WHERE order_id = $1`, r.OrderID, status, now); err != nil {
		return Reservation{}, err
	}
	r.Status, r.UpdatedAt = status, now
	return r, nil
}

package order

import (
	"context"
	"database/sql"
	"embed"
	"encoding/json"
	"errors"
	"io/fs"
	"time"

	"github.com/lib/pq"

	"github.com/kitshop/kitshop/pkg/outbox"
	"github.com/kitshop/kitshop/pkg/postgres"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// Migrations is the order schema plus the outbox table, for postgres.Migrate.
func Migrations() fs.FS {
	return outbox.WithMigrations(postgres.Dir(migrationFiles, "migrations"))
}

// postgresStore keeps orders in PostgreSQL. A saga moves by conditional UPDATEs on the
// order row (lease token and expected step), so two drivers can never both move it.
type postgresStore struct {
	db *sql.DB
}

// NewPostgresStore returns a Store on db, whose schema Migrations created.
func NewPostgresStore(db *sql.DB) Store { return &postgresStore{db: db} }

func (s *postgresStore) CartLines(ctx context.Context, userID string) ([]CartLine, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT sku, quantity, added_at FROM cart_items WHERE user_id = $1 ORDER BY added_at, sku`, userID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	lines := []CartLine{}
	for rows.Next() {
		var l CartLine
		if err := rows.Scan(&l.SKU, &l.Quantity, &l.AddedAt); err != nil {
			return nil, err
		}
		l.AddedAt = l.AddedAt.UTC()
		lines = append(lines, l)
	}
	return lines, rows.Err()
}

func (s *postgresStore) SetCartLine(ctx context.Context, userID, sku string, quantity, maxLines int, now time.Time) error {
	if quantity == 0 {
		_, err := s.db.ExecContext(ctx, `DELETE FROM cart_items WHERE user_id = $1 AND sku = $2`, userID, sku)
		return err
	}
	return postgres.InTx(ctx, s.db, nil, func(tx *sql.Tx) error {
		// The cart row's lock makes the count below hold until commit.
		if _, err := tx.ExecContext(ctx, `INSERT INTO carts (user_id, updated_at) VALUES ($1, $2)
			ON CONFLICT (user_id) DO UPDATE SET updated_at = EXCLUDED.updated_at`, userID, now); err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, `UPDATE cart_items SET quantity = $3 WHERE user_id = $1 AND sku = $2`, userID, sku, quantity)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 1 {
			return nil
		}
		var lines int
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM cart_items WHERE user_id = $1`, userID).Scan(&lines); err != nil {
			return err
		}
		if lines >= maxLines {
			return ErrCartFull
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO cart_items (user_id, sku, quantity, added_at) VALUES ($1, $2, $3, $4)`, userID, sku, quantity, now)
		return err
	})
}

const orderColumns = `id, user_id, email, status, step, total_amount, currency, charge_id, from_cart,
	failure_code, failure_message, created_at, updated_at`

type scanner interface{ Scan(dest ...any) error }

// scanOrder reads orderColumns, then any columns that follow them into extra.
func scanOrder(row scanner, extra ...any) (Order, error) {
	var o Order
	err := row.Scan(append([]any{&o.ID, &o.UserID, &o.Email, &o.Status, &o.Step, &o.Total.Amount, &o.Total.Currency, &o.ChargeID, &o.FromCart,
		&o.FailureCode, &o.FailureMessage, &o.CreatedAt, &o.UpdatedAt}, extra...)...)
	o.CreatedAt, o.UpdatedAt = o.CreatedAt.UTC(), o.UpdatedAt.UTC()
	return o, err
}

type querier interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// withItems fills in the items of orders.
func withItems(ctx context.Context, q querier, orders []Order) error {
	if len(orders) == 0 {
		return nil
	}
	ids := make([]string, len(orders))
	at := make(map[string]int, len(orders))
	for i, o := range orders {
		ids[i], at[o.ID] = o.ID, i
		orders[i].Items = []Item{}
	}
	rows, err := q.QueryContext(ctx, `SELECT order_id, sku, name, quantity, price_amount, currency FROM order_items
		WHERE order_id = ANY($1) ORDER BY order_id, sku`, pq.Array(ids))
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var (
			id string
			it Item
		)
		if err := rows.Scan(&id, &it.SKU, &it.Name, &it.Quantity, &it.UnitPrice.Amount, &it.UnitPrice.Currency); err != nil {
			return err
		}
		orders[at[id]].Items = append(orders[at[id]].Items, it)
	}
	return rows.Err()
}

// queryOrders runs a query returning orderColumns and fills in the items.
func queryOrders(ctx context.Context, q querier, query string, args ...any) ([]Order, error) {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	orders := []Order{}
	for rows.Next() {
		o, err := scanOrder(rows)
		if err != nil {
			rows.Close()
			return nil, err
		}
		orders = append(orders, o)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	return orders, withItems(ctx, q, orders)
}

// queryOrder is queryOrders for one order; no row is ErrOrderNotFound.
func queryOrder(ctx context.Context, q querier, query string, args ...any) (Order, error) {
	orders, err := queryOrders(ctx, q, query, args...)
	if err != nil {
		return Order{}, err
	}
	if len(orders) == 0 {
		return Order{}, ErrOrderNotFound
	}
	return orders[0], nil
}

// CreateOrder stores the key, the order and its items in one statement, a single
// round trip: the key is inserted, or takes the place of an expired one; the order and
// its items follow only when it was. A concurrent request with the same key waits on
// the key's row until this one commits.
func (s *postgresStore) CreateOrder(ctx context.Context, o Order, key IdempotencyKey, lease Lease) (Order, bool, error) {
	n := len(o.Items)
	skus, names, currencies := make([]string, n), make([]string, n), make([]string, n)
	quantities, prices := make([]int64, n), make([]int64, n)
	for i, it := range o.Items {
		skus[i], names[i], quantities[i], prices[i], currencies[i] = it.SKU, it.Name, int64(it.Quantity), it.UnitPrice.Amount, it.UnitPrice.Currency
	}
	var inserted int
	err := s.db.QueryRowContext(ctx, `WITH k AS (
			INSERT INTO idempotency_keys (user_id, key, request_hash, order_id, created_at) VALUES ($1, $2, $3, $4, $5)
			ON CONFLICT (user_id, key) DO UPDATE
				SET request_hash = EXCLUDED.request_hash, order_id = EXCLUDED.order_id, created_at = EXCLUDED.created_at
				WHERE idempotency_keys.created_at < $6
			RETURNING order_id
		), o AS (
			INSERT INTO orders (`+orderColumns+`, lease_token, lease_until)
			SELECT $4, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $5, $17, $18, $19 FROM k
			RETURNING id
		), i AS (
			INSERT INTO order_items (order_id, sku, name, quantity, price_amount, currency)
			SELECT o.id, it.sku, it.name, it.quantity, it.price_amount, it.currency
			FROM o, unnest($20::text[], $21::text[], $22::int[], $23::bigint[], $24::text[]) AS it(sku, name, quantity, price_amount, currency)
		)
		SELECT count(*) FROM o`,
		key.UserID, key.Key, key.Hash, o.ID, o.CreatedAt, key.NotBefore,
		o.UserID, o.Email, o.Status, o.Step, o.Total.Amount, o.Total.Currency, o.ChargeID, o.FromCart,
		o.FailureCode, o.FailureMessage, o.UpdatedAt, lease.Token, lease.Until,
		pq.Array(skus), pq.Array(names), pq.Array(quantities), pq.Array(prices), pq.Array(currencies),
	).Scan(&inserted)
	if err != nil {
		return Order{}, false, err
	}
	if inserted == 1 {
		return o, true, nil
	}
	// The key was there and is not expired: the order it names.
	var hash, orderID string
	if err := s.db.QueryRowContext(ctx, `SELECT request_hash, order_id FROM idempotency_keys WHERE user_id = $1 AND key = $2`,
		key.UserID, key.Key).Scan(&hash, &orderID); err != nil {
		return Order{}, false, err
	}
	if hash != key.Hash {
		return Order{}, false, ErrIdempotencyMismatch
	}
	stored, err := queryOrder(ctx, s.db, `SELECT `+orderColumns+` FROM orders WHERE id = $1`, orderID)
	return stored, false, err
}

func (s *postgresStore) OrderByKey(ctx context.Context, key IdempotencyKey) (Order, error) {
	var hash, orderID string
	err := s.db.QueryRowContext(ctx, `SELECT request_hash, order_id FROM idempotency_keys
		WHERE user_id = $1 AND key = $2 AND created_at >= $3`, key.UserID, key.Key, key.NotBefore).Scan(&hash, &orderID)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return Order{}, ErrOrderNotFound
	case err != nil:
		return Order{}, err
	case hash != key.Hash:
		return Order{}, ErrIdempotencyMismatch
	}
	return s.Order(ctx, orderID)
}

func (s *postgresStore) Order(ctx context.Context, id string) (Order, error) {
	return queryOrder(ctx, s.db, `SELECT `+orderColumns+` FROM orders WHERE id = $1`, id)
}

func (s *postgresStore) ListOrders(ctx context.Context, userID string, limit int) ([]Order, error) {
	return queryOrders(ctx, s.db, `SELECT `+orderColumns+` FROM orders WHERE user_id = $1
		ORDER BY created_at DESC, id DESC LIMIT $2`, userID, limit)
}

func (s *postgresStore) Claim(ctx context.Context, id string, lease Lease, now time.Time) (Order, error) {
	o, err := queryOrder(ctx, s.db, `UPDATE orders SET lease_token = $2, lease_until = $3
		WHERE id = $1 AND lease_until <= $4 RETURNING `+orderColumns, id, lease.Token, lease.Until, now)
	if errors.Is(err, ErrOrderNotFound) {
		if _, err := s.Order(ctx, id); err != nil {
			return Order{}, err
		}
		return Order{}, ErrLeaseHeld
	}
	return o, err
}

func (s *postgresStore) ClaimStale(ctx context.Context, lease Lease, now time.Time, limit int) ([]Order, error) {
	// SKIP LOCKED: instances scanning at once each take different orders.
	return queryOrders(ctx, s.db, `UPDATE orders SET lease_token = $1, lease_until = $2
		WHERE lease_until <= $3 AND id IN (
			SELECT id FROM orders
			WHERE (status = 'pending' OR step IN ('cancelling', 'refunded')) AND lease_until <= $3
			ORDER BY updated_at LIMIT $4 FOR UPDATE SKIP LOCKED)
		RETURNING `+orderColumns, lease.Token, lease.Until, now, limit)
}

func (s *postgresStore) Touch(ctx context.Context, id string, lease Lease) error {
	res, err := s.db.ExecContext(ctx, `UPDATE orders SET lease_until = $3 WHERE id = $1 AND lease_token = $2`, id, lease.Token, lease.Until)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return ErrStale
	}
	return nil
}

func (s *postgresStore) Advance(ctx context.Context, id, token string, c Change, now, leaseUntil time.Time) (Order, error) {
	args := []any{id, token, c.From, c.Status, c.Step, c.ChargeID, c.FailureCode, c.FailureMessage, now, leaseUntil}
	if c.Event == nil && !c.ClearCart {
		// One statement, one round trip: no transaction to open and commit.
		o, err := advanceOrder(ctx, s.db, args)
		if errors.Is(err, ErrOrderNotFound) {
			return Order{}, ErrStale
		}
		return o, err
	}
	var o Order
	err := postgres.InTx(ctx, s.db, nil, func(tx *sql.Tx) error {
		var err error
		o, err = advanceOrder(ctx, tx, args)
		if errors.Is(err, ErrOrderNotFound) {
			return ErrStale
		}
		if err != nil {
			return err
		}
		// After the UPDATE that locked the order row, as Enqueue asks.
		if c.Event != nil {
			if err := outbox.Enqueue(ctx, tx, *c.Event); err != nil {
				return err
			}
		}
		if c.ClearCart {
			skus := make([]string, len(o.Items))
			for i, it := range o.Items {
				skus[i] = it.SKU
			}
			if _, err := tx.ExecContext(ctx, `DELETE FROM cart_items WHERE user_id = $1 AND sku = ANY($2)`, o.UserID, pq.Array(skus)); err != nil {
				return err
			}
		}
		return nil
	})
	return o, err
}

// advanceOrder moves an order to its next step and returns it with its items, in one
// statement: the UPDATE's row joined with the order's items.
func advanceOrder(ctx context.Context, q querier, args []any) (Order, error) {
	rows, err := q.QueryContext(ctx, `WITH o AS (
			UPDATE orders SET status = $4, step = $5,
				charge_id = CASE WHEN $6 = '' THEN charge_id ELSE $6 END,
				failure_code = $7, failure_message = $8, updated_at = $9, lease_until = $10
			WHERE id = $1 AND lease_token = $2 AND step = $3 RETURNING `+orderColumns+`)
		SELECT o.*, i.sku, i.name, i.quantity, i.price_amount, i.currency
		FROM o LEFT JOIN order_items i ON i.order_id = o.id ORDER BY i.sku`, args...)
	if err != nil {
		return Order{}, err
	}
	defer rows.Close()
	var (
		o     Order
		found bool
	)
	for rows.Next() {
		var (
			sku, name, currency       sql.NullString
			quantity, unitPriceAmount sql.NullInt64
		)
		next, err := scanOrder(rows, &sku, &name, &quantity, &unitPriceAmount, &currency)
		if err != nil {
			return Order{}, err
		}
		if !found {
			o, found = next, true
			o.Items = []Item{}
		}
		if sku.Valid {
			o.Items = append(o.Items, Item{SKU: sku.String, Name: name.String, Quantity: int(quantity.Int64),
				UnitPrice: Money{Amount: unitPriceAmount.Int64, Currency: currency.String}})
		}
	}
	if err := rows.Err(); err != nil {
		return Order{}, err
	}
	if !found {
		return Order{}, ErrOrderNotFound
	}
	return o, nil
}

func (s *postgresStore) CountPending(ctx context.Context) (int, error) {
	var n int
	err := s.db.QueryRowContext(ctx, `SELECT count(*) FROM orders WHERE status = 'pending'`).Scan(&n)
	return n, err
}

func (s *postgresStore) PurgeIdempotencyKeys(ctx context.Context, before time.Time) (int, error) {
	res, err := s.db.ExecContext(ctx, `DELETE FROM idempotency_keys WHERE created_at < $1`, before)
	if err != nil {
		return 0, err
	}
	n, _ := res.RowsAffected()
	return int(n), nil
}

func (s *postgresStore) Events(ctx context.Context, orderID string) ([]outbox.Event, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT body FROM outbox WHERE aggregate_id = $1 ORDER BY seq`, orderID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	events := []outbox.Event{}
	for rows.Next() {
		var body []byte
		if err := rows.Scan(&body); err != nil {
			return nil, err
		}
		var e outbox.Event
		if err := json.Unmarshal(body, &e); err != nil {
			return nil, err
		}
		events = append(events, e)
	}
	return events, rows.Err()
}

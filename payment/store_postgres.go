package payment

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"io/fs"
	"time"

	"github.com/lib/pq"

	"github.com/kitshop/kitshop/pkg/postgres"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// Migrations is the payment schema, for postgres.Migrate.
func Migrations() fs.FS {
	return postgres.Dir(migrationFiles, "migrations")
}

// postgresStore keeps charges and the ledger in PostgreSQL. A charge and its ledger
// entry are written by one statement, a refund and its entry in one transaction; the
// unique order_id decides which of racing charges of one order wins, and a
// conditional UPDATE which of racing refunds does.
type postgresStore struct {
	db *sql.DB
}

// NewPostgresStore returns a Store on db, whose schema Migrations created.
func NewPostgresStore(db *sql.DB) Store { return &postgresStore{db: db} }

const chargeColumns = `id, order_id, user_id, status, decline_code, amount, currency, card_brand, card_last4, created_at, refunded_at`

type scanner interface{ Scan(dest ...any) error }

func scanCharge(row scanner) (Charge, error) {
	var (
		c        Charge
		refunded sql.NullTime
	)
	err := row.Scan(&c.ID, &c.OrderID, &c.UserID, &c.Status, &c.DeclineCode, &c.Amount.Amount, &c.Amount.Currency,
		&c.Card.Brand, &c.Card.Last4, &c.CreatedAt, &refunded)
	if errors.Is(err, sql.ErrNoRows) {
		return Charge{}, ErrChargeNotFound
	}
	c.CreatedAt = c.CreatedAt.UTC()
	if refunded.Valid {
		c.RefundedAt = refunded.Time.UTC()
	}
	return c, err
}

// orderIDConstraint is the unique constraint on charges.order_id.
const orderIDConstraint = "charges_order_id_key"

func (s *postgresStore) CreateCharge(ctx context.Context, c Charge) (Charge, bool, error) {
	// One statement, so one round trip and atomic by itself: the charge, and its
	// ledger entry when it succeeded.
	_, err := s.db.ExecContext(ctx, `WITH c AS (
			INSERT INTO charges (`+chargeColumns+`)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, NULL)
			RETURNING id, order_id, status, amount, currency, created_at)
		INSERT INTO ledger_entries (charge_id, order_id, kind, amount, currency, created_at)
		SELECT id, order_id, 'charge', amount, currency, created_at FROM c WHERE status = 'succeeded'`,
		c.ID, c.OrderID, c.UserID, c.Status, c.DeclineCode, c.Amount.Amount, c.Amount.Currency,
		c.Card.Brand, c.Card.Last4, c.CreatedAt)
	var pqErr *pq.Error
	if errors.As(err, &pqErr) && pqErr.Code == "23505" && pqErr.Constraint == orderIDConstraint {
		// The order was charged by a concurrent call that committed first.
		existing, err := s.ChargeByOrder(ctx, c.OrderID)
		return existing, false, err
	}
	if err != nil {
		return Charge{}, false, err
	}
	return c, true, nil
}

func (s *postgresStore) Charge(ctx context.Context, id string) (Charge, error) {
	return scanCharge(s.db.QueryRowContext(ctx, `SELECT `+chargeColumns+` FROM charges WHERE id = $1`, id))
}

func (s *postgresStore) ChargeByOrder(ctx context.Context, orderID string) (Charge, error) {
	return scanCharge(s.db.QueryRowContext(ctx, `SELECT `+chargeColumns+` FROM charges WHERE order_id = $1`, orderID))
}

func (s *postgresStore) Refund(ctx context.Context, id string, now time.Time) (Charge, bool, error) {
	var (
		c        Charge
		refunded bool
	)
	err := postgres.InTx(ctx, s.db, nil, func(tx *sql.Tx) error {
		var err error
		// Of racing refunds only one finds the charge still succeeded.
		c, err = scanCharge(tx.QueryRowContext(ctx, `UPDATE charges SET status = 'refunded', refunded_at = $2
			WHERE id = $1 AND status = 'succeeded' RETURNING `+chargeColumns, id, now))
		if errors.Is(err, ErrChargeNotFound) {
			refunded = false
			c, err = scanCharge(tx.QueryRowContext(ctx, `SELECT `+chargeColumns+` FROM charges WHERE id = $1`, id))
			return err
		}
		if err != nil {
			return err
		}
		refunded = true
		_, err = tx.ExecContext(ctx, `INSERT INTO ledger_entries (charge_id, order_id, kind, amount, currency, created_at)
			VALUES ($1, $2, 'refund', $3, $4, $5)`, c.ID, c.OrderID, c.Amount.Amount, c.Amount.Currency, now)
		return err
	})
	if err != nil {
		return Charge{}, false, err
	}
	return c, refunded, nil
}

func (s *postgresStore) Balance(ctx context.Context, orderID string) (Balance, error) {
	var b Balance
	err := s.db.QueryRowContext(ctx, `SELECT
			coalesce(max(currency), ''),
			coalesce(sum(amount) FILTER (WHERE kind = 'charge'), 0),
			coalesce(sum(amount) FILTER (WHERE kind = 'refund'), 0)
		FROM ledger_entries WHERE order_id = $1`, orderID).Scan(&b.Currency, &b.Charged, &b.Refunded)
	return b, err
}

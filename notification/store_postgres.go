package notification

import (
	"context"
	"database/sql"
	"embed"
	"io/fs"

	"github.com/kitshop/kitshop/pkg/postgres"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// Migrations is the notification schema, for postgres.Migrate.
func Migrations() fs.FS {
	return postgres.Dir(migrationFiles, "migrations")
}

type postgresStore struct{ db *sql.DB }

// NewPostgresStore returns a Store in the database db, migrated with Migrations.
func NewPostgresStore(db *sql.DB) Store { return &postgresStore{db: db} }

// Insert claims the event ID with the row itself: a concurrent Insert of the same
// event blocks on the uncommitted row, then finds it (or inserts if send failed and
// this transaction rolled back).
func (s *postgresStore) Insert(ctx context.Context, n Notification, send func(context.Context) error) error {
	return postgres.InTx(ctx, s.db, nil, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `INSERT INTO notifications
			(id, event_id, user_id, order_id, type, recipient, subject, body, sent_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
			ON CONFLICT (event_id) DO NOTHING`,
			n.ID, n.EventID, n.UserID, n.OrderID, n.Type, n.To, n.Subject, n.Body, n.SentAt)
		if err != nil {
			return err
		}
		if inserted, err := res.RowsAffected(); err != nil {
			return err
		} else if inserted == 0 {
			return ErrDuplicateEvent
		}
		return send(ctx)
	})
}

func (s *postgresStore) ListByUser(ctx context.Context, userID string, limit int) ([]Notification, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT id, event_id, user_id, order_id, type, recipient, subject, body, sent_at
		FROM notifications WHERE user_id = $1 ORDER BY sent_at DESC, id DESC LIMIT $2`, userID, limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	list := []Notification{}
	for rows.Next() {
		var n Notification
		if err := rows.Scan(&n.ID, &n.EventID, &n.UserID, &n.OrderID, &n.Type, &n.To, &n.Subject, &n.Body, &n.SentAt); err != nil {
			return nil, err
		}
		n.SentAt = n.SentAt.UTC()
		list = append(list, n)
	}
	return list, rows.Err()
}

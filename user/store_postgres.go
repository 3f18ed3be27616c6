package user

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"io/fs"

	"github.com/kitshop/kitshop/pkg/postgres"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// Migrations is the user schema, for postgres.Migrate.
func Migrations() fs.FS {
	return postgres.Dir(migrationFiles, "migrations")
}

// postgresStore keeps accounts in PostgreSQL; the unique index on email decides
// between concurrent registrations.
type postgresStore struct {
	db *sql.DB
}

// NewPostgresStore returns a Store on db, whose schema Migrations created.
func NewPostgresStore(db *sql.DB) Store { return &postgresStore{db: db} }

func (s *postgresStore) Create(ctx context.Context, a Account) error {
	_, err := s.db.ExecContext(ctx,
		`INSERT INTO users (id, email, name, role, password_hash, created_at) VALUES ($1, $2, $3, $4, $5, $6)`,
		a.ID, a.Email, a.Name, a.Role, a.PasswordHash, a.CreatedAt)
	if postgres.IsCode(err, "23505") {
		return ErrEmailTaken
	}
	return err
}

const accountColumns = `id, email, name, role, password_hash, created_at`

func (s *postgresStore) ByEmail(ctx context.Context, email string) (Account, error) {
	return scanAccount(s.db.QueryRowContext(ctx, `SELECT `+accountColumns+` FROM users WHERE email = $1`, email))
}

func (s *postgresStore) ByID(ctx context.Context, id string) (Account, error) {
	return scanAccount(s.db.QueryRowContext(ctx, `SELECT `+accountColumns+` FROM users WHERE id = $1`, id))
}

func scanAccount(row *sql.Row) (Account, error) {
	var a Account
	err := row.Scan(&a.ID, &a.Email, &a.Name, &a.Role, &a.PasswordHash, &a.CreatedAt)
	if errors.Is(err, sql.ErrNoRows) {
		return Account{}, ErrUserNotFound
	}
	a.CreatedAt = a.CreatedAt.UTC()
	return a, err
}

func (s *postgresStore) SetPasswordHash(ctx context.Context, id, hash string) error {
	res, err := s.db.ExecContext(ctx, `UPDATE users SET password_hash = $2 WHERE id = $1`, id, hash)
	if err != nil {
		return err
	}
	if n, err := res.RowsAffected(); err != nil {
		return err
	} else if n == 0 {
		return ErrUserNotFound
	}
	return nil
}

// Package postgres opens a service's PostgreSQL database: it creates the database when
// missing, sets pool limits and applies the service's embedded migrations in order.
package postgres

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/url"
	"sort"
	"strings"
	"time"

	"github.com/lib/pq"
)

// Pool limits for a service's connection pool.
type Pool struct {
	MaxOpen int
	MaxIdle int
	// MinIdle connections are opened before Open returns and kept open while idle
	// (KeepWarm uses each again before MaxIdleTime would close it). A new PostgreSQL
	// session is a fork of the server and about 5 ms of its CPU, and the server makes
	// them one after another: a crowd on a pool that opens its sessions as it goes
	// waits hundreds of milliseconds for them.
	MinIdle     int
	MaxIdleTime time.Duration
	MaxLifetime time.Duration
}

// DefaultPool suits one service instance on a small machine: up to 20 connections,
// all kept while in use (a pool that keeps fewer idle than it opens under load opens
// and closes sessions all the time: 136 new sessions in 6 s of checkouts), and closed
// after a minute idle but for a floor of MinIdle, so that ten quiet instances do not
// sit on the server's slots and are not cold either.
var DefaultPool = Pool{MaxOpen: 20, MaxIdle: 20, MinIdle: 4, MaxIdleTime: time.Minute, MaxLifetime: 30 * time.Minute}

// Open creates the database named in dsn if it does not exist, opens it with the pool
// limits, pings it and applies the migrations in migrations (files *.sql, in name order).
func Open(ctx context.Context, dsn string, pool Pool, migrations fs.FS) (*sql.DB, error) {
	if err := EnsureDatabase(ctx, dsn); err != nil {
		return nil, err
	}
	pqConnector, err := pq.NewConnector(withBinaryParameters(dsn))
	if err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	db := sql.OpenDB(connector{pqConnector})
	db.SetMaxOpenConns(pool.MaxOpen)
	db.SetMaxIdleConns(pool.MaxIdle)
	db.SetConnMaxIdleTime(pool.MaxIdleTime)
	db.SetConnMaxLifetime(pool.MaxLifetime)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("postgres: ping: %w", err)
	}
	if migrations != nil {
		if err := Migrate(ctx, db, migrations); err != nil {
			db.Close()
			return nil, err
		}
	}
	if err := warm(ctx, db, pool.MinIdle); err != nil {
		db.Close()
		return nil, fmt.Errorf("postgres: opening the pool's first connections: %w", err)
	}
	return db, nil
}

// KeepWarm keeps pool.MinIdle connections of db open until ctx ends, using them
// again before MaxIdleTime would close them.
func KeepWarm(ctx context.Context, db *sql.DB, pool Pool) {
	if pool.MinIdle <= 0 || pool.MaxIdleTime <= 0 {
		return
	}
	t := time.NewTicker(pool.MaxIdleTime / 2)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			// A failure (the server restarting) only means fewer warm connections
			// until the next round.
			_ = warm(ctx, db, pool.MinIdle)
		}
	}
}

// warm holds n connections of db at once, opening those the pool lacks and checking
// the others, then gives them back to the pool.
func warm(ctx context.Context, db *sql.DB, n int) error {
	conns := make([]*sql.Conn, 0, n)
	defer func() {
		for _, c := range conns {
			_ = c.Close()
		}
	}()
	for range n {
		c, err := db.Conn(ctx)
		if err != nil {
			return err
		}
		conns = append(conns, c)
		if err := c.PingContext(ctx); err != nil {
			return err
		}
	}
	return nil
}

// withBinaryParameters turns on lib/pq's binary_parameters unless dsn sets it: a
// statement with arguments is then one round trip (parse, bind, execute) instead of
// two (prepare, then execute), which halved the order service's round trips to
// PostgreSQL per checkout. Arguments of type []byte then travel in binary format, right
// for bytea; text and jsonb values must be passed as strings.
func withBinaryParameters(dsn string) string {
	u, err := url.Parse(dsn)
	if err != nil {
		return dsn // EnsureDatabase has refused it already
	}
	q := u.Query()
	if q.Has("binary_parameters") {
		return dsn
	}
	q.Set("binary_parameters", "yes")
	u.RawQuery = q.Encode()
	return u.String()
}

// EnsureDatabase creates the database named in dsn (a postgres:// URL), connecting to
// the server's "postgres" database to do so. Two instances racing to create it is fine.
func EnsureDatabase(ctx context.Context, dsn string) error {
	u, err := url.Parse(dsn)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		return fmt.Errorf("postgres: database URL must be postgres://…")
	}
	name := strings.TrimPrefix(u.Path, "/")
	if name == "" || name == "postgres" {
		return nil
	}
	admin := *u
	admin.Path = "/postgres"
	db, err := sql.Open("postgres", admin.String())
	if err != nil {
		return err
	}
	defer db.Close()
	var exists bool
	if err := db.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)`, name).Scan(&exists); err != nil {
		return fmt.Errorf("postgres: %s: %w", u.Redacted(), err)
	}
	if exists {
		return nil
	}
	_, err = db.ExecContext(ctx, `CREATE DATABASE `+pq.QuoteIdentifier(name))
	if IsCode(err, "42P04") || IsCode(err, "23505") { // created meanwhile by another instance
		return nil
	}
	if err != nil {
		return fmt.Errorf("postgres: create database %q: %w", name, err)
	}
	return nil
}

// migrationLock is the advisory lock key that serialises migrations of one database.
const migrationLock = 0x6b6974736870 // "kitshp"

// Migrate applies the *.sql files of migrations that are not yet recorded in
// schema_migrations, each in its own transaction, in name order. An advisory lock makes
// instances starting at once take turns.
func Migrate(ctx context.Context, db *sql.DB, migrations fs.FS) error {
	names, err := fs.Glob(migrations, "*.sql")
	if err != nil {
		return err
	}
	sort.Strings(names)
	conn, err := db.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, `SELECT pg_advisory_lock($1)`, migrationLock); err != nil {
		return fmt.Errorf("postgres: migration lock: %w", err)
	}
	defer conn.ExecContext(context.Background(), `SELECT pg_advisory_unlock($1)`, migrationLock)

	if _, err := conn.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		name text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())`); err != nil {
		return fmt.Errorf("postgres: schema_migrations: %w", err)
	}
	for _, name := range names {
		var done bool
		if err := conn.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM schema_migrations WHERE name = $1)`, name).Scan(&done); err != nil {
			return err
		}
		if done {
			continue
		}
		body, err := fs.ReadFile(migrations, name)
		if err != nil {
			return err
		}
		if _, err := runTx(ctx, conn, nil, func(tx *sql.Tx) error {
			if _, err := tx.ExecContext(ctx, string(body)); err != nil {
				return err
			}
			_, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (name) VALUES ($1)`, name)
			return err
		}); err != nil {
			return fmt.Errorf("postgres: migration %s: %w", name, err)
		}
	}
	return nil
}

// IsCode reports whether err is a PostgreSQL error with the given SQLSTATE code
// (23505 unique_violation, 40001 serialization_failure, 40P01 deadlock_detected…).
func IsCode(err error, code string) bool {
	var pqErr *pq.Error
	return errors.As(err, &pqErr) && string(pqErr.Code) == code
}

// Retryable reports whether a transaction failed for a reason that a retry can cure.
func Retryable(err error) bool {
	return IsCode(err, "40001") || IsCode(err, "40P01")
}

// ConnectionLost reports whether err means the connection to the server broke (the
// server restarted, or terminated the session): work that did not commit can run again
// on a new connection.
func ConnectionLost(err error) bool {
	var pqErr *pq.Error
	if errors.As(err, &pqErr) {
		return pqErr.Code.Class() == "08" || pqErr.Code == "57P01" || pqErr.Code == "57P02" || pqErr.Code == "57P03"
	}
	var netErr net.Error
	return errors.Is(err, driver.ErrBadConn) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.As(err, &netErr)
}

// InTx runs f in a transaction with the given options, committing if f succeeds. It
// runs the whole transaction again (up to 5 times) after a serialization failure or a
// deadlock, and after the connection broke before the commit; a failed commit is
// returned as it is, since it may have committed.
func InTx(ctx context.Context, db *sql.DB, opts *sql.TxOptions, f func(*sql.Tx) error) error {
	var err error
	for attempt := 0; attempt < 5; attempt++ {
		var committing bool
		committing, err = runTx(ctx, db, opts, f)
		if !Retryable(err) && (committing || !ConnectionLost(err)) {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Duration(attempt+1) * 5 * time.Millisecond):
		}
	}
	return err
}

type txBeginner interface {
	BeginTx(ctx context.Context, opts *sql.TxOptions) (*sql.Tx, error)
}

// runTx runs f in one transaction; committing says whether the error, if any, came
// from the commit.
func runTx(ctx context.Context, db txBeginner, opts *sql.TxOptions, f func(*sql.Tx) error) (committing bool, err error) {
	tx, err := db.BeginTx(ctx, opts)
	if err != nil {
		return false, err
	}
	if err := f(tx); err != nil {
		_ = tx.Rollback()
		return false, err
	}
	return true, tx.Commit()
}

// Dir is the folder dir of an embedded file system, for Migrate: services embed
// "migrations/*.sql" and hand over the folder. The folder is fixed at build time, so a
// missing one is a programming error.
func Dir(embedded fs.FS, dir string) fs.FS {
	sub, err := fs.Sub(embedded, dir)
	if err != nil {
		panic(fmt.Sprintf("postgres: embedded folder %q: %v", dir, err))
	}
	return sub
}

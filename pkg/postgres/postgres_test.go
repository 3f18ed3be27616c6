package postgres_test

import (
	"context"
	"database/sql"
	"net/url"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/kitshop/kitshop/pkg/postgres"
	"github.com/kitshop/kitshop/pkg/testenv"
)

var migrations = fstest.MapFS{
	"0001_things.sql": {Data: []byte(`CREATE TABLE things (id int PRIMARY KEY);`)},
	"0002_more.sql":   {Data: []byte(`ALTER TABLE things ADD COLUMN name text NOT NULL DEFAULT '';`)},
	"README.md":       {Data: []byte(`not a migration`)},
	"0003_insert.sql": {Data: []byte(`INSERT INTO things (id, name) VALUES (1, 'one');`)},
}

// TestOpenCreatesAndMigrates: several instances starting at once on a database that
// does not exist yet: it is created once, and each migration applied once.
func TestOpenCreatesAndMigrates(t *testing.T) {
	dsn := testenv.PostgresURL(t)
	u, _ := url.Parse(dsn)
	u.Path = u.Path + "_fresh"
	fresh := u.String()
	t.Cleanup(func() { dropDatabase(t, dsn, u.Path[1:]) })

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	dbs := make([]*sql.DB, 4)
	errs := make([]error, len(dbs))
	for i := range dbs {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			dbs[i], errs[i] = postgres.Open(ctx, fresh, postgres.DefaultPool, migrations)
		}(i)
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("instance %d: %v", i, err)
		}
		defer dbs[i].Close()
	}
	var n int
	if err := dbs[0].QueryRow(`SELECT count(*) FROM things`).Scan(&n); err != nil || n != 1 {
		t.Fatalf("things rows = %d, %v; want 1 (the insert migration ran once)", n, err)
	}
	var applied []string
	rows, err := dbs[0].Query(`SELECT name FROM schema_migrations ORDER BY name`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var s string
		_ = rows.Scan(&s)
		applied = append(applied, s)
	}
	rows.Close()
	if len(applied) != 3 || applied[0] != "0001_things.sql" || applied[2] != "0003_insert.sql" {
		t.Fatalf("applied %v", applied)
	}
	// A restart applies nothing new.
	if err := postgres.Migrate(ctx, dbs[1], migrations); err != nil {
		t.Fatal(err)
	}
}

func TestMigrationFailureRollsBack(t *testing.T) {
	dsn := testenv.PostgresURL(t)
	bad := fstest.MapFS{
		"0001_ok.sql":  {Data: []byte(`CREATE TABLE a (id int);`)},
		"0002_bad.sql": {Data: []byte(`CREATE TABLE b (id int); SELECT nonsense FROM nowhere;`)},
	}
	ctx := context.Background()
	_, err := postgres.Open(ctx, dsn, postgres.DefaultPool, bad)
	if err == nil {
		t.Fatal("a broken migration was accepted")
	}
	db, err := sql.Open("postgres", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var b sql.NullString
	_ = db.QueryRow(`SELECT to_regclass('b')::text`).Scan(&b)
	if b.Valid {
		t.Fatal("table b exists: the failed migration was not rolled back")
	}
}

func TestEnsureDatabaseRejectsBadURLs(t *testing.T) {
	for _, dsn := range []string{"", "mysql://x/y", "::"} {
		if err := postgres.EnsureDatabase(context.Background(), dsn); err == nil {
			t.Errorf("%q accepted", dsn)
		}
	}
}

func TestInTxRetriesSerializationFailures(t *testing.T) {
	db := testenv.Postgres(t, migrations)
	ctx := context.Background()
	// Two serializable transactions that read then write the same row: one of them
	// must fail with 40001 and InTx retries it, so both increments land.
	var wg sync.WaitGroup
	for i := 0; i < 2; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := postgres.InTx(ctx, db, &sql.TxOptions{Isolation: sql.LevelSerializable}, func(tx *sql.Tx) error {
				var name string
				if err := tx.QueryRowContext(ctx, `SELECT name FROM things WHERE id = 1`).Scan(&name); err != nil {
					return err
				}
				time.Sleep(50 * time.Millisecond)
				_, err := tx.ExecContext(ctx, `UPDATE things SET name = $1 WHERE id = 1`, name+"+")
				return err
			})
			if err != nil {
				t.Errorf("InTx: %v", err)
			}
		}()
	}
	wg.Wait()
	var name string
	if err := db.QueryRow(`SELECT name FROM things WHERE id = 1`).Scan(&name); err != nil || name != "one++" {
		t.Fatalf("name = %q, %v; want one++", name, err)
	}
}

func dropDatabase(t *testing.T, dsn, name string) {
	db, err := sql.Open("postgres", dsn)
	if err != nil {
		return
	}
	defer db.Close()
	_, _ = db.Exec(`DROP DATABASE IF EXISTS "` + name + `" WITH (FORCE)`)
}

// TestInTxSurvivesATerminatedConnection: the server ends the session under a
// transaction (as a restart or an operator does); the transaction runs again on a new
// connection.
func TestInTxSurvivesATerminatedConnection(t *testing.T) {
	db := testenv.Postgres(t, migrations)
	ctx := context.Background()
	attempts := 0
	err := postgres.InTx(ctx, db, nil, func(tx *sql.Tx) error {
		attempts++
		if attempts == 1 {
			var pid int
			if err := tx.QueryRowContext(ctx, `SELECT pg_backend_pid()`).Scan(&pid); err != nil {
				return err
			}
			if _, err := db.ExecContext(ctx, `SELECT pg_terminate_backend($1)`, pid); err != nil {
				return err
			}
		}
		_, err := tx.ExecContext(ctx, `UPDATE things SET name = 'after' WHERE id = 1`)
		return err
	})
	if err != nil || attempts != 2 {
		t.Fatalf("InTx = %v after %d attempts; want success on the second", err, attempts)
	}
	var name string
	if err := db.QueryRow(`SELECT name FROM things WHERE id = 1`).Scan(&name); err != nil || name != "after" {
		t.Fatalf("name = %q, %v", name, err)
	}
}

// TestPoolKeepsWarm: Open opens MinIdle connections; KeepWarm keeps them past the
// idle timeout that closes them in a pool left alone.
func TestPoolKeepsWarm(t *testing.T) {
	dsn := testenv.PostgresURL(t)
	pool := postgres.Pool{MaxOpen: 10, MaxIdle: 10, MinIdle: 3, MaxIdleTime: 200 * time.Millisecond}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	open := func() *sql.DB {
		db, err := postgres.Open(ctx, dsn, pool, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		if n := db.Stats().OpenConnections; n != 3 {
			t.Fatalf("%d connections open after Open, want MinIdle (3)", n)
		}
		return db
	}
	kept, alone := open(), open()
	go postgres.KeepWarm(ctx, kept, pool)
	// database/sql closes idle connections at most once a second.
	time.Sleep(2500 * time.Millisecond)
	if n := kept.Stats().OpenConnections; n != 3 {
		t.Errorf("kept warm: %d connections open, want 3", n)
	}
	if n := alone.Stats().OpenConnections; n != 0 {
		t.Errorf("left alone: %d connections open, want 0 (the idle timeout closes them)", n)
	}
}

package postgres_test

import (
	"context"
	"database/sql"
	"sort"
	"strings"
	"testing"

	"github.com/openzipkin/zipkin-go"
	"github.com/openzipkin/zipkin-go/reporter/recorder"

	"github.com/kitshop/kitshop/pkg/observe"
	"github.com/kitshop/kitshop/pkg/postgres"
	"github.com/kitshop/kitshop/pkg/testenv"
)

func TestStatementsAndTransactionsAreTraced(t *testing.T) {
	db := testenv.Postgres(t, migrations)
	rec := recorder.NewReporter()
	tracer, err := zipkin.NewTracer(rec)
	if err != nil {
		t.Fatal(err)
	}
	root := tracer.StartSpan("request")
	ctx := observe.WithTracer(zipkin.NewContext(context.Background(), root), tracer)

	var name string
	if err := db.QueryRowContext(ctx, `SELECT name FROM things WHERE id = $1`, 1).Scan(&name); err != nil {
		t.Fatal(err)
	}
	if err := postgres.InTx(ctx, db, nil, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `UPDATE things SET name = $1 WHERE id = 1`, "secret-argument")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	// Untraced work (no span in the context) records nothing.
	if _, err := db.ExecContext(context.Background(), `UPDATE things SET name = 'x'`); err != nil {
		t.Fatal(err)
	}
	root.Finish()

	var names []string
	for _, s := range rec.Flush() {
		if s.Name == "request" {
			continue
		}
		names = append(names, s.Name)
		if s.ParentID == nil || *s.ParentID != root.Context().ID {
			t.Errorf("span %q is not a child of the request", s.Name)
		}
		if strings.Contains(s.Tags["sql.query"], "secret-argument") {
			t.Errorf("span %q carries an argument value", s.Name)
		}
	}
	sort.Strings(names)
	if strings.Join(names, ",") != "sql select,sql tx,sql update" {
		t.Fatalf("spans %v, want one select, one update and one transaction", names)
	}
}

// TestStatementsArePreparedOnce: a statement with arguments is prepared once on a
// connection and run by name after that; one without (several statements, as a
// migration has) is sent as it is.
func TestStatementsArePreparedOnce(t *testing.T) {
	db := testenv.Postgres(t, migrations)
	ctx := context.Background()
	c, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	const query = `SELECT name FROM things WHERE id = $1`
	for range 3 {
		var name string
		if err := c.QueryRowContext(ctx, query, 1).Scan(&name); err != nil || name != "one" {
			t.Fatalf("%q %v", name, err)
		}
	}
	if _, err := c.ExecContext(ctx, `UPDATE things SET name = name; UPDATE things SET name = name`); err != nil {
		t.Fatalf("several statements without arguments: %v", err)
	}
	var prepared int
	if err := c.QueryRowContext(ctx, `SELECT count(*) FROM pg_prepared_statements WHERE statement = $1`, query).Scan(&prepared); err != nil {
		t.Fatal(err)
	}
	if prepared != 1 {
		t.Fatalf("the statement is prepared %d times on the connection, want once", prepared)
	}
}

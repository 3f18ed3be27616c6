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

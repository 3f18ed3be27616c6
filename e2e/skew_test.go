package e2e

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/kitshop/kitshop/internal/stack"
	"github.com/kitshop/kitshop/pkg/testenv"
)

// releaseBeforeCategories is the last commit whose inventory knows no product
// categories (schema 0001, no category field): the release a roll to migration 0002
// starts from.
const releaseBeforeCategories = "511179bc45821a593ab4c39e840e7c3cf82e6034"

// TestVersionSkew rolls a schema change out under load, as docs/design-notes.md
// ("Version skew") says it must go: a stack of its own runs the inventory of the release
// before categories; under the load generator's mix, `restart inventory -build` starts
// the current one, whose first instance applies migration 0002 (a new column) while the
// old instances go on serving on the changed table, and replaces them one at a time. No
// request fails, the last old instance answered calls after the migration, what the old
// release wrote reads back, and the new field works through the gateway.
func TestVersionSkew(t *testing.T) {
	ctx := context.Background()
	old := buildRelease(t, releaseBeforeCategories, "./inventory/cmd/inventory")
	s, err := start(func(o *stack.Options) {
		o.Binaries = map[string]string{"inventory": old}
		// Over HTTP whatever the suite's transport: the release before categories
		// serves no gRPC, and a caller over gRPC sees only instances that do.
		setInternalTransport(o, "http")
	})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		s.keepLogs = t.Failed()
		if err := s.stop(); err != nil {
			t.Errorf("stopping the skew stack: %v", err)
		}
	}()
	inventory := s.dbs["inventory"]
	if got := migrations(t, inventory); fmt.Sprint(got) != "[0001_init.sql]" {
		t.Fatalf("the old release's schema: migrations %v, want only 0001_init.sql", got)
	}
	var oldInstances []stack.Proc
	for _, p := range s.stack.Procs {
		if p.Service == "inventory" {
			oldInstances = append(oldInstances, p)
		}
	}

	started, report := underLoad(t, s.stack, []step{
		{"restart inventory -build", func() error { return s.stack.Restart(ctx, "inventory", true) }},
	})
	expectNoFailures(t, report)
	expectNoPending(t, s.dbs["order"], started)

	var applied time.Time
	if err := inventory.QueryRow(`SELECT applied_at FROM schema_migrations WHERE name = '0002_product_category.sql'`).Scan(&applied); err != nil {
		t.Fatalf("migration 0002 after the roll: %v (migrations %v)", err, migrations(t, inventory))
	}
	// The roll replaces the oldest first: the last old instance served beside the new
	// one that had changed the table under it.
	last := oldInstances[len(oldInstances)-1]
	calls := 0
	for _, l := range logLines(t, s.stack, stack.LogFilter{Service: last.Name, Since: applied}) {
		if l.Msg == "call" {
			calls++
		}
	}
	if calls == 0 {
		t.Errorf("%s (the old release) answered no call after migration 0002 was applied at %s", last.Name, applied.Format(time.RFC3339Nano))
	}
	t.Logf("%s (old release) answered %d calls on the migrated table before it was replaced", last.Name, calls)

	// What the old release created (the seed, loadgen's products) has the default.
	var uncategorised int
	if err := inventory.QueryRow(`SELECT count(*) FROM products WHERE category = ''`).Scan(&uncategorised); err != nil || uncategorised == 0 {
		t.Errorf("products of the old release with the default category: %d (%v)", uncategorised, err)
	}
	admin, err := s.stack.Admin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	sku := "SKEW-" + testenv.RandomHex(4)
	product := map[string]any{"sku": sku, "name": "Skew " + sku, "description": "made by " + t.Name(), "category": "skew-test",
		"price": stack.Money{Amount: 500, Currency: "EUR"}, "stock": 1}
	if _, err := admin.Call(ctx, "POST", "/v1/products", product, nil); err != nil {
		t.Fatalf("create a product with a category: %v", err)
	}
	var page struct {
		Products []struct {
			SKU      string `json:"sku"`
			Category string `json:"category"`
		} `json:"products"`
	}
	if _, err := stack.NewClient(s.stack.GatewayURL).Call(ctx, "GET", "/v1/products?category=skew-test", nil, &page); err != nil {
		t.Fatal(err)
	}
	if len(page.Products) != 1 || page.Products[0].SKU != sku || page.Products[0].Category != "skew-test" {
		t.Errorf("the catalogue of category skew-test: %+v, want only %s", page.Products, sku)
	}
}

// buildRelease builds pkg as it was at commit rev, from a copy of the repository's tree
// at that commit, and returns the binary.
func buildRelease(t *testing.T, rev, pkg string) string {
	t.Helper()
	tree := t.TempDir()
	archive := exec.Command("git", "-C", env.stack.Options.Root, "archive", "--format=tar", rev)
	tarball, err := archive.Output()
	if err != nil {
		t.Fatalf("git archive %s: %v (%s)\nthis test builds an earlier release from the repository's history: run it in a clone that has commit %s, not a shallow one nor an export", rev, err, stderrOf(err), rev)
	}
	untar := exec.Command("tar", "-x", "-C", tree)
	untar.Stdin = bytes.NewReader(tarball)
	if out, err := untar.CombinedOutput(); err != nil {
		t.Fatalf("unpack the tree of %s: %v\n%s", rev, err, out)
	}
	bin := filepath.Join(t.TempDir(), filepath.Base(pkg))
	build := exec.Command("go", "build", "-o", bin, pkg)
	build.Dir = tree
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build %s of %s: %v\n%s", pkg, rev, err, out)
	}
	return bin
}

func stderrOf(err error) []byte {
	if exit, ok := err.(*exec.ExitError); ok {
		return bytes.TrimSpace(exit.Stderr)
	}
	return nil
}

// migrations lists the schema migrations applied to db.
func migrations(t *testing.T, db *sql.DB) []string {
	t.Helper()
	return queryStrings(t, db, `SELECT name FROM schema_migrations ORDER BY name`)
}

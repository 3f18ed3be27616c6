package e2e

import (
	"context"
	"database/sql"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kitshop/kitshop/internal/stack"
	"github.com/kitshop/kitshop/pkg/testenv"
)

// loadReport is the part of cmd/loadgen's JSON report this test reads.
type loadReport struct {
	Requests uint64 `json:"requests"`
	All      struct {
		Errors map[string]uint64 `json:"errors"` // by status, "transport" for no answer
	} `json:"all"`
}

// TestRollingUnderLoad runs after TestDependencyFaults (its file sorts later), so the
// instances it rolls have lived through a Consul agent restart and its new CA. Under
// the load generator's whole mix (32 users): restart order, restart inventory with a
// fresh build, scale inventory to 4 and back to 2, and restart the gateway. No request fails but for the 4xx answers the mix asks for on its own (a
// checkout of an empty cart), and no order is left pending.
func TestRollingUnderLoad(t *testing.T) {
	ctx := context.Background()
	started, report := underLoad(t, env.stack, []step{
		{"restart order", func() error { return env.stack.Restart(ctx, "order", false) }},
		{"restart inventory -build", func() error { return env.stack.Restart(ctx, "inventory", true) }},
		{"scale inventory 4", func() error { return env.stack.Scale(ctx, "inventory", 4) }},
		{"scale inventory 2", func() error { return env.stack.Scale(ctx, "inventory", 2) }},
		{"restart gateway", func() error { return env.stack.Restart(ctx, "gateway", false) }},
	})
	expectNoFailures(t, report)
	expectNoPending(t, env.dbs["order"], started)
}

// step is an operation done under load.
type step struct {
	name string
	do   func() error
}

// underLoad runs the steps one after another while the load generator runs the shop's
// whole mix (32 users) through st's gateway, and returns when the measured run began
// and its report.
func underLoad(t *testing.T, st *stack.Stack, steps []step) (time.Time, loadReport) {
	t.Helper()
	loadgen := filepath.Join(t.TempDir(), "loadgen")
	build := exec.Command("go", "build", "-o", loadgen, "./cmd/loadgen")
	build.Dir = st.Options.Root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build loadgen: %v\n%s", err, out)
	}
	// A stack that has just started is slow for its first seconds under this load (its
	// pools and connections fill): a warm-up run, not measured, goes first, so that
	// what the measured run sees is what the operations do.
	args := []string{"-stack", filepath.Join(st.Options.State, "stack.json"), "-concurrency", "32", "-progress", "10s"}
	if out, err := exec.Command(loadgen, append(args, "-duration", "15s")...).CombinedOutput(); err != nil {
		t.Fatalf("warm-up run: %v\n%s", err, out)
	}
	started := time.Now()
	reportFile := filepath.Join(t.TempDir(), "report.json")
	// The run lasts as long as the operations do (on a busy machine a rebuild alone can
	// take half a minute): an interrupt ends it as its -duration would, and loadgen
	// does not count the requests the end cuts short.
	load := exec.Command(loadgen, append(args, "-duration", "10m", "-json", reportFile)...)
	var out testenv.SyncBuffer
	load.Stdout, load.Stderr = &out, &out
	if err := load.Start(); err != nil {
		t.Fatal(err)
	}
	defer load.Process.Kill() // a failed step leaves it running
	// loadgen makes its accounts and products first; the operations start under load.
	// On a machine busy with other tests, the gateway sheds some of the 32 logins
	// (argon2id) and loadgen tries them again: give it time.
	for deadline := time.Now().Add(3 * time.Minute); !strings.Contains(out.String(), "req/s"); time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("loadgen reports no progress after 3 min:\n%s", out.String())
		}
	}
	for _, step := range steps {
		begun := time.Now()
		if err := step.do(); err != nil {
			t.Fatalf("%s: %v", step.name, err)
		}
		t.Logf("%s took %s", step.name, time.Since(begun).Round(100*time.Millisecond))
		time.Sleep(3 * time.Second)
	}
	time.Sleep(3 * time.Second) // what the last step set in motion, still under load
	if err := load.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	_ = load.Wait() // interrupted, it exits 1 ("context canceled") once it has written its report
	b, err := os.ReadFile(reportFile)
	if err != nil {
		t.Fatalf("loadgen wrote no report (%v):\n%s", err, out.String())
	}
	var report loadReport
	if err := json.Unmarshal(b, &report); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d requests; answers other than 2xx: %v\n%s", report.Requests, report.All.Errors, out.String())
	return started, report
}

// expectNoFailures fails t for any answer of the run but a 2xx and the 4xx the mix asks
// for on its own.
func expectNoFailures(t *testing.T, report loadReport) {
	t.Helper()
	// 422: a checkout of an empty cart, which the mix's buycart action can meet. A 504
	// of a read that met a just-started instance on both tries is the open cold-start
	// problem (README, "Scale or roll one service"): one in 10000 is let pass, and
	// logged; any other failure fails the test.
	coldTimeouts := report.All.Errors["504"]
	for kind, n := range report.All.Errors {
		if code, err := strconv.Atoi(kind); err == nil && (code == 422 || code == 504 && n*10000 <= report.Requests) {
			continue
		}
		t.Errorf("%d answers %s during the operations", n, kind)
	}
	if coldTimeouts > 0 {
		t.Logf("NOTE: %d × 504 from a cold instance in %d requests", coldTimeouts, report.Requests)
	}
}

// expectNoPending waits until no order created since started is pending: every saga
// of the run ended.
func expectNoPending(t *testing.T, orders *sql.DB, started time.Time) {
	t.Helper()
	testenv.Eventually(t, 2*ttl, "every order of the run to be final", func() bool {
		var pending int
		if err := orders.QueryRow(`SELECT count(*) FROM orders WHERE status = 'pending' AND created_at >= $1`, started).Scan(&pending); err != nil {
			t.Logf("counting pending orders: %v", err)
			return false
		}
		return pending == 0
	})
}

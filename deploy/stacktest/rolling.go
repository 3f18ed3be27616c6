package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// loadReport is the part of cmd/loadgen's JSON report the rolling check reads.
type loadReport struct {
	Requests uint64 `json:"requests"`
	All      struct {
		Errors map[string]uint64 `json:"errors"` // by status, "transport" for no answer
	} `json:"all"`
}

// loadUsers is how many of loadgen's virtual users act at once: half of e2e's, as the
// whole stack runs in containers on the same machine.
const loadUsers = "16"

// rollingUnderLoad runs cmd/loadgen's whole mix against the gateway's published HTTPS
// port while deploy/compose.sh scales order to 4, rolls it with a fresh build (the
// command a user runs after changing the code: the build, under load, is part of what
// must not fail anything; with nothing changed it is Docker's cache and quick) and scales
// it back to 2. No request may fail but for the 422s the mix meets on its own (a
// checkout of an empty cart), and no order of the run may stay pending.
func (t *test) rollingUnderLoad(ctx context.Context, state, gatewayURL, adminPassword string, composeEnv []string, composeSh string) error {
	loadgen := filepath.Join(state, "loadgen")
	if err := t.command(ctx, nil, "go", "build", "-o", loadgen, "./cmd/loadgen"); err != nil {
		return err
	}
	args := []string{"-target", gatewayURL, "-admin-email", "admin@kitshop.local", "-admin-password", adminPassword,
		"-concurrency", loadUsers, "-progress", "10s"}
	// loadgen trusts the system's roots: here the demo CA, the gateway's issuer.
	env := append(os.Environ(), "SSL_CERT_FILE="+filepath.Join(state, "ca.pem"))
	// A stack that has just started is slow for its first seconds under load (its pools
	// and connections fill): a warm-up run goes first, as in e2e's rolling test.
	warm := exec.CommandContext(ctx, loadgen, append(args, "-duration", "10s")...)
	warm.Env = env
	if out, err := warm.CombinedOutput(); err != nil {
		return fmt.Errorf("loadgen warm-up: %w\n%s", err, tail(string(out), 20))
	}
	t.logf("loadgen warm-up (10 s, %s users) done", loadUsers)

	started := time.Now()
	reportFile := filepath.Join(state, "loadgen.json")
	logFile := filepath.Join(state, "loadgen.log")
	out, err := os.Create(logFile)
	if err != nil {
		return err
	}
	defer out.Close()
	// It lasts as long as the steps do; an interrupt ends it as its -duration would.
	load := exec.CommandContext(ctx, loadgen, append(args, "-duration", "20m", "-json", reportFile)...)
	load.Env, load.Stdout, load.Stderr = env, out, out
	if err := load.Start(); err != nil {
		return err
	}
	defer load.Process.Kill() // a failed step leaves it running
	// loadgen makes its accounts and products first; the steps start under load.
	err = eventually(ctx, 3*time.Minute, 200*time.Millisecond, func() error {
		b, err := os.ReadFile(logFile)
		if err == nil && !strings.Contains(string(b), "req/s") {
			err = fmt.Errorf("loadgen reports no progress (%s)", logFile)
		}
		return err
	})
	if err != nil {
		return err
	}

	steps := []struct {
		name string
		args []string
	}{
		{"scale order 4", []string{"scale", "order", "4"}},
		{"roll order -build", []string{"roll", "order", "-build"}},
		{"scale order 2", []string{"scale", "order", "2"}},
	}
	var took []string
	for _, step := range steps {
		t.logf("under load: deploy/compose.sh %s", strings.Join(step.args, " "))
		begun := time.Now()
		if err := t.command(ctx, composeEnv, composeSh, step.args...); err != nil {
			return fmt.Errorf("%s: %w", step.name, err)
		}
		took = append(took, fmt.Sprintf("%s %s", step.name, time.Since(begun).Round(100*time.Millisecond)))
		time.Sleep(3 * time.Second)
	}
	time.Sleep(3 * time.Second) // what the last step set in motion, still under load
	if err := load.Process.Signal(os.Interrupt); err != nil {
		return err
	}
	_ = load.Wait() // interrupted, it exits 1 once it has written its report
	b, err := os.ReadFile(reportFile)
	if err != nil {
		log, _ := os.ReadFile(logFile)
		return fmt.Errorf("loadgen wrote no report (%v):\n%s", err, tail(string(log), 20))
	}
	var report loadReport
	if err := json.Unmarshal(b, &report); err != nil {
		return fmt.Errorf("%s: %w", reportFile, err)
	}
	var failed []string
	for kind, n := range report.All.Errors {
		if kind != "422" {
			failed = append(failed, fmt.Sprintf("%d × %s", n, kind))
		}
	}
	sort.Strings(failed)
	t.logf("%d requests in %s under %s; answers other than 2xx: %v; %s", report.Requests,
		time.Since(started).Round(time.Second), loadUsers+" users", report.All.Errors, strings.Join(took, ", "))
	if len(failed) > 0 {
		return fmt.Errorf("while order was scaled and rolled, %s of %d requests failed (loadgen's report: %s)", strings.Join(failed, ", "), report.Requests, reportFile)
	}

	query := fmt.Sprintf("SELECT count(*) FROM orders WHERE status = 'pending' AND created_at >= '%s'", started.UTC().Format(time.RFC3339Nano))
	err = eventually(ctx, time.Minute, 2*time.Second, func() error {
		n, err := t.output(ctx, composeEnv, composeSh, "compose", "exec", "-T", "postgres",
			"psql", "-U", "kitshop", "-d", "kitshop_order", "-tAc", query)
		if err == nil && n != "0" {
			err = fmt.Errorf("%s orders of the run are still pending", n)
		}
		return err
	})
	if err != nil {
		return err
	}
	t.logf("no request failed but the mix's own 422s; every order of the run is final")
	return nil
}

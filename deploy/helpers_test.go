// Package deploy_test checks kitshop's deployment files with the tools that will run
// them, without a Docker engine or a cluster: docker-compose config, kubectl kustomize
// and a client-side kubectl apply, a strict schema check of every manifest, promtool,
// and a real Prometheus that scrapes every instance of a running stack found in Consul.
// The containers themselves run in make compose-test and make swarm-test
// (deploy/stacktest).
package deploy_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kitshop/kitshop/pkg/testenv"
)

func TestMain(m *testing.M) {
	code := m.Run()
	if kubecheckBuild.path != "" {
		os.RemoveAll(filepath.Dir(kubecheckBuild.path))
	}
	os.Exit(code)
}

// services are kitshop's binaries and the port each listens on in a container.
var services = map[string]int{
	"user": 8081, "inventory": 8082, "order": 8083, "payment": 8084, "notification": 8085, "gateway": 8080,
}

// root is the repository, the parent of this folder.
func root(t testing.TB) string {
	t.Helper()
	dir, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

// tool finds a command on PATH; a missing one skips the test, or fails it under CI.
func tool(t testing.TB, name, pkg string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		testenv.Missing(t, name+" (Debian package "+pkg+")", err)
	}
	return path
}

// run runs a command and returns its standard output, failing the test with its
// standard error when it fails.
func run(t testing.TB, dir string, stdin []byte, env []string, name string, args ...string) []byte {
	t.Helper()
	out, err := runErr(dir, stdin, env, name, args...)
	if err != nil {
		t.Fatalf("%s %s: %v", filepath.Base(name), strings.Join(args, " "), err)
	}
	return out
}

func runErr(dir string, stdin []byte, env []string, name string, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.Bytes(), &cmdError{err: err, stderr: strings.TrimSpace(stderr.String())}
	}
	return stdout.Bytes(), nil
}

type cmdError struct {
	err    error
	stderr string
}

func (e *cmdError) Error() string { return e.err.Error() + "\n" + e.stderr }

var kubecheckBuild struct {
	once sync.Once
	path string
	err  error
}

// kubecheck runs deploy/kubecheck (its own module, built once per test binary).
func kubecheck(t testing.TB, stdin []byte, args ...string) []byte {
	t.Helper()
	kubecheckBuild.once.Do(func() {
		dir, err := os.MkdirTemp("", "kubecheck")
		if err != nil {
			kubecheckBuild.err = err
			return
		}
		kubecheckBuild.path = filepath.Join(dir, "kubecheck")
		_, kubecheckBuild.err = runErr("kubecheck", nil, []string{"GOWORK=off", "GOFLAGS=-mod=readonly"},
			"go", "build", "-o", kubecheckBuild.path, ".")
	})
	if kubecheckBuild.err != nil {
		testenv.Missing(t, "deploy/kubecheck (its modules come from the Go module proxy)", kubecheckBuild.err)
	}
	return run(t, "", stdin, nil, kubecheckBuild.path, args...)
}

// yamlToJSON decodes a YAML stream into v (a slice of documents).
func yamlToJSON(t testing.TB, yamlDocs []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(kubecheck(t, yamlDocs, "-to-json"), v); err != nil {
		t.Fatal(err)
	}
}

// freePort is a TCP port nobody listens on right now.
func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

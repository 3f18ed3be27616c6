package consulacl_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	consul "github.com/hashicorp/consul/api"

	"github.com/kitshop/kitshop/internal/consulacl"
	"github.com/kitshop/kitshop/pkg/testenv"
)

// startAgent runs a private Consul dev agent with ACLs on and a default policy of deny,
// built by consul/install.sh, and returns its HTTP address. hcl is more configuration.
func startAgent(t *testing.T, hcl ...string) string {
	t.Helper()
	out, err := exec.Command("bash", "../../consul/install.sh").Output()
	if err != nil {
		testenv.Missing(t, "the Consul agent (consul/install.sh)", err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	bin := lines[len(lines)-1]
	port, err := testenv.FreePorts(4)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "agent", "-dev", "-bind", "127.0.0.1", "-client", "127.0.0.1",
		"-http-port", fmt.Sprint(port), "-server-port", fmt.Sprint(port+1),
		"-serf-lan-port", fmt.Sprint(port+2), "-serf-wan-port", fmt.Sprint(port+3),
		"-dns-port", "-1", "-grpc-port", "-1", "-grpc-tls-port", "-1", "-log-level", "warn",
		"-hcl", `acl { enabled = true, default_policy = "deny", down_policy = "extend-cache" }`)
	for _, h := range hcl {
		cmd.Args = append(cmd.Args, "-hcl", h)
	}
	logFile := filepath.Join(t.TempDir(), "consul.log")
	logs, err := os.Create(logFile)
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		logs.Close()
	})
	return fmt.Sprintf("127.0.0.1:%d", port)
}

// client is a client of the agent at addr with token (none: the anonymous token).
func client(t *testing.T, addr, token string) *consul.Client {
	t.Helper()
	conf := consul.DefaultConfig()
	conf.Address, conf.Token, conf.TokenFile = addr, token, ""
	c, err := consul.NewClient(conf)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func forbidden(err error) bool {
	var se consul.StatusError
	return errors.As(err, &se) && se.Code == http.StatusForbidden
}

func register(c *consul.Client, service string) error {
	return c.Agent().ServiceRegister(&consul.AgentServiceRegistration{
		ID: service + "-1", Name: service, Address: "127.0.0.1", Port: 1,
		Check: &consul.AgentServiceCheck{HTTP: "http://127.0.0.1:1/health", Interval: "10s", DeregisterCriticalServiceAfter: "1m"},
	})
}

// TestACLs bootstraps an agent as the kitshop bootstrap step does, twice, and checks
// what each token may do: a service's token registers that service and fetches its
// certificate but not another's; the anonymous token reads services, nodes and health
// and nothing else.
func TestACLs(t *testing.T) {
	addr := startAgent(t)
	c := client(t, addr, "")
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	mgmtFile, orderFile := filepath.Join(dir, "management.token"), filepath.Join(dir, "tokens", "order")
	var secrets []string
	for run := range 2 { // the second run must change nothing
		admin, err := consulacl.Bootstrap(ctx, c, mgmtFile)
		if err != nil {
			t.Fatalf("run %d: %v", run, err)
		}
		if err := admin.Policies(ctx, []string{"order", "payment"}); err != nil {
			t.Fatalf("run %d: %v", run, err)
		}
		if err := admin.AgentToken(ctx, filepath.Join(dir, "agent.token")); err != nil {
			t.Fatalf("run %d: %v", run, err)
		}
		if err := admin.ServiceToken(ctx, "order", orderFile); err != nil {
			t.Fatalf("run %d: %v", run, err)
		}
		b, err := os.ReadFile(orderFile)
		if err != nil {
			t.Fatal(err)
		}
		secrets = append(secrets, strings.TrimSpace(string(b)))
	}
	if secrets[0] != secrets[1] {
		t.Fatal("a second run replaced a token Consul still knew")
	}
	if info, _ := os.Stat(orderFile); info.Mode().Perm() != 0o600 {
		t.Fatalf("token file mode %v, want 0600", info.Mode().Perm())
	}

	// Another management token file: the ACL system was bootstrapped by someone else.
	if _, err := consulacl.Bootstrap(ctx, c, filepath.Join(dir, "other.token")); !errors.Is(err, consulacl.ErrBootstrappedElsewhere) {
		t.Fatalf("Bootstrap with another token file = %v, want ErrBootstrappedElsewhere", err)
	}

	order := client(t, addr, secrets[0])
	anonymous := client(t, addr, "")
	tests := []struct {
		name      string
		call      func() error
		forbidden bool
	}{
		{"order registers order", func() error { return register(order, "order") }, false},
		{"order fetches its leaf", func() error { _, _, err := order.Agent().ConnectCALeaf("order", nil); return err }, false},
		{"order authorises a caller by the intentions", func() error {
			_, err := order.Agent().ConnectAuthorize(&consul.AgentAuthorizeParams{
				Target: "order", ClientCertURI: "spiffe://11111111-2222-3333-4444-555555555555.consul/ns/default/dc/dc1/svc/gateway", ClientCertSerial: "01",
			})
			return err
		}, false},
		{"order reads the catalogue", func() error { _, _, err := order.Health().Service("payment", "", false, nil); return err }, false},
		{"order registers payment", func() error { return register(order, "payment") }, true},
		{"order fetches payment's leaf", func() error { _, _, err := order.Agent().ConnectCALeaf("payment", nil); return err }, true},
		{"order writes a key", func() error { _, err := order.KV().Put(&consul.KVPair{Key: "k", Value: []byte("v")}, nil); return err }, true},
		{"anonymous reads services", func() error { _, _, err := anonymous.Catalog().Services(nil); return err }, false},
		{"anonymous reads health", func() error {
			entries, _, err := anonymous.Health().Service("order", "", false, nil)
			if err == nil && len(entries) != 1 {
				err = fmt.Errorf("%d order instances, want the one registered", len(entries))
			}
			return err
		}, false},
		{"anonymous reads nodes", func() error { _, _, err := anonymous.Catalog().Nodes(nil); return err }, false},
		{"anonymous registers", func() error { return register(anonymous, "user") }, true},
		{"anonymous fetches a leaf", func() error { _, _, err := anonymous.Agent().ConnectCALeaf("order", nil); return err }, true},
		{"anonymous reads intentions", func() error {
			_, _, err := anonymous.Connect().IntentionMatch(&consul.IntentionMatch{By: consul.IntentionMatchDestination, Names: []string{"order"}}, nil)
			return err
		}, true},
		{"anonymous reads the agent", func() error { _, err := anonymous.Agent().Self(); return err }, true},
		{"anonymous writes a key", func() error {
			_, err := anonymous.KV().Put(&consul.KVPair{Key: "k", Value: []byte("v")}, nil)
			return err
		}, true},
		{"anonymous deregisters", func() error { return anonymous.Agent().ServiceDeregister("order-1") }, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call()
			if tt.forbidden && !forbidden(err) {
				t.Fatalf("err = %v, want 403", err)
			}
			if !tt.forbidden && err != nil {
				t.Fatalf("err = %v, want none", err)
			}
		})
	}

	// A token Consul no longer knows (its data wiped, or deleted) is replaced.
	admin, err := consulacl.Bootstrap(ctx, c, mgmtFile)
	if err != nil {
		t.Fatal(err)
	}
	self, _, err := order.ACL().TokenReadSelf(nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := client(t, addr, readFile(t, mgmtFile)).ACL().TokenDelete(self.AccessorID, nil); err != nil {
		t.Fatal(err)
	}
	if err := admin.ServiceToken(ctx, "order", orderFile); err != nil {
		t.Fatal(err)
	}
	renewed := readFile(t, orderFile)
	if renewed == secrets[0] {
		t.Fatal("a deleted token was kept")
	}
	if err := register(client(t, addr, renewed), "order"); err != nil {
		t.Fatalf("the new token: %v", err)
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// TestGivenTokens prepares an agent as the Kubernetes demo's bootstrap Job does: every
// secret comes from files it may not write (a Secret), the management token is the one
// Consul was started with. Each token is made with its file's secret, a second run
// changes nothing, and a token Consul already knows with another policy is refused.
func TestGivenTokens(t *testing.T) {
	const management = "6d3e1f52-7c1b-4e8a-9a43-1f0c2b7d9e11"
	addr := startAgent(t, fmt.Sprintf(`acl { tokens { initial_management = %q } }`, management))
	c := client(t, addr, "")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	dir := t.TempDir()
	secrets := map[string]string{
		"management.token": management,
		"agent.token":      "0b6f7a39-5d2e-4c1b-8f90-3e7a1d2c4b55",
		"order":            "9a8b7c6d-5e4f-4a3b-9c2d-1e0f9a8b7c6d",
		"payment":          "1f2e3d4c-5b6a-4978-8695-a4b3c2d1e0f9",
	}
	for name, secret := range secrets {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(secret+"\n"), 0o400); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(dir, 0o500); err != nil { // nothing may be written beside them
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Chmod(dir, 0o700) })

	for run := range 2 {
		admin, err := consulacl.Given(ctx, c, filepath.Join(dir, "management.token"))
		if err != nil {
			t.Fatalf("run %d: %v", run, err)
		}
		if err := admin.Policies(ctx, []string{"order", "payment"}); err != nil {
			t.Fatalf("run %d: %v", run, err)
		}
		if err := admin.AgentToken(ctx, filepath.Join(dir, "agent.token")); err != nil {
			t.Fatalf("run %d: %v", run, err)
		}
		for _, s := range []string{"order", "payment"} {
			if err := admin.ServiceToken(ctx, s, filepath.Join(dir, s)); err != nil {
				t.Fatalf("run %d: %v", run, err)
			}
		}
	}
	if err := register(client(t, addr, secrets["order"]), "order"); err != nil {
		t.Fatalf("order's given token: %v", err)
	}
	if err := register(client(t, addr, secrets["order"]), "payment"); !forbidden(err) {
		t.Fatalf("order's token registering payment: err = %v, want 403", err)
	}
	if err := register(client(t, addr, ""), "order"); !forbidden(err) {
		t.Fatalf("anonymous registering: err = %v, want 403", err)
	}

	admin, err := consulacl.Given(ctx, c, filepath.Join(dir, "management.token"))
	if err != nil {
		t.Fatal(err)
	}
	if err := admin.ServiceToken(ctx, "order", filepath.Join(dir, "payment")); err == nil {
		t.Fatal("payment's secret was taken for order's token")
	}
	if err := admin.ServiceToken(ctx, "user", filepath.Join(dir, "user")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a missing given file: err = %v, want it not to exist", err)
	}

	// A token that does not manage is refused; one Consul does not know is waited for.
	if _, err := consulacl.Given(ctx, c, filepath.Join(dir, "agent.token")); err == nil {
		t.Fatal("the agent's token was taken for the management token")
	}
	unknown := filepath.Join(t.TempDir(), "management.token")
	if err := os.WriteFile(unknown, []byte("4e5d6c7b-8a9f-4e1d-a2c3-b4d5e6f7a8b9\n"), 0o400); err != nil {
		t.Fatal(err)
	}
	short, cancelShort := context.WithTimeout(ctx, 2*time.Second)
	defer cancelShort()
	if _, err := consulacl.Given(short, c, unknown); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("an unknown management token: err = %v, want the wait to end", err)
	}
}

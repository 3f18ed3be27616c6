// Package testenv is what the tests of every package share: the real PostgreSQL,
// RabbitMQ and Consul that `make test` provides, a buffer several goroutines may log
// into, a poller for conditions that come true in time, a runner of HTTP steps, and
// random names. It is an ordinary package so that tests of many packages can import
// it, but only test code imports it; no binary links it.
//
// When a component is missing a test is skipped, except under CI=true, where it fails:
// CI must never pass by skipping.
package testenv

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"io/fs"
	mathrand "math/rand/v2"
	"net"
	"net/url"
	"os"
	"os/exec"
	"strconv"
	"testing"
	"time"

	consul "github.com/hashicorp/consul/api"
	"github.com/lib/pq"

	"github.com/kitshop/kitshop/pkg/postgres"
)

// Defaults, overridable with the environment variables of the same meaning.
const (
	defaultPostgres = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable&connect_timeout=5"
	defaultAMQP     = "amqp://guest:guest@127.0.0.1:5672/"
	defaultConsul   = "127.0.0.1:8500"
)

// Missing skips the test, or fails it under CI=true, because component is unreachable.
func Missing(t testing.TB, component string, err error) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s is required under CI=true but unreachable: %v", component, err)
	}
	t.Skipf("%s unreachable (%v); run `make test` to start it", component, err)
}

func getenv(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

// PostgresURL creates a fresh, empty database for this test and returns its URL; the
// database is dropped when the test ends. KITSHOP_TEST_DATABASE_URL names the server.
func PostgresURL(t testing.TB) string {
	t.Helper()
	base := getenv("KITSHOP_TEST_DATABASE_URL", defaultPostgres)
	admin, err := sql.Open("postgres", base)
	if err != nil {
		Missing(t, "PostgreSQL", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := admin.PingContext(ctx); err != nil {
		admin.Close()
		Missing(t, "PostgreSQL", err)
	}
	name := "kitshop_test_" + RandomHex(6)
	if _, err := admin.ExecContext(ctx, "CREATE DATABASE "+pq.QuoteIdentifier(name)); err != nil {
		admin.Close()
		t.Fatalf("create test database: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, _ = admin.ExecContext(ctx, "DROP DATABASE IF EXISTS "+pq.QuoteIdentifier(name)+" WITH (FORCE)")
		admin.Close()
	})
	u, _ := url.Parse(base)
	u.Path = "/" + name
	return u.String()
}

// Postgres opens a fresh database with migrations applied; it is closed and dropped
// when the test ends.
func Postgres(t testing.TB, migrations fs.FS) *sql.DB {
	t.Helper()
	dsn := PostgresURL(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	db, err := postgres.Open(ctx, dsn, postgres.DefaultPool, migrations)
	if err != nil {
		t.Fatalf("open test database: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// AMQPURL returns the URL of the test RabbitMQ (KITSHOP_TEST_AMQP_URL), checking that
// it accepts connections.
func AMQPURL(t testing.TB) string {
	t.Helper()
	raw := getenv("KITSHOP_TEST_AMQP_URL", defaultAMQP)
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatalf("KITSHOP_TEST_AMQP_URL: %v", err)
	}
	host := u.Host
	if u.Port() == "" {
		host = net.JoinHostPort(u.Hostname(), "5672")
	}
	conn, err := net.DialTimeout("tcp", host, 3*time.Second)
	if err != nil {
		Missing(t, "RabbitMQ", err)
	}
	conn.Close()
	return raw
}

// Consul returns a client of the test Consul agent (KITSHOP_TEST_CONSUL_ADDR) and its
// address, checking that the agent has a leader.
func Consul(t testing.TB) (*consul.Client, string) {
	t.Helper()
	addr := getenv("KITSHOP_TEST_CONSUL_ADDR", defaultConsul)
	conf := consul.DefaultConfig()
	conf.Address = addr
	c, err := consul.NewClient(conf)
	if err != nil {
		t.Fatalf("consul client: %v", err)
	}
	leader, err := c.Status().Leader()
	if err == nil && leader == "" {
		err = errNoLeader
	}
	if err != nil {
		Missing(t, "Consul", err)
	}
	return c, addr
}

type constError string

func (e constError) Error() string { return string(e) }

const errNoLeader = constError("agent has no leader")

// Name returns a name unique to this run, for Consul services, queues and the like.
func Name(prefix string) string { return prefix + "-" + RandomHex(4) }

// RandomHex returns n random bytes in hex (2n characters), for e-mail addresses,
// idempotency keys and names no other test run uses. crypto/rand.Read does not fail
// (it never returns an error since Go 1.24), so neither does RandomHex.
func RandomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// FreePorts returns the first of n consecutive free TCP ports on 127.0.0.1, for a
// private Consul agent (its HTTP, server and gossip ports). They are chosen below the
// kernel's ephemeral range (32768 and up), so no outgoing connection takes one between
// this check and the agent's start.
func FreePorts(n int) (int, error) {
	for try := 0; try < 100; try++ {
		base := 20000 + mathrand.IntN(12000-n)
		free := true
		for p := base; p < base+n && free; p++ {
			ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
			if err != nil {
				free = false
				break
			}
			ln.Close()
		}
		if free {
			return base, nil
		}
	}
	return 0, fmt.Errorf("no %d consecutive free ports", n)
}

// AMQPVhost creates a RabbitMQ virtual host of its own for a whole stack under test, so
// that its exchanges and queues (and so its consumers) are apart from every other stack
// on the same broker, and returns its URL and a function that deletes it. It needs the
// broker's rabbitmqctl on this machine.
func AMQPVhost(baseURL string) (string, func(), error) {
	u, err := url.Parse(baseURL)
	if err != nil {
		return "", nil, err
	}
	vhost := "kitshop-test-" + RandomHex(4)
	user := u.User.Username()
	if user == "" {
		user = "guest"
	}
	for _, args := range [][]string{
		{"add_vhost", vhost},
		{"set_permissions", "-p", vhost, user, ".*", ".*", ".*"},
	} {
		if out, err := exec.Command("rabbitmqctl", args...).CombinedOutput(); err != nil {
			return "", nil, fmt.Errorf("rabbitmqctl %s: %v: %s", args[0], err, out)
		}
	}
	u.Path = "/" + vhost
	cleanup := func() { _ = exec.Command("rabbitmqctl", "delete_vhost", vhost).Run() }
	return u.String(), cleanup, nil
}

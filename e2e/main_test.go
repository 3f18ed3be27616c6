// Package e2e tests the whole shop as its users and operators meet it: a stack started
// by the launcher (internal/stack) on the real PostgreSQL, RabbitMQ and a Consul agent
// of its own, driven through the gateway, with processes killed and dependencies cut.
package e2e

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/kitshop/kitshop/internal/stack"
	"github.com/kitshop/kitshop/pkg/outbox/outboxtest"
	"github.com/kitshop/kitshop/pkg/testenv"
)

// suite is the stack every test of the package shares: starting one takes seconds, and
// the tests leave it as they found it (two healthy instances of every service).
type suite struct {
	stack  *stack.Stack
	broker *outboxtest.Proxy // between the stack and RabbitMQ, to cut it
	// dropVhost deletes the stack's RabbitMQ virtual host.
	dropVhost func()
	dbs       map[string]*sql.DB

	keepLogs bool // a test failed: leave the logs for the developer
}

var env *suite

func TestMain(m *testing.M) { os.Exit(run(m)) }

func run(m *testing.M) int {
	s, err := start(nil)
	if err != nil {
		if os.Getenv("CI") == "true" {
			fmt.Fprintf(os.Stderr, "e2e: the stack could not start, and CI=true requires it: %v\n", err)
			return 1
		}
		fmt.Fprintf(os.Stderr, "e2e: skipped, the stack could not start (%v); run `make test`\n", err)
		return 0
	}
	env = s
	code := m.Run()
	s.keepLogs = code != 0
	if err := s.stop(); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: stopping the stack: %v\n", err)
		if code == 0 {
			code = 1
		}
	}
	return code
}

func getenv(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

// start starts a stack of the suite's settings, which configure (if not nil) may change.
func start(configure func(*stack.Options)) (_ *suite, err error) {
	pg := getenv("KITSHOP_TEST_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable&connect_timeout=5")
	// A virtual host of the stack's own: other stacks on the broker (a demo, the
	// deployment checks) must not consume its events, nor it theirs.
	amqpURL, dropVhost, err := testenv.AMQPVhost(getenv("KITSHOP_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/"))
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			dropVhost()
		}
	}()
	u, err := url.Parse(amqpURL)
	if err != nil {
		return nil, err
	}
	broker, err := outboxtest.Listen(u.Host)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			broker.Close()
		}
	}()
	u.Host = broker.Addr()
	consulPort, err := testenv.FreePorts(4)
	if err != nil {
		return nil, err
	}
	consulAddr := "127.0.0.1:" + strconv.Itoa(consulPort)
	root, err := filepath.Abs("..")
	if err != nil {
		return nil, err
	}
	state, err := os.MkdirTemp("", "kitshop-e2e-")
	if err != nil {
		return nil, err
	}
	fast := map[string]string{"KITSHOP_RESERVATION_TTL": ttl.String()}
	o := stack.Options{
		Root:        root,
		State:       state,
		GatewayAddr: "127.0.0.1:0",
		ConsulAddr:  consulAddr,
		Postgres:    pg,
		DBPrefix:    fmt.Sprintf("kitshop_e2e_%d", time.Now().UnixNano()%1e9),
		AMQP:        u.String(),
		Instances:   2,
		Timeout:     2 * time.Minute,
		LogLevel:    "debug", // TestLogsOfOneCheckout follows one checkout through every service
		Env: map[string]map[string]string{
			// Load loops run far above a shopper's pace.
			"gateway":   {"KITSHOP_RATE_USER": "100000", "KITSHOP_RATE_USER_BURST": "100000", "KITSHOP_RATE_ANON": "100000", "KITSHOP_RATE_ANON_BURST": "100000"},
			"inventory": fast,
			// Every client of the suite comes from 127.0.0.1: its failed logins (the login
			// flood of TestLoginFlood) must not lock the other tests out.
			"user": {"KITSHOP_LOGIN_FAILURES_PER_ADDR": "100000"},
			// A crashed saga is taken over after 10 s (a loaded CI machine can take a
			// few seconds over one step); reservations live 20 s.
			"order": {"KITSHOP_RESERVATION_TTL": ttl.String(), "KITSHOP_RECOVERY_GRACE": "10s", "KITSHOP_RECOVERY_INTERVAL": "1s"},
		},
		// KITSHOP_TLS=off runs the suite in plain HTTP; by default it runs with mTLS.
		TLS:      os.Getenv("KITSHOP_TLS"),
		Progress: os.Stderr,
	}
	if configure != nil {
		configure(&o)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	st, err := stack.Up(ctx, o)
	if err != nil {
		return nil, err
	}
	s := &suite{stack: st, broker: broker, dropVhost: dropVhost, dbs: map[string]*sql.DB{}}
	if st.Postgres == "" || st.AMQP == "" {
		_ = s.stop()
		return nil, fmt.Errorf("PostgreSQL or RabbitMQ is unreachable")
	}
	for _, svc := range []string{"inventory", "order", "payment", "notification"} {
		db, err := sql.Open("postgres", st.DatabaseURL(svc))
		if err != nil {
			_ = s.stop()
			return nil, err
		}
		s.dbs[svc] = db
	}
	return s, nil
}

// ttl is the reservation TTL of the test stack: no order may stay pending longer.
const ttl = 20 * time.Second

// stop stops the stack and drops its databases.
func (s *suite) stop() error {
	for _, db := range s.dbs {
		db.Close()
	}
	err := s.stack.Down()
	s.broker.Close()
	s.dropVhost()
	if s.stack.Postgres != "" {
		admin, openErr := sql.Open("postgres", s.stack.Postgres)
		if openErr == nil {
			for _, svc := range []string{"user", "inventory", "payment", "order", "notification"} {
				_, _ = admin.Exec(`DROP DATABASE IF EXISTS "` + s.stack.Options.DBPrefix + "_" + svc + `" WITH (FORCE)`)
			}
			admin.Close()
		}
	}
	if s.keepLogs {
		fmt.Fprintf(os.Stderr, "e2e: a test failed; the stack's logs are kept in %s\n", s.stack.Logs())
	} else {
		_ = os.RemoveAll(s.stack.Options.State)
	}
	return err
}

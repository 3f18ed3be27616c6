package stack

import (
	"context"
	"database/sql"
	"errors"
	"net"
	"net/url"
	"time"

	_ "github.com/lib/pq" // the PostgreSQL driver, to check the server is reachable
)

// detectBackends decides between PostgreSQL and memory stores, and whether events
// flow through RabbitMQ, and says so.
func (s *Stack) detectBackends(ctx context.Context) {
	o := s.Options
	if err := pingPostgres(ctx, o.Postgres); err != nil {
		s.logf("PostgreSQL unreachable (%v): every service uses its in-memory store; data is lost when the stack stops", err)
	} else {
		s.Postgres = o.Postgres
		s.logf("PostgreSQL: one database per service (%s_<service>) on %s", o.DBPrefix, redact(o.Postgres))
	}
	if err := dialURL(o.AMQP, "5672"); err != nil {
		s.logf("RabbitMQ unreachable (%v): orders are placed but no emails are sent", err)
	} else {
		s.AMQP = o.AMQP
		s.logf("RabbitMQ: events flow through %s", redact(o.AMQP))
	}
}

func pingPostgres(ctx context.Context, dsn string) error {
	if dsn == "" {
		return errors.New("no URL")
	}
	db, err := sql.Open("postgres", dsn)
	if err != nil {
		return err
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	return db.PingContext(ctx)
}

func dialURL(raw, defaultPort string) error {
	u, err := url.Parse(raw)
	if err != nil || raw == "" {
		return errors.New("no usable URL")
	}
	port := u.Port()
	if port == "" {
		port = defaultPort
	}
	conn, err := net.DialTimeout("tcp", net.JoinHostPort(u.Hostname(), port), 3*time.Second)
	if err != nil {
		return err
	}
	return conn.Close()
}

// DatabaseURL is the URL of service's database.
func (s *Stack) DatabaseURL(service string) string {
	u, err := url.Parse(s.Postgres)
	if err != nil || s.Postgres == "" {
		return ""
	}
	u.Path = "/" + s.Options.DBPrefix + "_" + service
	return u.String()
}

func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable URL)"
	}
	return u.Redacted()
}

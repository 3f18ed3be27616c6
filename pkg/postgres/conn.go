package postgres

import (
	"context"
	"database/sql/driver"
	"strings"

	"github.com/openzipkin/zipkin-go"

	"github.com/kitshop/kitshop/pkg/observe"
)

// pqConn is what lib/pq's connection implements, and so what the tracing wrapper passes on.
type pqConn interface {
	driver.Conn
	driver.ConnBeginTx
	driver.ConnPrepareContext
	driver.ExecerContext
	driver.QueryerContext
	driver.Pinger
	driver.SessionResetter
	driver.Validator
	driver.NamedValueChecker
}

// connector makes the pool's connections: lib/pq's, each with a cache of prepared
// statements, and traced.
//
// Every statement with arguments is prepared once per connection and then run by name:
// PostgreSQL parses and plans it once instead of on every run (a checkout runs some
// twenty statements), and each run stays one round trip (bind, execute). Statements
// without arguments (migrations, which may hold several statements) are sent as they
// are. The stores' statements are constant strings, so the cache stays small.
//
// A statement and transaction run for a traced request gets a span of its own ("sql
// select", "sql tx"), tagged with the statement (never its arguments). Work outside a
// traced request costs one context lookup.
type connector struct{ driver.Connector }

func (c connector) Connect(ctx context.Context) (driver.Conn, error) {
	cn, err := c.Connector.Connect(ctx)
	if err != nil {
		return nil, err
	}
	return &conn{pqConn: cn.(pqConn), stmts: map[string]pqStmt{}}, nil
}

// pqStmt is what lib/pq's prepared statement implements.
type pqStmt interface {
	driver.Stmt
	driver.StmtExecContext
	driver.StmtQueryContext
}

// maxStatements bounds one connection's prepared statements; past it they are all
// closed and prepared again as they are used.
const maxStatements = 256

// conn is one connection of the pool. database/sql never uses a connection from two
// goroutines at once, so its cache needs no lock.
type conn struct {
	pqConn
	stmts map[string]pqStmt
}

// prepared returns query prepared on this connection.
func (c *conn) prepared(ctx context.Context, query string) (pqStmt, error) {
	if st, ok := c.stmts[query]; ok {
		return st, nil
	}
	if len(c.stmts) >= maxStatements {
		for q, st := range c.stmts {
			_ = st.Close()
			delete(c.stmts, q)
		}
	}
	st, err := c.pqConn.PrepareContext(ctx, query)
	if err != nil {
		return nil, err
	}
	c.stmts[query] = st.(pqStmt)
	return st.(pqStmt), nil
}

func (c *conn) ExecContext(ctx context.Context, query string, args []driver.NamedValue) (_ driver.Result, err error) {
	span, ctx := statementSpan(ctx, query)
	defer func() { observe.FinishSpan(span, err) }()
	if len(args) == 0 {
		return c.pqConn.ExecContext(ctx, query, args)
	}
	st, err := c.prepared(ctx, query)
	if err != nil {
		return nil, err
	}
	return st.ExecContext(ctx, args)
}

func (c *conn) QueryContext(ctx context.Context, query string, args []driver.NamedValue) (_ driver.Rows, err error) {
	span, ctx := statementSpan(ctx, query)
	defer func() { observe.FinishSpan(span, err) }()
	if len(args) == 0 {
		return c.pqConn.QueryContext(ctx, query, args)
	}
	st, err := c.prepared(ctx, query)
	if err != nil {
		return nil, err
	}
	return st.QueryContext(ctx, args)
}

func (c *conn) BeginTx(ctx context.Context, opts driver.TxOptions) (driver.Tx, error) {
	span, ctx := observe.ChildSpan(ctx, "sql tx", "postgres")
	tx, err := c.pqConn.BeginTx(ctx, opts)
	if err != nil {
		observe.FinishSpan(span, err)
		return nil, err
	}
	return tracedTx{Tx: tx, span: span}, nil
}

// tracedTx ends the transaction's span at commit or rollback.
type tracedTx struct {
	driver.Tx
	span zipkin.Span
}

func (t tracedTx) Commit() error {
	err := t.Tx.Commit()
	observe.FinishSpan(t.span, err)
	return err
}

func (t tracedTx) Rollback() error {
	err := t.Tx.Rollback()
	if t.span != nil {
		t.span.Tag("sql.rollback", "true")
	}
	observe.FinishSpan(t.span, err)
	return err
}

// maxStatementTag bounds the statement text kept on a span.
const maxStatementTag = 500

func statementSpan(ctx context.Context, query string) (zipkin.Span, context.Context) {
	if !observe.Recording(ctx) {
		return nil, ctx // before the name and tag are worked out
	}
	verb, _, _ := strings.Cut(strings.TrimSpace(query), " ")
	span, ctx := observe.ChildSpan(ctx, "sql "+strings.ToLower(verb), "postgres")
	if span != nil {
		q := strings.Join(strings.Fields(query), " ")
		if len(q) > maxStatementTag {
			q = q[:maxStatementTag]
		}
		span.Tag("sql.query", q)
	}
	return span, ctx
}

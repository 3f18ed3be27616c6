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

// tracingConnector gives every statement and transaction run for a traced request a
// span of its own ("sql select", "sql tx"), tagged with the statement (never its
// arguments). Work outside a traced request costs one context lookup.
type tracingConnector struct{ driver.Connector }

func (c tracingConnector) Connect(ctx context.Context) (driver.Conn, error) {
	conn, err := c.Connector.Connect(ctx)
	if err != nil {
		return nil, err
	}
	return tracedConn{conn.(pqConn)}, nil
}

type tracedConn struct{ pqConn }

func (c tracedConn) ExecContext(ctx context.Context, query string, args []driver.NamedValue) (_ driver.Result, err error) {
	span, ctx := statementSpan(ctx, query)
	defer func() { observe.FinishSpan(span, err) }()
	return c.pqConn.ExecContext(ctx, query, args)
}

func (c tracedConn) QueryContext(ctx context.Context, query string, args []driver.NamedValue) (_ driver.Rows, err error) {
	span, ctx := statementSpan(ctx, query)
	defer func() { observe.FinishSpan(span, err) }()
	return c.pqConn.QueryContext(ctx, query, args)
}

func (c tracedConn) BeginTx(ctx context.Context, opts driver.TxOptions) (driver.Tx, error) {
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

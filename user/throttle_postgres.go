package user

import (
	"context"
	"database/sql"
	"errors"
	"sync"
	"time"
)

// PostgresThrottle is a Throttle kept in the user database, so that every instance
// spends one budget per key: in memory, each of N instances would grant its own.
// Each bucket is one row, updated in one statement, so attempts taken at once on
// several instances are counted exactly.
type PostgresThrottle struct {
	db        *sql.DB
	scope     string
	perSecond float64
	burst     float64
	now       func() time.Time

	mu        sync.Mutex
	lastSweep time.Time
}

// NewPostgresThrottle allows burst failures per key of scope within per, refilling
// evenly, in db (whose schema Migrations made). A burst of 0 turns it off.
func NewPostgresThrottle(db *sql.DB, scope string, burst int, per time.Duration, now func() time.Time) *PostgresThrottle {
	return &PostgresThrottle{db: db, scope: scope, perSecond: float64(burst) / per.Seconds(), burst: float64(burst), now: now}
}

// bucketLevel is the SQL of the tokens of bucket b at the time in parameter now, refilled
// since its row was written, with burst and rate (a second) in the parameters named.
func bucketLevel(burst, now, rate string) string {
	return `LEAST(` + burst + `, b.tokens + GREATEST(0, EXTRACT(EPOCH FROM (` + now + `::timestamptz - b.at))::float8) * ` + rate + `)`
}

// Take implements Budget.
func (t *PostgresThrottle) Take(ctx context.Context, key string) (time.Duration, error) {
	if t.burst == 0 {
		return 0, nil
	}
	now := t.now()
	if err := t.sweep(ctx, now); err != nil {
		return 0, err
	}
	var tokens float64
	err := t.db.QueryRowContext(ctx, `
		INSERT INTO login_budgets AS b (scope, key, tokens, at) VALUES ($1, $2, $3 - 1, $4)
		ON CONFLICT (scope, key) DO UPDATE SET tokens = `+bucketLevel("$3", "$4", "$5")+` - 1, at = GREATEST(b.at, $4)
			WHERE `+bucketLevel("$3", "$4", "$5")+` >= 1
		RETURNING tokens`, t.scope, key, t.burst, now, t.perSecond).Scan(&tokens)
	if !errors.Is(err, sql.ErrNoRows) {
		return 0, err
	}
	// No token: the row was left as it was; say how long until one is back.
	err = t.db.QueryRowContext(ctx, `SELECT `+bucketLevel("$3", "$4", "$5")+` FROM login_budgets AS b WHERE scope = $1 AND key = $2`,
		t.scope, key, t.burst, now, t.perSecond).Scan(&tokens)
	if errors.Is(err, sql.ErrNoRows) { // swept meanwhile: full again
		return t.Take(ctx, key)
	}
	if err != nil {
		return 0, err
	}
	return max(time.Duration((1-tokens)/t.perSecond*float64(time.Second)), time.Millisecond), nil
}

// Return implements Budget.
func (t *PostgresThrottle) Return(ctx context.Context, key string) error {
	if t.burst == 0 {
		return nil
	}
	_, err := t.db.ExecContext(ctx, `
		UPDATE login_budgets AS b SET tokens = LEAST($3, `+bucketLevel("$3", "$4", "$5")+` + 1), at = GREATEST(b.at, $4)
		WHERE scope = $1 AND key = $2`, t.scope, key, t.burst, t.now(), t.perSecond)
	return err
}

// sweep deletes the full buckets of the scope, at most once per refill period of a
// whole burst per instance.
func (t *PostgresThrottle) sweep(ctx context.Context, now time.Time) error {
	full := time.Duration(t.burst / t.perSecond * float64(time.Second))
	t.mu.Lock()
	if now.Sub(t.lastSweep) < full {
		t.mu.Unlock()
		return nil
	}
	t.lastSweep = now
	t.mu.Unlock()
	_, err := t.db.ExecContext(ctx, `DELETE FROM login_budgets AS b WHERE scope = $1 AND `+bucketLevel("$2", "$3", "$4")+` >= $2`,
		t.scope, t.burst, now, t.perSecond)
	return err
}

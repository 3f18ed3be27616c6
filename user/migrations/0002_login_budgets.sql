-- The failed-login budgets (PostgresThrottle), shared by every instance: a token
-- bucket per scope ('email', 'addr') and key, as of at. Full buckets are deleted.
CREATE TABLE login_budgets (
    scope  text NOT NULL,
    key    text NOT NULL,
    tokens double precision NOT NULL,
    at     timestamptz NOT NULL,
    PRIMARY KEY (scope, key)
);

-- Carts: one row per user that has one (its lock serialises changes to the cart, so
-- the line limit holds under concurrency), and its lines.
CREATE TABLE carts (
    user_id    text PRIMARY KEY,
    updated_at timestamptz NOT NULL
);

CREATE TABLE cart_items (
    user_id  text NOT NULL REFERENCES carts (user_id) ON DELETE CASCADE,
    sku      text NOT NULL,
    quantity integer NOT NULL CHECK (quantity BETWEEN 1 AND 99),
    added_at timestamptz NOT NULL,
    PRIMARY KEY (user_id, sku)
);

-- Orders and the state of their saga. step is the last step persisted; lease_token
-- and lease_until say which driver may move the saga on, and until when.
CREATE TABLE orders (
    id              text PRIMARY KEY,
    user_id         text NOT NULL,
    email           text NOT NULL,
    status          text NOT NULL CHECK (status IN ('pending', 'confirmed', 'failed', 'cancelled')),
    step            text NOT NULL CHECK (step IN ('created', 'reserved', 'charged', 'committed',
                        'compensating', 'compensated', 'cancelling', 'refunded', 'released')),
    total_amount    bigint NOT NULL CHECK (total_amount >= 0),
    currency        char(3) NOT NULL,
    charge_id       text NOT NULL DEFAULT '',
    from_cart       boolean NOT NULL,
    failure_code    text NOT NULL DEFAULT '',
    failure_message text NOT NULL DEFAULT '',
    lease_token     text NOT NULL DEFAULT '',
    lease_until     timestamptz NOT NULL,
    created_at      timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL
);

CREATE INDEX orders_by_user ON orders (user_id, created_at DESC, id DESC);
-- What the recovery loop scans: sagas not finished.
CREATE INDEX orders_unfinished ON orders (updated_at)
    WHERE status = 'pending' OR step IN ('cancelling', 'refunded');

CREATE TABLE order_items (
    order_id     text NOT NULL REFERENCES orders (id) ON DELETE CASCADE,
    sku          text NOT NULL,
    name         text NOT NULL,
    quantity     integer NOT NULL CHECK (quantity > 0),
    price_amount bigint NOT NULL,
    currency     char(3) NOT NULL,
    PRIMARY KEY (order_id, sku)
);

-- Idempotency-Key of POST /v1/orders, per user; request_hash fingerprints the request
-- (no card number). Kept 24 h.
CREATE TABLE idempotency_keys (
    user_id      text NOT NULL,
    key          text NOT NULL,
    request_hash text NOT NULL,
    -- Deferred: the key is written first, so a concurrent duplicate waits on it.
    order_id     text NOT NULL REFERENCES orders (id) ON DELETE CASCADE DEFERRABLE INITIALLY DEFERRED,
    created_at   timestamptz NOT NULL,
    PRIMARY KEY (user_id, key)
);

CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at);

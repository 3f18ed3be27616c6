-- Only the brand and last four digits of a card are kept: the full number and the CVC
-- never reach the database.
CREATE TABLE charges (
    id           text PRIMARY KEY,
    -- One charge per order: the unique constraint is what makes charging idempotent
    -- across instances.
    order_id     text NOT NULL UNIQUE,
    user_id      text NOT NULL,
    status       text NOT NULL CHECK (status IN ('succeeded', 'declined', 'refunded')),
    decline_code text NOT NULL DEFAULT '',
    amount       bigint NOT NULL CHECK (amount > 0),
    currency     char(3) NOT NULL,
    card_brand   text NOT NULL,
    card_last4   char(4) NOT NULL,
    created_at   timestamptz NOT NULL,
    refunded_at  timestamptz
);

CREATE TABLE ledger_entries (
    id         bigserial PRIMARY KEY,
    charge_id  text NOT NULL REFERENCES charges (id),
    order_id   text NOT NULL,
    kind       text NOT NULL CHECK (kind IN ('charge', 'refund')),
    amount     bigint NOT NULL CHECK (amount > 0),
    currency   char(3) NOT NULL,
    created_at timestamptz NOT NULL,
    -- A charge moves money in once and out at most once, whatever the code does.
    UNIQUE (charge_id, kind)
);

CREATE INDEX ledger_entries_order_id ON ledger_entries (order_id);

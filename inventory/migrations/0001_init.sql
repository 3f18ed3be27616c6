CREATE TABLE products (
    sku          text PRIMARY KEY,
    name         text NOT NULL,
    description  text NOT NULL DEFAULT '',
    price_amount bigint NOT NULL CHECK (price_amount > 0),
    currency     char(3) NOT NULL,
    stock        integer NOT NULL CHECK (stock >= 0),
    -- The database itself refuses an oversell: reserved units never exceed stock.
    reserved     integer NOT NULL DEFAULT 0 CHECK (reserved >= 0 AND reserved <= stock),
    created_at   timestamptz NOT NULL,
    updated_at   timestamptz NOT NULL
);

CREATE TABLE reservations (
    order_id   text PRIMARY KEY,
    status     text NOT NULL CHECK (status IN ('reserved', 'committed', 'released', 'expired')),
    expires_at timestamptz NOT NULL,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL
);

CREATE INDEX reservations_due ON reservations (expires_at) WHERE status = 'reserved';

CREATE TABLE reservation_lines (
    order_id     text NOT NULL REFERENCES reservations (order_id) ON DELETE CASCADE,
    sku          text NOT NULL REFERENCES products (sku),
    name         text NOT NULL,
    quantity     integer NOT NULL CHECK (quantity > 0),
    price_amount bigint NOT NULL,
    currency     char(3) NOT NULL,
    PRIMARY KEY (order_id, sku)
);

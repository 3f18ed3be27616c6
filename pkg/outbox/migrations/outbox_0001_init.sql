-- The transactional outbox: events written in the same transaction as the change they
-- announce, published to RabbitMQ by a relay. seq orders events; an aggregate's events
-- are published in seq order, one at a time.
CREATE TABLE outbox (
    seq          bigserial PRIMARY KEY,
    id           text        NOT NULL UNIQUE,
    type         text        NOT NULL,
    aggregate_id text        NOT NULL,
    occurred_at  timestamptz NOT NULL,
    body         bytea       NOT NULL,
    trace        jsonb       NOT NULL DEFAULT '{}',
    created_at   timestamptz NOT NULL DEFAULT now(),
    sent_at      timestamptz
);

-- What the relay scans: the unsent rows, and the unsent rows of one aggregate.
CREATE INDEX outbox_unsent ON outbox (seq) WHERE sent_at IS NULL;
CREATE INDEX outbox_unsent_aggregate ON outbox (aggregate_id, seq) WHERE sent_at IS NULL;
CREATE INDEX outbox_sent ON outbox (sent_at) WHERE sent_at IS NOT NULL;

-- One row per email sent. event_id is unique: the event that caused the email, so a
-- redelivered event can never cause a second one.
CREATE TABLE notifications (
    id        text PRIMARY KEY,
    event_id  text        NOT NULL UNIQUE,
    user_id   text        NOT NULL,
    order_id  text        NOT NULL,
    type      text        NOT NULL CHECK (type IN ('order_confirmed', 'order_cancelled')),
    recipient text        NOT NULL,
    subject   text        NOT NULL,
    body      text        NOT NULL,
    sent_at   timestamptz NOT NULL
);

CREATE INDEX notifications_user ON notifications (user_id, sent_at DESC, id DESC);

CREATE TABLE users (
    id            text PRIMARY KEY,
    email         text NOT NULL UNIQUE,
    name          text NOT NULL,
    role          text NOT NULL CHECK (role IN ('customer', 'admin')),
    password_hash text NOT NULL,
    created_at    timestamptz NOT NULL
);

-- Expand only: instances of the release before this one keep working against it (they
-- neither name the column nor read it, and their inserts take the default), so the first
-- new instance can apply it while old ones serve. Adding a column with a constant default
-- rewrites nothing; it needs the table's lock for a moment, and lock_timeout keeps that
-- wait from queueing the shop's queries behind it for long: the instance fails to start
-- instead, and a rolling restart stops there with the old instances still serving.
SET LOCAL lock_timeout = '3s';

ALTER TABLE products ADD COLUMN category text NOT NULL DEFAULT '';

-- The catalogue filtered by category pages in SKU order. Built inside the migration's
-- transaction (CONCURRENTLY cannot be), which holds writes to products while it runs:
-- a catalogue is small.
CREATE INDEX products_category_sku ON products (category, sku);

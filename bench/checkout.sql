-- One checkout as the services write it, straight on PostgreSQL: the ceiling the
-- checkout through the gateway is compared with (bench/run.sh runs it with pgbench).
-- Order, inventory and payment keep separate databases in the stack; here their
-- tables share one. The statements are the ones the stores send for a checkout with
-- its items in the request (what loadgen's checkout sends), step by step: the
-- idempotency key looked up → the product priced → order created (key, order and items
-- in one statement) → stock reserved →
-- earlier charge looked up, charged → reservation committed → order confirmed with its
-- event in the outbox → event marked sent. The relay marks events sent in batches, after
-- a claim query, off the request path; here one UPDATE per event stands for that work.
-- bench/run.sh runs it with pgbench -M prepared: the services prepare every statement
-- with arguments once per connection too (pkg/postgres).
\set p random(0, 15)
\set n random(1, 2000000000)
SELECT request_hash, order_id FROM idempotency_keys
  WHERE user_id = ('u' || :client_id) AND key = ('o' || :client_id || '-' || :n) AND created_at >= now() - interval '24 hours';
SELECT sku, name, description, price_amount, currency, stock, reserved, created_at, updated_at FROM products WHERE sku = 'pg-' || :p;
WITH k AS (
    INSERT INTO idempotency_keys (user_id, key, request_hash, order_id, created_at)
    VALUES (('u' || :client_id), ('o' || :client_id || '-' || :n), 'hash', ('o' || :client_id || '-' || :n), now())
    ON CONFLICT (user_id, key) DO UPDATE SET request_hash = EXCLUDED.request_hash, order_id = EXCLUDED.order_id, created_at = EXCLUDED.created_at
      WHERE idempotency_keys.created_at < now() - interval '24 hours'
    RETURNING order_id
  ), o AS (
    INSERT INTO orders (id, user_id, email, status, step, total_amount, currency, charge_id, from_cart,
        failure_code, failure_message, created_at, updated_at, lease_token, lease_until)
    SELECT ('o' || :client_id || '-' || :n), ('u' || :client_id), 'bench@kitshop.test', 'pending', 'created', 500, 'EUR', '', false, '', '',
        now(), now(), 'lease', now() + interval '30 seconds' FROM k
    RETURNING id
  ), i AS (
    INSERT INTO order_items (order_id, sku, name, quantity, price_amount, currency)
    SELECT o.id, it.sku, it.name, it.quantity, it.price_amount, it.currency
    FROM o, unnest(ARRAY['pg-' || :p], ARRAY['Bench kit'], ARRAY[1], ARRAY[500::bigint], ARRAY['EUR']) AS it(sku, name, quantity, price_amount, currency)
  )
  SELECT count(*) FROM o;
BEGIN;
INSERT INTO reservations (order_id, status, expires_at, created_at, updated_at)
  VALUES (('o' || :client_id || '-' || :n), 'reserved', now() + interval '15 minutes', now(), now()) ON CONFLICT (order_id) DO NOTHING;
UPDATE products SET reserved = reserved + 1, updated_at = now()
  WHERE sku = 'pg-' || :p AND stock - reserved >= 1 RETURNING name, price_amount, currency;
INSERT INTO reservation_lines (order_id, sku, name, quantity, price_amount, currency)
  VALUES (('o' || :client_id || '-' || :n), 'pg-' || :p, 'Bench kit', 1, 500, 'EUR');
COMMIT;
WITH o AS (UPDATE orders SET status = 'pending', step = 'reserved', charge_id = charge_id, failure_code = '', failure_message = '',
    updated_at = now(), lease_until = now() + interval '30 seconds'
    WHERE id = ('o' || :client_id || '-' || :n) AND lease_token = 'lease' AND step = 'created' RETURNING id, user_id, email, status, step, total_amount, currency, charge_id, from_cart, failure_code, failure_message, created_at, updated_at)
  SELECT o.*, i.sku, i.name, i.quantity, i.price_amount, i.currency FROM o LEFT JOIN order_items i ON i.order_id = o.id ORDER BY i.sku;
SELECT id, order_id, user_id, status, decline_code, amount, currency, card_brand, card_last4, created_at, refunded_at
  FROM charges WHERE order_id = ('o' || :client_id || '-' || :n);
WITH c AS (
    INSERT INTO charges (id, order_id, user_id, status, decline_code, amount, currency, card_brand, card_last4, created_at, refunded_at)
    VALUES ('ch-' || ('o' || :client_id || '-' || :n), ('o' || :client_id || '-' || :n), ('u' || :client_id), 'succeeded', '', 500, 'EUR', 'visa', '4242', now(), NULL)
    RETURNING id, order_id, status, amount, currency, created_at)
  INSERT INTO ledger_entries (charge_id, order_id, kind, amount, currency, created_at)
  SELECT id, order_id, 'charge', amount, currency, created_at FROM c WHERE status = 'succeeded';
WITH o AS (UPDATE orders SET status = 'pending', step = 'charged', charge_id = 'ch-' || ('o' || :client_id || '-' || :n), failure_code = '', failure_message = '',
    updated_at = now(), lease_until = now() + interval '30 seconds'
    WHERE id = ('o' || :client_id || '-' || :n) AND lease_token = 'lease' AND step = 'reserved' RETURNING id, user_id, email, status, step, total_amount, currency, charge_id, from_cart, failure_code, failure_message, created_at, updated_at)
  SELECT o.*, i.sku, i.name, i.quantity, i.price_amount, i.currency FROM o LEFT JOIN order_items i ON i.order_id = o.id ORDER BY i.sku;
BEGIN;
SELECT order_id, status, expires_at, created_at, updated_at FROM reservations WHERE order_id = ('o' || :client_id || '-' || :n) FOR UPDATE;
SELECT sku, name, quantity, price_amount, currency FROM reservation_lines WHERE order_id = ('o' || :client_id || '-' || :n) ORDER BY sku;
UPDATE products SET stock = stock - 1, reserved = reserved - 1, updated_at = now() WHERE sku = 'pg-' || :p;
UPDATE reservations SET status = 'committed', updated_at = now() WHERE order_id = ('o' || :client_id || '-' || :n);
COMMIT;
BEGIN;
WITH o AS (UPDATE orders SET status = 'confirmed', step = 'committed', failure_code = '', failure_message = '', updated_at = now(), lease_until = now()
    WHERE id = ('o' || :client_id || '-' || :n) AND lease_token = 'lease' AND step = 'charged' RETURNING id, user_id, email, status, step, total_amount, currency, charge_id, from_cart, failure_code, failure_message, created_at, updated_at)
  SELECT o.*, i.sku, i.name, i.quantity, i.price_amount, i.currency FROM o LEFT JOIN order_items i ON i.order_id = o.id ORDER BY i.sku;
INSERT INTO outbox (id, type, aggregate_id, occurred_at, body, trace)
  VALUES ('ev-' || ('o' || :client_id || '-' || :n), 'order_confirmed', ('o' || :client_id || '-' || :n), now(), convert_to('{"order_id":"' || ('o' || :client_id || '-' || :n) || '"}', 'UTF8'), '{}');
COMMIT;
UPDATE outbox SET sent_at = now() WHERE id = 'ev-' || ('o' || :client_id || '-' || :n);

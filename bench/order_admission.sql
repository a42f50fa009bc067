-- pgbench script: the SQL of one order admission exactly as the app runs it for the bench's
-- orders (one line of qty 1, distributor with no managers to notify, auth already cached),
-- statement for statement and in the same order — see handlers/admission.py. pgbench runs it
-- with -M prepared, as asyncpg prepares the app's statements. tests/test_bench_smoke.py checks
-- it against the statements the app really sends, so the two cannot drift apart.
-- Variables from `pgbench -D`: nsku, wid (the warehouse). Each client is one distributor (its id = client_id + 1,
-- its user the same id), as each app bench client is; stock row ids equal product ids.
\set sid random(1, :nsku)
\set did :client_id + 1
BEGIN;
SELECT id, name, level, region, status, credit_limit, payment_terms, contact, phone, address,
       exposure FROM distributor WHERE id = :did FOR NO KEY UPDATE;
SELECT p.id AS id, p.sku AS sku, p.name AS name, p.category AS category, p.status AS status, q.price AS price,
       q.price_list_id AS price_list_id, q.priority AS priority, q.level AS level, q.region AS region,
       q.valid_from AS valid_from
  FROM product p LEFT JOIN (SELECT i.product_id AS product_id, i.price AS price, i.price_list_id AS price_list_id,
       pl.priority AS priority, pl.level AS level, pl.region AS region, pl.valid_from AS valid_from
       FROM price_list_item i JOIN price_list pl ON pl.id = i.price_list_id
       WHERE 1 = 1 AND pl.valid_from <= (now() AT TIME ZONE 'Asia/Shanghai')::date
         AND (pl.valid_to IS NULL OR pl.valid_to >= (now() AT TIME ZONE 'Asia/Shanghai')::date)
         AND (pl.level IS NULL OR pl.level = 1) AND (pl.region IS NULL OR pl.region = '华东')) q
  ON q.product_id = p.id WHERE p.sku = ANY(ARRAY['B-' || lpad(:sid::text, 5, '0')]::text[]);
SELECT id, kind, product_id, category, discount_rate, buy_n, get_m FROM promotion
  WHERE active AND valid_from <= (now() AT TIME ZONE 'Asia/Shanghai')::date
    AND (valid_to IS NULL OR valid_to >= (now() AT TIME ZONE 'Asia/Shanghai')::date)
    AND (level IS NULL OR level = 1) AND (region IS NULL OR region = '华东')
    AND (product_id = ANY(ARRAY[:sid::int]) OR (product_id IS NULL AND (category IS NULL OR category = ANY(ARRAY['螺纹钢']::text[]))));
-- the credit check reads the exposure kept on the locked row; the new order adds to it
UPDATE distributor SET exposure = exposure + 10.00::numeric WHERE id = :did;
INSERT INTO "sales_order" ("number", "distributor_id", "placed_by_id", "status", "total_amount", "discount_amount",
                           "shipped_amount", "ship_to", "note", "approved_at", "created_at", "updated_at")
  VALUES ('~' || substr(md5(random()::text), 1, 19),
          :did, :did, 'pending_review', 10.00, 0.00, 0.00, NULL, NULL, NULL, now(), now())
  RETURNING id \gset
SELECT s.id AS id, s.product_id AS product_id, s.warehouse_id AS warehouse_id, s.on_hand AS on_hand,
       s.reserved AS reserved, w.region AS region, w.distributor_id AS owner_id
  FROM stock s JOIN warehouse w ON w.id = s.warehouse_id
  WHERE s.product_id = ANY(ARRAY[:sid::int]) AND w.active AND (w.distributor_id IS NULL OR w.distributor_id = :did)
  ORDER BY s.id FOR NO KEY UPDATE OF s;
INSERT INTO "order_line" ("order_id", "product_id", "sku", "name", "warehouse_id", "qty", "free_qty", "unit_price",
                          "discount", "amount", "shipped_qty", "returned_qty")
  VALUES (:id, :sid, 'B-' || lpad(:sid::text, 5, '0'), '螺纹钢 HRB400E 压测', :wid, 1, 0, 10.00, 0.00, 10.00, 0, 0)
  RETURNING id, product_id, warehouse_id;
UPDATE stock SET on_hand = on_hand + 0, reserved = reserved + 1, updated_at = now()
  WHERE id = :sid AND on_hand >= reserved + 1 RETURNING on_hand, reserved \gset
INSERT INTO "stock_movement" ("reason", "ref_type", "ref_id", "delta_on_hand", "delta_reserved", "on_hand_after",
                              "reserved_after", "actor_id", "product_id", "warehouse_id", "created_at")
  VALUES ('reserve', 'order', :id::text, 0, 1, :on_hand, :reserved, :did, :sid, :wid, now());
-- the number, drawn last inside the transaction (the day's counter row is locked only for the tail)
WITH c AS (INSERT INTO order_counter (day, last_number) VALUES (to_char(now() AT TIME ZONE 'Asia/Shanghai', 'YYYYMMDD'), 1)
  ON CONFLICT (day) DO UPDATE SET last_number = order_counter.last_number + 1 RETURNING last_number)
  UPDATE sales_order SET number = 'PB' || to_char(now() AT TIME ZONE 'Asia/Shanghai', 'YYYYMMDD')
    || lpad(c.last_number::text, greatest(4, length(c.last_number::text)), '0')
  FROM c WHERE sales_order.id = :id RETURNING sales_order.number AS number;
INSERT INTO "audit_log" ("actor_id", "action", "entity", "entity_id", "before", "after", "request_id", "created_at")
  VALUES (:did, 'order.placed', 'order', :id::text, NULL, '{"number":"PB","total":"10.00"}',
          'f694bc7c3c4a4ce2930d4eedd353b72f', now());
-- the event's outbox row (recipients are resolved later, by the outbox drain)
INSERT INTO "notification_event" ("name", "payload", "created_at")
  VALUES ('order.placed', '{"order_id": 1, "actor_id": 1, "order": {"id": 1, "number": "PB", "status": "pending_review", "total_amount": "10.00", "distributor_id": 1, "distributor_name": "x", "region": "r"}}', now());
INSERT INTO "idempotency_record" ("user_id", "key", "request_hash", "state", "status_code", "response", "created_at",
                                  "expires_at")
  VALUES (:did, 'pgbench-' || :id::text, 'ef086c204bbf19aebe7415509a25382fba046422641c27d32c1e008fce489975', 'done', 201,
          -- the stored response: JSON text of the app's size (pgbench would read ':' inside a
          -- literal as a variable, hence chr(58))
          ('{"text"' || chr(58) || '"' || repeat('x', 690) || '"}')::jsonb,
          now(), now() + interval '1 day')
  ON CONFLICT ("user_id", "key") DO NOTHING RETURNING id;
COMMIT;

-- pgbench script: the bare SQL of one order admission, run at the same concurrency as the
-- app in bench/order_admission.py (variables come from `pgbench -D`: nsku, wid, did, uid).
-- Stock row ids equal product ids in the bench database (seeded in that order).
\set sid random(1, :nsku)
BEGIN;
UPDATE stock SET reserved = reserved + 1, updated_at = now()
  WHERE id = :sid AND on_hand >= reserved + 1
  RETURNING on_hand, reserved \gset
INSERT INTO sales_order (number, distributor_id, placed_by_id, status, total_amount, discount_amount,
                         shipped_amount, created_at, updated_at)
  VALUES ('PB' || nextval('bench_order_no'), :did, :uid, 'pending_review', 10.00, 0, 0, now(), now());
INSERT INTO order_line (order_id, product_id, sku, name, warehouse_id, qty, unit_price, discount, amount,
                        shipped_qty, returned_qty, free_qty)
  VALUES (currval(pg_get_serial_sequence('sales_order', 'id')), :sid, 'BENCH', 'bench', :wid, 1, 10.00, 0,
          10.00, 0, 0, 0);
INSERT INTO stock_movement (warehouse_id, product_id, reason, ref_type, ref_id, delta_on_hand, delta_reserved,
                            on_hand_after, reserved_after, created_at)
  VALUES (:wid, :sid, 'reserve', 'order', currval(pg_get_serial_sequence('sales_order', 'id'))::text, 0, 1,
          :on_hand, :reserved, now());
COMMIT;

\set k random(1, 100000)
\set v random(1, 1000000)
UPDATE kv SET v = :v WHERE k = :k;

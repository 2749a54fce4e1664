\set v random(1, 1000000000)
INSERT INTO w (c, v) VALUES (:client_id, :v);

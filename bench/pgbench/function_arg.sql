\set x random(-1000000, 1000000)
SELECT abs(:x);

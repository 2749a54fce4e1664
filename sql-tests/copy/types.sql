-- Every type ciab stores, with the values that COPY must escape or quote.
-- Loaded into PostgreSQL 15 by capture.sh and into ciab by the copy tests;
-- both must print the same COPY output.
SET TimeZone = 'UTC';
CREATE TABLE copy_types (
    id integer PRIMARY KEY,
    i2 smallint,
    i8 bigint,
    f4 real,
    f8 double precision,
    num numeric(12,3),
    t text,
    vc varchar(20),
    ch char(4),
    b boolean,
    by bytea,
    d date,
    tm time,
    ts timestamp,
    tz timestamptz,
    iv interval,
    u uuid,
    j json,
    jb jsonb,
    ta text[],
    ia integer[]
);
INSERT INTO copy_types VALUES
    (1, 1, 10000000000, 1.5, 0.1, 12345.678, 'plain', 'v', 'ab', true, '\x0001ff',
     '2024-02-29', '12:34:56.789', '2024-02-29 12:34:56.789', '2024-02-29 12:34:56.789+02',
     '1 year 2 mons 3 days 04:05:06.5', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11',
     '{"b": 1,  "a": [1, 2]}', '{"b": 1,  "a": [1, 2]}', '{a,"b c"}', '{1,NULL,-3}'),
    (2, -32768, -9223372036854775808, -0.25, 1e300, -0.001,
     E'tab\there, newline\nthere, backslash\\ and "quotes", comma,', 'semi;colon', 'x',
     false, '\x', '0001-01-01', '00:00:00', '1999-12-31 23:59:59', '1970-01-01 00:00:00+00',
     '-1 days -00:00:01', '00000000-0000-0000-0000-000000000000', '[]', '{}',
     ARRAY[E'tab\there', 'quote"d', NULL, E'back\\slash', '', 'comma,', E'new\nline'], '{}'),
    (3, NULL, NULL, NULL, NULL, NULL, '', '', '', NULL, NULL, NULL, NULL, NULL, NULL, NULL,
     NULL, NULL, NULL, NULL, NULL),
    (4, 0, 0, 'Infinity', '-Infinity', 0, E'\\.', E'carriage\rreturn', 'éé', true, '\x5c2c',
     '9999-12-31', '23:59:59.999999', '2000-01-01 00:00:00', '2038-01-19 03:14:07+00', '0',
     'ffffffff-ffff-ffff-ffff-ffffffffffff', '"text"', '[1, "two", null, true]', ARRAY['NULL', '{}'],
     '{2147483647}');

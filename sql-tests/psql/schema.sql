CREATE TABLE accounts (
    id integer PRIMARY KEY,
    name varchar(40) NOT NULL,
    balance numeric(12,2) DEFAULT 0,
    opened date,
    code char(3) UNIQUE
);
CREATE INDEX accounts_name_idx ON accounts (name);
CREATE TABLE events (at timestamp NOT NULL, kind text, payload jsonb, PRIMARY KEY (at, kind));
CREATE SCHEMA sales;
CREATE TABLE sales.orders (id bigint PRIMARY KEY, account integer, total double precision);
CREATE VIEW rich AS SELECT id, balance FROM accounts WHERE balance > 1000;

-- TPC-H tables with the column types tpchgen-cli writes to Parquet, and the
-- primary keys of the TPC-H specification. Loaded the same way into ciab
-- and PostgreSQL.
CREATE TABLE region (r_regionkey bigint PRIMARY KEY, r_name varchar NOT NULL, r_comment varchar);
CREATE TABLE nation (n_nationkey bigint PRIMARY KEY, n_name varchar NOT NULL, n_regionkey bigint NOT NULL, n_comment varchar);
CREATE TABLE part (p_partkey bigint PRIMARY KEY, p_name varchar NOT NULL, p_mfgr varchar NOT NULL, p_brand varchar NOT NULL, p_type varchar NOT NULL, p_size integer NOT NULL, p_container varchar NOT NULL, p_retailprice numeric(15,2) NOT NULL, p_comment varchar);
CREATE TABLE supplier (s_suppkey bigint PRIMARY KEY, s_name varchar NOT NULL, s_address varchar NOT NULL, s_nationkey bigint NOT NULL, s_phone varchar NOT NULL, s_acctbal numeric(15,2) NOT NULL, s_comment varchar);
CREATE TABLE partsupp (ps_partkey bigint NOT NULL, ps_suppkey bigint NOT NULL, ps_availqty integer NOT NULL, ps_supplycost numeric(15,2) NOT NULL, ps_comment varchar, PRIMARY KEY (ps_partkey, ps_suppkey));
CREATE TABLE customer (c_custkey bigint PRIMARY KEY, c_name varchar NOT NULL, c_address varchar NOT NULL, c_nationkey bigint NOT NULL, c_phone varchar NOT NULL, c_acctbal numeric(15,2) NOT NULL, c_mktsegment varchar NOT NULL, c_comment varchar);
CREATE TABLE orders (o_orderkey bigint PRIMARY KEY, o_custkey bigint NOT NULL, o_orderstatus varchar NOT NULL, o_totalprice numeric(15,2) NOT NULL, o_orderdate date NOT NULL, o_orderpriority varchar NOT NULL, o_clerk varchar NOT NULL, o_shippriority integer NOT NULL, o_comment varchar);
CREATE TABLE lineitem (l_orderkey bigint NOT NULL, l_partkey bigint NOT NULL, l_suppkey bigint NOT NULL, l_linenumber integer NOT NULL, l_quantity numeric(15,2) NOT NULL, l_extendedprice numeric(15,2) NOT NULL, l_discount numeric(15,2) NOT NULL, l_tax numeric(15,2) NOT NULL, l_returnflag varchar NOT NULL, l_linestatus varchar NOT NULL, l_shipdate date NOT NULL, l_commitdate date NOT NULL, l_receiptdate date NOT NULL, l_shipinstruct varchar NOT NULL, l_shipmode varchar NOT NULL, l_comment varchar, PRIMARY KEY (l_orderkey, l_linenumber));

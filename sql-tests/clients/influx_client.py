"""InfluxDB's official Python client (influxdb-client, the v2 API) writing
to ciab's HTTP endpoint as it would to InfluxDB, read back over the
PostgreSQL wire with psycopg.
Usage: influx_client.py HOST PG_PORT HTTP_PORT (server/tests/it/clients.rs runs it).
"""
import datetime
import sys

import psycopg
from influxdb_client import InfluxDBClient, Point, WritePrecision
from influxdb_client.client.write_api import SYNCHRONOUS
from influxdb_client.rest import ApiException

HOST, PG_PORT, HTTP_PORT = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
DSN = f"host={HOST} port={PG_PORT} user=ciab dbname=ciab"
T0 = datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc)


def check(name, got, want):
    if got != want:
        raise AssertionError(f"{name}: got {got!r}, want {want!r}")


with InfluxDBClient(url=f"http://{HOST}:{HTTP_PORT}", token="any", org="any") as client:
    check("ping", client.ping(), True)
    write = client.write_api(write_options=SYNCHRONOUS)
    points = [
        Point("weather").tag("station", f"s{i % 3}").field("temp", 20.5 + i).field("rain", i)
        .field("note", f"reading {i}").time(T0 + datetime.timedelta(minutes=i), WritePrecision.MS)
        for i in range(6)
    ]
    write.write(bucket="ciab", record=points, write_precision=WritePrecision.MS)
    # Line protocol as text, and a new field on the same measurement.
    write.write(bucket="ciab", record="weather,station=s9 temp=1.25,wind=3i 1767225600000000000")
    try:
        write.write(bucket="nowhere", record="weather temp=1")
        raise AssertionError("a write to a missing bucket succeeded")
    except ApiException as e:
        check("missing bucket status", e.status, 404)
    try:
        write.write(bucket="ciab", record='weather temp="warm"')
        raise AssertionError("a field type conflict was accepted")
    except ApiException as e:
        check("type conflict status", e.status, 400)

with psycopg.connect(DSN, autocommit=True) as conn:
    rows = conn.execute(
        "SELECT time, station, temp, rain, note, wind FROM weather ORDER BY time, station").fetchall()
    check("rows", len(rows), 7)
    check("first row", rows[0], (T0, "s0", 20.5, 0, "reading 0", None))
    check("the text write", rows[1], (T0, "s9", 1.25, None, None, 3))
    check("last row", rows[-1], (T0 + datetime.timedelta(minutes=5), "s2", 25.5, 5, "reading 5", None))
    types = dict(conn.execute(
        "SELECT column_name, data_type FROM information_schema.columns "
        "WHERE table_name = 'weather'").fetchall())
    check("types", types, {"time": "timestamp with time zone", "station": "text",
                           "temp": "double precision", "rain": "bigint", "note": "text",
                           "wind": "bigint"})
print("ok")

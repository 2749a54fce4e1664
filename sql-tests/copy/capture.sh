#!/bin/sh
# Records PostgreSQL 15's COPY TO output for types.sql, one file per line of
# commands.txt (expected/1.out, 2.out, ...). Usage: capture.sh HOST PORT
# against an empty database named ciab on a PostgreSQL 15 server.
set -eu
here=$(dirname "$0")
psql="/usr/lib/postgresql/15/bin/psql -X -q -v ON_ERROR_STOP=1 -h $1 -p $2 -U postgres -d ciab"
$psql -c 'DROP TABLE IF EXISTS copy_types'
$psql -f "$here/types.sql"
mkdir -p "$here/expected"
n=0
while IFS= read -r command; do
    n=$((n + 1))
    PGTZ=UTC $psql -c "$command" > "$here/expected/$n.out"
done < "$here/commands.txt"

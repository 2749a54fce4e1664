#!/usr/bin/env bash
# Records what psql prints against a real PostgreSQL 15 for the catalog
# commands in commands.txt over the objects of schema.sql: the expected
# output that server/tests/it/psql.rs compares ciab's with.
#
#   sql-tests/psql/capture.sh HOST PORT   # an empty database "ciab", user postgres
set -euo pipefail
cd "$(dirname "$0")"
host=$1 port=$2
psql=(/usr/lib/postgresql/15/bin/psql -X -P pager=off -h "$host" -p "$port" -U postgres -d ciab)
"${psql[@]}" -q -f schema.sql
while IFS= read -r command; do
  echo "===== $command"
  if [ "$command" = '\l' ]; then
    # PostgreSQL also lists postgres, template0 and template1: compare the
    # header and the row of database ciab, unaligned.
    "${psql[@]}" -A -c "$command" 2>&1 | grep -E '^(Name|ciab)\|'
  else
    "${psql[@]}" -c "$command" 2>&1
  fi
done < commands.txt > expected.out

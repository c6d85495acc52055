#!/usr/bin/env bash
# Start a Virtuoso Open Source server for guideline-kg on 127.0.0.1, with its own database
# folder and configuration; idempotent (does nothing when it already answers).
#
#   scripts/virtuoso.sh            install (Debian virtuoso-opensource) if missing, start, wait, set the password
#
# Settings (environment):
#   VIRTUOSO_DIR       database folder            (default: ${TMPDIR:-/tmp}/guideline-kg-virtuoso)
#   VIRTUOSO_HTTP_PORT SPARQL/HTTP port           (default: 8891, beside a system Virtuoso on 8890)
#   VIRTUOSO_SQL_PORT  isql port                  (default: 1112)
#   VIRTUOSO_PASSWORD  password of the dba user   (default: guideline-kg)
#
# Endpoints: http://127.0.0.1:$VIRTUOSO_HTTP_PORT/sparql (read), /sparql-auth (update, Digest auth)
# and /sparql-graph-crud-auth (Graph Store Protocol, Digest auth), user dba.
set -euo pipefail

DIR="${VIRTUOSO_DIR:-${TMPDIR:-/tmp}/guideline-kg-virtuoso}"
HTTP_PORT="${VIRTUOSO_HTTP_PORT:-8891}"
SQL_PORT="${VIRTUOSO_SQL_PORT:-1112}"
PASSWORD="${VIRTUOSO_PASSWORD:-guideline-kg}"
URL="http://127.0.0.1:${HTTP_PORT}/sparql"

answers() {
  curl -fsS -o /dev/null --max-time 5 -G "$URL" --data-urlencode 'query=ASK {}' \
       -H 'Accept: application/sparql-results+json' 2>/dev/null
}

if answers; then
  echo "virtuoso: already answering at $URL"
  exit 0
fi

if ! command -v virtuoso-t >/dev/null || ! command -v isql-vt >/dev/null; then
  echo "virtuoso: installing the Debian package virtuoso-opensource"
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends virtuoso-opensource >/dev/null
  # the package may start its own service on the default ports; ours uses its own folder
fi

mkdir -p "$DIR"
INI="$DIR/virtuoso.ini"
SHARE=/usr/share/virtuoso-opensource-7
VSP=/var/lib/virtuoso-opensource-7/vsp
cat >"$INI" <<EOF
; written by guideline-kg scripts/virtuoso.sh
[Database]
DatabaseFile       = $DIR/virtuoso.db
ErrorLogFile       = $DIR/virtuoso.log
LockFile           = $DIR/virtuoso.lck
TransactionFile    = $DIR/virtuoso.trx
xa_persistent_file = $DIR/virtuoso.pxa
ErrorLogLevel      = 7
FileExtend         = 200
MaxCheckpointRemap = 2000
Striping           = 0
TempStorage        = TempDatabase

[TempDatabase]
DatabaseFile       = $DIR/virtuoso-temp.db
TransactionFile    = $DIR/virtuoso-temp.trx
MaxCheckpointRemap = 2000
Striping           = 0

[Parameters]
ServerPort           = 127.0.0.1:$SQL_PORT
DisableUnixSocket    = 1
CheckpointInterval   = 60
CaseMode             = 2
AllowOSCalls         = 0
DirsAllowed          = ., $SHARE/vad
VADInstallDir        = $SHARE/vad/
NumberOfBuffers      = 10000
MaxDirtyBuffers      = 6000
MaxQueryMem          = 512M

[HTTPServer]
ServerPort           = 127.0.0.1:$HTTP_PORT
ServerRoot           = $VSP
ServerThreads        = 10
MaxClientConnections = 10
EnabledDavVSP        = 0
Charset              = UTF-8

[SPARQL]
ResultSetMaxRows           = 100000
MaxQueryCostEstimationTime = 400
MaxQueryExecutionTime      = 60
EOF

echo "virtuoso: starting in $DIR (http 127.0.0.1:$HTTP_PORT, sql 127.0.0.1:$SQL_PORT)"
(cd "$DIR" && virtuoso-t +configfile "$INI" +wait >/dev/null)

for _ in $(seq 1 120); do
  if answers; then break; fi
  sleep 1
done
if ! answers; then
  echo "virtuoso: did not answer at $URL within 120 s; see $DIR/virtuoso.log" >&2
  exit 1
fi

# A new database has the password dba; set ours (a no-op when it is already set).
if isql-vt "127.0.0.1:$SQL_PORT" dba dba "exec=set password \"dba\" \"$PASSWORD\";" >/dev/null 2>&1; then
  echo "virtuoso: dba password set"
fi
if ! isql-vt "127.0.0.1:$SQL_PORT" dba "$PASSWORD" "exec=select 1;" >/dev/null 2>&1; then
  echo "virtuoso: cannot log in as dba with VIRTUOSO_PASSWORD" >&2
  exit 1
fi
echo "virtuoso: ready at $URL (writes: /sparql-graph-crud-auth, user dba)"

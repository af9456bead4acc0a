#!/bin/bash
# RAFT on documents that come without questions (issue 12): a teacher model writes them.
# The corpus is ../shared/data/docs-corpus without its repeated renderings: the Debian manuals
# as HTML (the Policy, the Reference, the Developer's Reference by chapter, the FFTW manual),
# the R manuals and the gnuplot manual as PDF, and Docling's test documents (no groundtruth
# Markdown). The same book as PDF, HTML and EPUB would put one passage in the KB three times.
#   1. `raft questions`: the teacher (TEACHER, the default answer model) reads CHUNKS seeded
#      chunks and proposes PER_CHUNK questions each; only those whose quote is the chunk's text
#      and whose answer is in the quote are kept. Its report (kept per minute of teacher time,
#      drops by reason) goes to the results.
#   2. The kept questions split 50/50 by chunk (a seeded draw): no held-out question's
#      passage is ever an oracle in training. The documents are shared, as in the paper's
#      setting (the exam is open-book on documents known in advance).
#   3. RAFT: `raft build` on the training half (oracle among DISTRACTORS hard negatives, shown
#      with share P, answer-only targets), `train sft` STEPS steps of 4 examples.
#   4. `ragtune compare` on the held-out half (up to SAMPLE): RAG on the base model against the
#      RAFT adapter, exact match against the teacher's answer, paired bootstrap CIs.
# Run from the repository root: bench/raft/docs.sh [WORK_DIR] [RAGTUNE]
# Knobs (environment): TEACHER, CHUNKS (300), PER_CHUNK (3), STEPS (100), DISTRACTORS (1),
# P (0.8), SAMPLE (200), EXTRA (more --variant arguments, e.g.
# "--variant rag@qwen2.5-coder-0.5b-instruct"), RESULTS (the results folder).
set -euo pipefail
W=${1:-/tmp/raft_docs}
R=${2:-target/release/ragtune}
CORPUS=${CORPUS:-../shared/data/docs-corpus}
TEACHER=${TEACHER:-qwen2.5-coder-0.5b-instruct}
CHUNKS=${CHUNKS:-300}
PER_CHUNK=${PER_CHUNK:-3}
STEPS=${STEPS:-100}
DISTRACTORS=${DISTRACTORS:-1}
P=${P:-0.8}
SAMPLE=${SAMPLE:-200}
BASE=smollm2-135m-instruct
OUT=${RESULTS:-bench/results/raft/docs}
QTAG=$TEACHER-c$CHUNKS-k$PER_CHUNK
TAG=$QTAG-d$DISTRACTORS-p$P-s$STEPS
mkdir -p "$W" "$OUT"
# shellcheck source=bench/raft/lib.sh
source "$(dirname "$0")/lib.sh"

if [ ! -d "$W/corpus" ]; then
    D="$CORPUS/debian"
    mkdir -p "$W/corpus.partial"
    (
        cd "$W/corpus.partial"
        mkdir policy reference developers fftw r gnuplot docling
        find "$OLDPWD/$D/debian-policy/html" -name '*.html' ! -name genindex.html -exec cp -t policy {} +
        find "$OLDPWD/$D/debian-reference-en" -name '*.html' -exec cp -t reference {} +
        find "$OLDPWD/$D/developers-reference" -name '*.html' ! -name developers-reference.html \
            -exec cp -t developers {} +
        find "$OLDPWD/$D/fftw3-manual" -name '*.html' -exec cp -t fftw {} +
        cp -t r "$OLDPWD/$D"/r-manuals/*.pdf
        cp -t gnuplot "$OLDPWD/$D/gnuplot/gnuplot.pdf"
        find "$OLDPWD/$CORPUS/docling-testdata" -type f ! -path '*/groundtruth/*' \
            ! -name '*.txt' ! -name '*.md' -exec cp -t docling {} +
    )
    mv "$W/corpus.partial" "$W/corpus"
fi
[ -d "$W/kb" ] || $R ingest "$W/corpus" --kb "$W/kb" --stats | tee "$OUT/ingest.txt"

Q="$W/questions_$QTAG.jsonl"
[ -f "$Q" ] || /usr/bin/time -v -o "$W/questions_$QTAG.time" $R raft questions --kb "$W/kb" \
    --model "$TEACHER" --chunks "$CHUNKS" --per-chunk "$PER_CHUNK" --seed 0 --threads 2 \
    --out "$Q" | tee "$OUT/questions_$QTAG.txt"
cp "$Q" "$W/questions_$QTAG.time" "$OUT/"

# Half of the chunks that questions were kept for train, the other half is held out.
[ -f "$W/heldout_$QTAG.jsonl" ] || python3 - "$Q" "$W/train_$QTAG.jsonl" "$W/heldout_$QTAG.jsonl" <<'PY'
import json, random, sys
rows = [json.loads(line) for line in open(sys.argv[1])]
chunks = sorted({r["chunk_id"] for r in rows})
random.Random(0).shuffle(chunks)
train = set(chunks[: len(chunks) // 2])
for path, keep in ((sys.argv[2], True), (sys.argv[3], False)):
    part = [r for r in rows if (r["chunk_id"] in train) == keep]
    with open(path, "w") as f:
        f.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in part)
    print(f"{path}: {len(part)} questions")
PY

B="$W/raft_$TAG"
[ -f "$B/manifest.json" ] || $R raft build --kb "$W/kb" --questions "$W/train_$QTAG.jsonl" \
    --out "$B" --distractors "$DISTRACTORS" --p "$P" --answer-format answer --seed 0
RUN="$W/run_raft_$TAG"
train_adapter "$B/train.jsonl" "$RUN" 1536

# shellcheck disable=SC2086 # EXTRA is a list of arguments
$R compare --questions "$W/heldout_$QTAG.jsonl" --kb "$W/kb" --sample "$SAMPLE" --seed 0 \
    --out "$W/report_$TAG" --threads 2 --variant "rag@$BASE" --variant "raft:$RUN" ${EXTRA:-} \
    | tee "$OUT/table_$TAG.txt"
keep_comparison "$W/report_$TAG" "$TAG"
cp "$B/manifest.json" "$OUT/build_manifest_$TAG.json"
keep_training "$RUN" "$TAG"

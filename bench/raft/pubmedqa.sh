#!/bin/bash
# RAFT against RAG on PubMedQA (issue 12): the paper's own medical data set, yes/no/maybe
# questions scored by accuracy on the label. The shared half of PQA-L (500 labelled instances)
# is split 50/50 by a seeded draw of PubMed ids; the corpus is all 500 abstracts (one file
# each, their paragraphs in order; ingest's default chunks, which MiniLM's 256-token window
# caps: 900 chunks, most abstracts two), so at answer time retrieval has to find the question's
# abstract among the others. The oracle is the chunk holding most of the abstract. RAFT: the training half's questions, each with its abstract's
# passage among DISTRACTORS hard negatives (other abstracts only), shown with share P, the label
# as the target (`raft build --answer-format answer`: a label has no span to quote). Then
# `ragtune compare` answers SAMPLE seeded held-out questions through RAG on the base model and
# the RAFT adapter, one at a time, and reports accuracy with paired bootstrap CIs, and per gold
# label what each variant got right and said, beside always saying the commonest label.
# Run from the repository root: bench/raft/pubmedqa.sh [WORK_DIR] [RAGTUNE]
# Knobs (environment): STEPS (60), DISTRACTORS (1), P (0.8), SAMPLE (150), PQAL (the file),
# EXTRA (more --variant arguments for the comparison, e.g. "--variant rag@qwen2.5-coder-0.5b-instruct"),
# RESULTS (the results folder), STUDENT (the base model RAFT trains and RAG reads with:
# smollm2-135m-instruct; another one's name is added to the run's and the results' names, the
# training data being the same).
set -euo pipefail
W=${1:-/tmp/raft_pubmedqa}
R=${2:-target/release/ragtune}
PQAL=${PQAL:-../shared/data/pubmedqa-pqal/pqal_nontest_500.json}
STEPS=${STEPS:-60}
DISTRACTORS=${DISTRACTORS:-1}
P=${P:-0.8}
SAMPLE=${SAMPLE:-150}
BASE=${STUDENT:-smollm2-135m-instruct}
OUT=${RESULTS:-bench/results/raft/pubmedqa}
TAG=d$DISTRACTORS-p$P-s$STEPS
NAME=$TAG
[ "$BASE" = smollm2-135m-instruct ] || NAME=$TAG-$BASE
mkdir -p "$W" "$OUT"
# shellcheck source=bench/raft/lib.sh
source "$(dirname "$0")/lib.sh"

# The split (train.json, heldout.json: PQA-L subsets) and one text file per abstract.
[ -f "$W/heldout.json" ] || python3 - "$PQAL" "$W" <<'PY'
import collections, json, os, random, sys
src, w = sys.argv[1], sys.argv[2]
data = json.load(open(src))
ids = list(data)
random.Random(0).shuffle(ids)
half = len(ids) // 2
for name, part in (("train.json", ids[:half]), ("heldout.json", ids[half:])):
    json.dump({k: data[k] for k in part}, open(os.path.join(w, name), "w"), ensure_ascii=False)
    labels = collections.Counter(data[k]["final_decision"] for k in part)
    print(f"{name}: {len(part)} questions, labels {dict(labels)}")
os.makedirs(os.path.join(w, "abstracts"), exist_ok=True)
for k, v in data.items():
    with open(os.path.join(w, "abstracts", f"{k}.txt"), "w") as f:
        f.write("\n\n".join(v["CONTEXTS"]) + "\n")
PY
[ -d "$W/kb" ] || $R ingest "$W/abstracts" --kb "$W/kb"

[ -f "$W/raft_$TAG/manifest.json" ] || $R raft build --kb "$W/kb" --questions "$W/train.json" \
    --out "$W/raft_$TAG" --distractors "$DISTRACTORS" --p "$P" --answer-format answer --seed 0
RUN="$W/run_raft_$NAME"
train_adapter "$W/raft_$TAG/train.jsonl" "$RUN" 1536

# shellcheck disable=SC2086 # EXTRA is a list of arguments
$R compare --questions "$W/heldout.json" --kb "$W/kb" --sample "$SAMPLE" --seed 0 \
    --out "$W/report_$NAME" --threads 2 --variant "rag@$BASE" --variant "raft:$RUN" ${EXTRA:-} \
    | tee "$OUT/table_$NAME.txt"
keep_comparison "$W/report_$NAME" "$NAME"
cp "$W/raft_$TAG/manifest.json" "$OUT/build_manifest_$TAG.json"
keep_training "$RUN" "$NAME"

#!/bin/bash
# RAFT against RAG and plain fine-tuning on SQuAD v1.1 dev split by article (issue 12).
# The corpus is every dev paragraph (2,067 files, one knowledge base). Training questions come
# from the even-numbered articles, evaluation questions from the odd-numbered ones, so no
# evaluation paragraph is ever an oracle in training. Every fine-tuned variant gets one budget:
# the same training questions, STEPS optimizer steps of 4 examples, the same LoRA settings.
#   sft      question -> answer, no documents (closed-book)
#   sft_rag  the RAG prompt with the top retrieved passage, questions whose passage was not
#            retrieved left out (the oracle is always present: the paper's DSF+RAG)
#   raft     oracle among DISTRACTORS hard negatives from our retriever, shown with share P,
#            chain-of-thought target quoting the oracle
# Then `ragtune compare` answers SAMPLE seeded held-out questions through RAG (base model) and
# the three adapters, one at a time, and reports paired differences with bootstrap CIs.
# Run from the repository root: bench/raft/run.sh [WORK_DIR] [RAGTUNE]
# Knobs (environment): TRAIN_QUESTIONS (400), STEPS (100), DISTRACTORS (3), P (0.8),
# DISTRACTORS_FROM (retriever), ANSWER_FORMAT (cot, or answer: no chain of thought),
# TARGETS (all), SAMPLE (200), TAG (an ablation's name), ABSTAIN=1 (raft build --abstain),
# SQUAD (the dev file: v1.1 by default; v2.0's unanswerable questions are held out too, so
# the comparison reports abstention; training draws answerable questions only, unless
# UNANSWERABLE=1: then it draws from all of them, and with ABSTAIN=1 the unanswerable ones are
# shown their own passage and taught the refusal; UNANSWERABLE_SHARE, a fraction, fixes their
# share of the TRAIN_QUESTIONS instead of the file's), BASELINES=0
# (train no SFT variants: the comparison is RAG against RAFT), RESULTS (the results folder),
# COMPARE=0 (no comparison) or COMPARE=ablation (answer with this RAFT adapter only and report
# it beside the baseline comparison's runs, the d3-p0.8-retriever one: greedy answers to the
# same seeded questions, so the pairs hold; BASELINE_RUNS names another saved runs.json, e.g.
# bench/results/raft/squad/runs_d3-p0.8-retriever-q400-s100.json for an adapter trained with
# other TRAIN_QUESTIONS or STEPS), RAFT=0 (train no RAFT adapter: with BASELINES=1 and
# COMPARE=ablation, the SFT variants at this budget answer beside a saved comparison),
# ROBUST=1 and ROBUST_SAMPLE (100), RAG=0 (leave RAG on the base model out of the comparison),
# STUDENT (the base model every variant trains and RAG reads with: smollm2-135m-instruct; another
# one's name is added to TAG and to the SFT variants' data and runs).
# A SAMPLE other than 200 adds -nSAMPLE to the comparison's file names.
set -euo pipefail
W=${1:-/tmp/raft_squad}
R=${2:-target/release/ragtune}
DEV=${SQUAD:-../shared/data/squad-v1.1-dev/dev-v1.1.json}
N=${TRAIN_QUESTIONS:-400}
STEPS=${STEPS:-100}
DISTRACTORS=${DISTRACTORS:-3}
P=${P:-0.8}
FROM=${DISTRACTORS_FROM:-retriever}
FORMAT=${ANSWER_FORMAT:-cot}
TARGETS=${TARGETS:-all}
SAMPLE=${SAMPLE:-200}
SUFFIX=""
[ "$FORMAT" = cot ] || SUFFIX="-$FORMAT"
[ "${ABSTAIN:-0}" = 1 ] && SUFFIX="$SUFFIX-abstain"
QSUFFIX=""
[ "${UNANSWERABLE:-0}" = 1 ] && SUFFIX="$SUFFIX-unanswerable" && QSUFFIX="-all"
SHARE=${UNANSWERABLE_SHARE:-}
[ "${UNANSWERABLE:-0}" = 1 ] && [ -n "$SHARE" ] && SUFFIX="$SUFFIX$SHARE" && QSUFFIX="$QSUFFIX$SHARE"
BASE=${STUDENT:-smollm2-135m-instruct}
# Another student's name goes into every file and run of its own (RAFT and SFT alike).
STUDENT_SUFFIX=""
[ "$BASE" = smollm2-135m-instruct ] || STUDENT_SUFFIX="-$BASE"
SUFFIX="$SUFFIX$STUDENT_SUFFIX"
TAG=${TAG:-d${DISTRACTORS}-p${P}-${FROM}${SUFFIX}}
OUT=${RESULTS:-bench/results/raft/squad}
mkdir -p "$W" "$OUT"
# shellcheck source=bench/raft/lib.sh
source "$(dirname "$0")/lib.sh"

[ -f "$W/heldout.json" ] || python3 bench/sft_squad/split.py "$DEV" "$W"
[ -d "$W/paragraphs" ] || python3 bench/compare/paragraphs.py "$DEV" "$W/paragraphs"
[ -d "$W/kb" ] || $R ingest "$W/paragraphs" --kb "$W/kb"

# N seeded training questions with their paragraph, shared by every variant.
Q="$W/train_q$N$QSUFFIX.jsonl"
[ -f "$Q" ] || python3 - "$W/train.json" "$Q" "$N" "${UNANSWERABLE:-0}" "$SHARE" <<'PY'
import json, random, sys
data = json.load(open(sys.argv[1]))
everything = sys.argv[4] == "1"
n = int(sys.argv[3])
qs = [(qa, p["context"]) for a in data["data"] for p in a["paragraphs"] for qa in p["qas"]
      if everything or (qa["answers"] and not qa.get("is_impossible", False))]
random.Random(1).shuffle(qs)
if everything and sys.argv[5]:
    # UNANSWERABLE_SHARE: the first of each kind in the same seeded order, in that proportion.
    unanswerable = lambda q: q[0].get("is_impossible", False) or not q[0]["answers"]
    k = round(n * float(sys.argv[5]))
    qs = [q for q in qs if unanswerable(q)][:k] + [q for q in qs if not unanswerable(q)][: n - k]
    random.Random(1).shuffle(qs)
with open(sys.argv[2], "w") as f:
    for qa, ctx in qs[:n]:
        impossible = qa.get("is_impossible", False)
        f.write(json.dumps({"id": qa["id"], "question": qa["question"],
                            "answers": [] if impossible else [a["text"] for a in qa["answers"]],
                            "is_impossible": impossible, "context": ctx}) + "\n")
PY

BASELINES=${BASELINES:-1}
if [ "$BASELINES" = 1 ]; then
SFT="sft$STUDENT_SUFFIX" SFT_RAG="sft_rag$STUDENT_SUFFIX"
[ -f "$W/${SFT}_q$N.jsonl" ] || $R eval qa "$Q" --kb "$W/kb" --sample 0 --mode closed-book \
    --model $BASE --write-sft "$W/${SFT}_q$N.jsonl" > /dev/null
[ -f "$W/${SFT_RAG}_q$N.jsonl" ] || $R eval qa "$Q" --kb "$W/kb" --sample 0 --mode rag --top-k 1 \
    --model $BASE --write-sft "$W/${SFT_RAG}_q$N.jsonl" > /dev/null
train_adapter "$W/${SFT}_q$N.jsonl" "$W/run_${SFT}_q$N-s$STEPS" 512
train_adapter "$W/${SFT_RAG}_q$N.jsonl" "$W/run_${SFT_RAG}_q$N-s$STEPS" 768
fi

RAFT=${RAFT:-1}
if [ "$RAFT" = 1 ]; then
abstain=()
[ "${ABSTAIN:-0}" = 1 ] && abstain=(--abstain)
[ -f "$W/raft_$TAG/manifest.json" ] || $R raft build --kb "$W/kb" --questions "$Q" \
    --out "$W/raft_$TAG" --distractors "$DISTRACTORS" --p "$P" --distractors-from "$FROM" \
    --answer-format "$FORMAT" --seed 0 "${abstain[@]}"
train_adapter "$W/raft_$TAG/train.jsonl" "$W/run_raft_$TAG-q$N-s$STEPS" 1536
fi

# The adapters this run trained, as compare variants and as run folders.
trained=() runs=()
[ "$BASELINES" = 1 ] && trained+=(--variant "sft:$W/run_${SFT}_q$N-s$STEPS" \
    --variant "sft+rag:$W/run_${SFT_RAG}_q$N-s$STEPS") && runs+=(run_${SFT}_q$N-s$STEPS run_${SFT_RAG}_q$N-s$STEPS)
[ "$RAFT" = 1 ] && trained+=(--variant "raft:$W/run_raft_$TAG-q$N-s$STEPS") && runs+=(run_raft_$TAG-q$N-s$STEPS)
[ "$RAFT" = 1 ] || TAG=baselines$STUDENT_SUFFIX

# The comparison (COMPARE=0 skips it, for the robustness run alone).
if [ "${COMPARE:-1}" = 1 ]; then
rag=()
[ "${RAG:-1}" = 1 ] && rag=(--variant "rag@$BASE")
NAME=$TAG-q$N-s$STEPS
[ "$SAMPLE" = 200 ] || NAME=$NAME-n$SAMPLE
$R compare --questions "$W/heldout.json" --kb "$W/kb" --sample "$SAMPLE" --seed 0 \
    --out "$W/report_$NAME" --threads 2 \
    "${rag[@]}" "${trained[@]}" | tee "$OUT/table_$NAME.txt"
keep_comparison "$W/report_$NAME" "$NAME"
for run in "$W"/run_*q$N-s$STEPS; do
    keep_training "$run" "$(basename "$run")"
done
fi

# An ablation (COMPARE=ablation): only the adapters this run trained answer; their runs join the
# baseline's in one report (`compare --from-runs`), so the paired differences are against the
# same answers.
if [ "${COMPARE:-1}" = ablation ]; then
    BASELINE=${BASELINE_RUNS:-$W/report_d3-p0.8-retriever-q$N-s$STEPS/runs.json}
    [ -f "$BASELINE" ] || { echo "no baseline comparison at $BASELINE: run with COMPARE=1 first" >&2; exit 1; }
    $R compare --questions "$W/heldout.json" --kb "$W/kb" --sample "$SAMPLE" --seed 0 \
        --out "$W/ablation_$TAG-q$N-s$STEPS" --threads 2 "${trained[@]}" > /dev/null
    python3 - "$BASELINE" "$W/ablation_$TAG-q$N-s$STEPS/runs.json" "$W/merged_$TAG-q$N-s$STEPS.json" <<'PY'
import json, sys
base, new = (json.load(open(p)) for p in sys.argv[1:3])
same = ("questions_file", "sample", "seed")
assert all(base[k] == new[k] for k in same), "not the same questions"
names = {r["name"] for r in base["runs"]}
base["runs"] += [r for r in new["runs"] if r["name"] not in names]
json.dump(base, open(sys.argv[3], "w"))
PY
    $R compare --from-runs "$W/merged_$TAG-q$N-s$STEPS.json" --out "$W/report_$TAG-q$N-s$STEPS" \
        | tee "$OUT/table_$TAG-q$N-s$STEPS.txt"
    cp "$W/ablation_$TAG-q$N-s$STEPS/runs.json" "$OUT/runs_$TAG-q$N-s$STEPS.json"
    cp "$W/report_$TAG-q$N-s$STEPS/report.json" "$OUT/report_$TAG-q$N-s$STEPS.json"
    for n in "${runs[@]}"; do
        keep_training "$W/$n" "$n"
    done
fi

# Robustness (ROBUST=1): RAG and RAFT shown 2, 5 and 8 passages, ROBUST_SAMPLE questions.
if [ "${ROBUST:-0}" = 1 ]; then
    rv=()
    for k in 2 5 8; do
        rv+=(--variant "rag@$BASE,top_k=$k" --variant "raft:$W/run_raft_$TAG-q$N-s$STEPS,top_k=$k")
    done
    $R compare --questions "$W/heldout.json" --kb "$W/kb" --sample "${ROBUST_SAMPLE:-100}" --seed 0 \
        --out "$W/robust_$TAG-q$N-s$STEPS" --threads 2 "${rv[@]}" \
        | tee "$OUT/robust_$TAG-q$N-s$STEPS.txt"
    cp "$W/robust_$TAG-q$N-s$STEPS/runs.json" "$OUT/robust_runs_$TAG-q$N-s$STEPS.json"
fi

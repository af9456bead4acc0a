#!/bin/bash
# The fine-tuned variants of the SQuAD comparison (issue 13), each with the same budget:
# SFT (question -> answer, closed-book), SFT on RAG prompts (one retrieved passage, the paper's
# DSF+RAG) and RAFT (oracle among hard-negative distractors, CoT that quotes it), all LoRA on
# SmolLM2-135M-Instruct, trained on the even-numbered articles of SQuAD v1.1 dev; the
# comparison (run.sh) asks questions of the odd-numbered ones.
# Run from the repository root: bench/compare/prepare.sh [WORK_DIR] [RAGTUNE]
set -euo pipefail
W=${1:-/tmp/compare_squad}
R=${2:-target/release/ragtune}
DEV=../shared/data/squad-v1.1-dev/dev-v1.1.json
STEPS=${STEPS:-60}
mkdir -p "$W"
python3 bench/sft_squad/split.py "$DEV" "$W"
# A knowledge base of every dev paragraph (RAFT's oracles and hard negatives come from it).
python3 bench/compare/paragraphs.py "$DEV" "$W/paragraphs"
[ -d "$W/kb" ] || $R ingest "$W/paragraphs" --kb "$W/kb"
# Training data from the training half, 240 seeded questions for every variant.
$R eval qa "$W/train.json" --sample 240 --seed 1 --mode closed-book --model smollm2-135m-instruct --write-sft "$W/sft.jsonl"
$R eval qa "$W/train.json" --sample 240 --seed 1 --mode rag --top-k 1 --model smollm2-135m-instruct --write-sft "$W/sft_rag.jsonl"
python3 - "$W/train.json" "$W/raft_questions.jsonl" <<'PY'
import json, random, sys
data = json.load(open(sys.argv[1]))
qs = [(qa, p["context"]) for a in data["data"] for p in a["paragraphs"] for qa in p["qas"]]
random.Random(1).shuffle(qs)
with open(sys.argv[2], "w") as f:
    for qa, ctx in qs[:240]:
        f.write(json.dumps({"id": qa["id"], "question": qa["question"],
                            "answers": [a["text"] for a in qa["answers"]], "context": ctx}) + "\n")
PY
rm -rf "$W/raft"
$R raft build --kb "$W/kb" --questions "$W/raft_questions.jsonl" --out "$W/raft" --distractors 2 --p 0.8 --seed 0
# One budget: STEPS optimizer steps of 4 examples, rank 8 on q,v, the same learning rate.
common=(--base smollm2-135m-instruct --targets q,v --rank 8 --alpha 16 --lr 5e-4 --warmup-ratio 0.05
        --batch-size 1 --grad-accum 4 --max-steps "$STEPS" --save-every 0 --threads 2)
for v in sft sft_rag; do
    [ -f "$W/run_$v/adapter.gguf" ] || $R train sft --data "$W/$v.jsonl" --out "$W/run_$v" --max-len 768 "${common[@]}"
done
[ -f "$W/run_raft/adapter.gguf" ] || $R train sft --data "$W/raft/train.jsonl" --out "$W/run_raft" --max-len 1024 "${common[@]}"

#!/bin/bash
# The SQuAD comparison (issue 13): 200 seeded questions of the held-out articles through
# closed-book, few-shot and RAG on Qwen2.5 0.5B, RAG on SmolLM2, and SmolLM2 fine-tuned three
# ways with one budget (prepare.sh: SFT, SFT on RAG prompts, RAFT); the corpus is every dev
# paragraph; freshness (10 edited passages) and forgetting (perplexity on Wikipedia "Duck").
# Run from the repository root after prepare.sh: bench/compare/run.sh [WORK_DIR] [RAGTUNE]
set -euo pipefail
W=${1:-/tmp/compare_squad}
R=${2:-target/release/ragtune}
OUT=bench/results/compare/squad
mkdir -p "$OUT"
$R compare --questions "$W/heldout.json" --corpus ../shared/data/squad-v1.1-dev/dev-v1.1.json \
    --sample "${SAMPLE:-200}" --seed 0 --out "$W/report" --threads 2 \
    --variant closed-book --variant few-shot --variant rag \
    --variant rag@smollm2-135m-instruct \
    --variant "sft:$W/run_sft" --variant "sft+rag:$W/run_sft_rag" --variant "raft:$W/run_raft" \
    --freshness 10 \
    --general-text ../shared/data/docs-corpus/docling-testdata/html/groundtruth/wiki_duck.html.md \
    --profile bench/compare/profile.toml | tee "$OUT/table.txt"
cp "$W/report/report.json" "$W/report/report.html" "$W/report/runs.json" "$OUT/"

#!/bin/bash
# SFT on SQuAD-style data raises SmolLM2's exact match on held-out questions (issue 5).
# Run from the repository root: bench/sft_squad/run.sh [WORK_DIR]   (about 1 hour on 2 cores)
# Writes the reports into bench/results/sft_squad/.
set -euo pipefail
W=${1:-/tmp/sft_squad}
R=target/release/ragtune
OUT=bench/results/sft_squad
mkdir -p "$W" "$OUT"
# Articles split in two halves: nothing of a held-out question is ever trained on.
python3 bench/sft_squad/split.py ../shared/data/squad-v1.1-dev/dev-v1.1.json "$W"
# Training/eval-loss examples: the exact RAG prompts `eval qa` builds (one passage), answered
# with the gold span and the passage number; the prompt's worked demonstrations get weight 0.
$R eval qa "$W/train.json" --sample 400 --seed 1 --mode rag --model smollm2-135m-instruct --top-k 1 --write-sft "$W/train.jsonl"
$R eval qa "$W/heldout.json" --sample 60 --seed 2 --mode rag --model smollm2-135m-instruct --top-k 1 --write-sft "$W/eval.jsonl"
$R train sft --base smollm2-135m-instruct --data "$W/train.jsonl" --eval "$W/eval.jsonl" --out "$W/run" \
    --targets all --rank 8 --alpha 16 --lr 5e-4 --warmup-ratio 0.05 --epochs 1 \
    --batch-size 1 --grad-accum 4 --eval-every 20 --save-every 20 --max-len 768
cp "$W/run/training.json" "$W/run/loss.csv" "$W/run/loss.png" "$OUT/"
for a in base adapter; do
    flag=(); [ $a = adapter ] && flag=(--adapter "$W/run")
    $R eval qa "$W/heldout.json" --sample 200 --seed 0 --mode rag --model smollm2-135m-instruct --top-k 1 "${flag[@]}" --json > "$OUT/eval_$a.json"
done
# Forgetting: perplexity on general text (Wikipedia "Duck") and on held-out SQuAD paragraphs.
python3 -c "import json,sys; d=json.load(open(sys.argv[1])); open(sys.argv[2],'w').write('\n\n'.join(p['context'] for a in d['data'][:3] for p in a['paragraphs']))" "$W/heldout.json" "$W/heldout_contexts.txt"
$R eval perplexity --text ../shared/data/docs-corpus/docling-testdata/html/groundtruth/wiki_duck.html.md --adapter "$W/run" --json > "$OUT/ppl_general.json"
$R eval perplexity --text "$W/heldout_contexts.txt" --adapter "$W/run" --json > "$OUT/ppl_squad.json"

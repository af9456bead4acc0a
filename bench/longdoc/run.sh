#!/bin/sh
# The long-document measurement: SQuAD v1.1 dev articles as whole documents, ingested into a
# knowledge base, and `ragtune eval qa` on a seeded sample of their questions at several
# context-expansion windows. See README.md next to this file.
#
#   bench/longdoc/run.sh            # from the repository root
#
# Environment (defaults in brackets): RAGTUNE [target/release/ragtune], SQUAD
# [../shared/data/squad-v1.1-dev/dev-v1.1.json], WORK [/tmp/ragtune-longdoc], CHUNK [128]
# (--max-tokens of ingest), SAMPLE [100], WINDOWS ["0 256 512"], MODEL
# [qwen2.5-coder-0.5b-instruct], TOP_K [2] (passages retrieved).
set -eu
RAGTUNE=${RAGTUNE:-target/release/ragtune}
SQUAD=${SQUAD:-../shared/data/squad-v1.1-dev/dev-v1.1.json}
WORK=${WORK:-/tmp/ragtune-longdoc}
CHUNK=${CHUNK:-128}
SAMPLE=${SAMPLE:-100}
WINDOWS=${WINDOWS:-"0 256 512"}
MODEL=${MODEL:-qwen2.5-coder-0.5b-instruct}
TOP_K=${TOP_K:-2}
HERE=$(dirname "$0")

python3 "$HERE/export_articles.py" "$SQUAD" "$WORK/articles"
KB="$WORK/kb-$CHUNK"
"$RAGTUNE" ingest --kb "$KB" --max-tokens "$CHUNK" "$WORK/articles"
for w in $WINDOWS; do
    name="chunk$CHUNK-window$w$( [ "$TOP_K" = 2 ] || echo "-top$TOP_K" )"
    out="$WORK/$name.json"
    start=$(date +%s)
    "$RAGTUNE" eval qa "$SQUAD" --kb "$KB" --sample "$SAMPLE" --model "$MODEL" \
        --window "$w" --top-k "$TOP_K" --json --results "$WORK/$name.jsonl" > "$out"
    python3 - "$out" "$CHUNK" "$w" "$(( $(date +%s) - start ))" "$TOP_K" <<'PY'
import json, sys
path, chunk, window, secs, top_k = sys.argv[1:]
s = json.load(open(path))["reports"][0]["summary"]
pct = lambda v: "-" if v is None else f"{100 * v:.1f}"
print(f"chunk {chunk} window {window} top {top_k}: EM {pct(s['exact_match'])} F1 {pct(s['f1'])} "
      f"gold paragraph in prompt {pct(s.get('context_recall'))} "
      f"prompt tokens {s['mean_prompt_tokens']:.0f} context tokens {s['mean_context_tokens']:.0f} "
      f"({s['questions']} questions, {secs} s)")
PY
done

#!/bin/bash
# The same LoRA run twice, the frozen base in f32 and in bf16 on AMX (`--precision f32|auto`):
# 100 steps of continued pretraining on SQuAD v1.1 dev's paragraphs (real text, 4 x 256 tokens
# a step, all linear layers, seed 0), then the two loss curves step by step and each run's
# tokens/s (issue 16, item 1). About 25 minutes on 2 cores.
# Run from the repository root: bench/train_precision/run.sh [WORK_DIR]
# Writes bench/results/train_precision.json.
set -euo pipefail
W=${1:-/tmp/ragtune-train-precision}
R=${RAGTUNE:-target/release/ragtune}
STEPS=${STEPS:-100}
mkdir -p "$W"
python3 -c "import json,sys; d=json.load(open(sys.argv[1])); open(sys.argv[2],'w').write('\n\n'.join(p['context'] for a in d['data'] for p in a['paragraphs']))" \
    ../shared/data/squad-v1.1-dev/dev-v1.1.json "$W/squad-contexts.txt"
for p in f32 auto; do
    rm -rf "$W/run-$p"
    $R train cpt --text "$W/squad-contexts.txt" --out "$W/run-$p" --precision $p --targets all \
        --max-len 256 --batch-size 4 --max-steps "$STEPS" --lr 2e-4 --save-every 0 --threads 2
done
python3 - "$W" "$STEPS" <<'PY'
import csv, json, sys
w, steps = sys.argv[1], int(sys.argv[2])
def run(p):
    t = json.load(open(f"{w}/run-{p}/training.json"))
    loss = [float(r["loss"]) for r in csv.DictReader(open(f"{w}/run-{p}/loss.csv"))]
    return t, loss
(t32, l32), (t16, l16) = run("f32"), run("auto")
assert t16.get("bf16_base"), "the auto run did not multiply in bf16 (no AMX here?)"
rel = [abs(b - a) / a for a, b in zip(l32, l16)]
out = {
    "what": f"train cpt, SmolLM2-135M-Instruct, SQuAD v1.1 dev paragraphs, {steps} steps of 4 x 256 tokens, LoRA r=8 on all linear layers, seed 0, 2 threads",
    "f32": {"tokens_per_second": t32["tokens_per_second"], "train_seconds": t32["train_seconds"], "peak_rss_mib": t32["peak_rss_mib"], "loss": l32},
    "bf16_base": {"tokens_per_second": t16["tokens_per_second"], "train_seconds": t16["train_seconds"], "peak_rss_mib": t16["peak_rss_mib"], "loss": l16},
    "speed": t16["tokens_per_second"] / t32["tokens_per_second"],
    "max_relative_loss_difference": max(rel),
    "steps_within_1_percent": sum(r <= 0.01 for r in rel),
    "steps": len(rel),
}
json.dump(out, open("bench/results/train_precision.json", "w"), indent=1)
print(f"f32 {out['f32']['tokens_per_second']:.0f} tok/s, bf16 base {out['bf16_base']['tokens_per_second']:.0f} tok/s ({out['speed']:.2f}x); "
      f"loss within 1% at {out['steps_within_1_percent']} of {out['steps']} steps, worst {100 * out['max_relative_loss_difference']:.3f}%")
PY

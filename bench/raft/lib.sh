# Shared by the RAFT benches (sourced, not run): the one training recipe, so that every adapter
# they compare gets the same budget, and the copying of a comparison's records into the results.
# Needs R (the ragtune binary), BASE (the base model), STEPS and OUT (the results folder).

# train_adapter DATA RUN MAX_LEN: LoRA rank 8, alpha 16, lr 5e-4 with 5% warm-up, STEPS steps of
# 4 examples, on TARGETS (all linear layers unless set), 2 threads; /usr/bin/time's report goes
# to RUN.time. An adapter already at RUN is kept.
train_adapter() {
    [ -f "$2/adapter.gguf" ] || /usr/bin/time -v -o "$2.time" "$R" train sft --data "$1" \
        --out "$2" --max-len "$3" --base "$BASE" --targets "${TARGETS:-all}" --rank 8 --alpha 16 \
        --lr 5e-4 --warmup-ratio 0.05 --batch-size 1 --grad-accum 4 --max-steps "$STEPS" \
        --save-every 0 --threads 2
}

# keep_comparison REPORT NAME: a comparison's runs.json and report.json into OUT, named by NAME.
keep_comparison() {
    cp "$1/runs.json" "$OUT/runs_$2.json"
    cp "$1/report.json" "$OUT/report_$2.json"
}

# keep_training RUN NAME: an adapter's training record and time report into OUT.
keep_training() {
    cp "$1/training.json" "$OUT/training_$2.json"
    if [ -f "$1.time" ]; then cp "$1.time" "$OUT/time_$2.txt"; fi
}

#!/usr/bin/env python3
"""What one `ragtune ask` costs a user: wall seconds of the whole process, per model.

`ask` is one process per question: it loads the model, embeds the question, retrieves from the
knowledge base and answers (64 tokens at most, the default). This times that end to end, p50 and
p95 over QUESTIONS about the project's own documentation, in the knowledge base `scripts/setup`
builds (or RAGTUNE_KB). With several binaries in RAGTUNE (separated by spaces, e.g. the build
before a change and after), they take turns question by question, so a busy moment of the
machine falls on all of them.

    scripts/setup                       # builds ragtune and the documentation knowledge base
    python3 bench/ask/run.py            # from the repository root; machine otherwise idle

Environment: RAGTUNE [target/release/ragtune], MODELS [smollm2-135m-instruct
qwen2.5-coder-0.5b-instruct], ROUNDS [2] (each question is asked this many times per binary and
model; the first round is a warm-up of the page cache and not counted unless ROUNDS is 1).
"""
import os
import statistics
import subprocess
import time

RAGTUNE = os.environ.get("RAGTUNE", "target/release/ragtune").split()
MODELS = os.environ.get("MODELS", "smollm2-135m-instruct qwen2.5-coder-0.5b-instruct").split()
ROUNDS = int(os.environ.get("ROUNDS", "2"))
QUESTIONS = [
    "Which store is the source of truth of a knowledge base?",
    "Which library generates text?",
    "How are retrieval results from BM25 and vectors combined?",
    "What does ragtune kb check do?",
    "Which embedding model does ragtune use by default?",
    "What format are LoRA adapters saved in?",
    "How does ragtune serve choose an adapter?",
    "What does RAFT train the model to do?",
    "How is a citation checked?",
    "Which database does the server store use?",
]


def ask(binary, model, question):
    cmd = [binary, "ask", "--model", model, question]
    start = time.perf_counter()
    done = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({done.returncode}): {done.stderr.strip()}")
    return seconds


def p95(values):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


for model in MODELS:
    times = {binary: [] for binary in RAGTUNE}
    for round_ in range(ROUNDS):
        for question in QUESTIONS:
            for binary in RAGTUNE:
                seconds = ask(binary, model, question)
                if round_ > 0 or ROUNDS == 1:
                    times[binary].append(seconds)
    for binary, values in times.items():
        print(f"{model:30} {binary:40} n {len(values):3}  p50 {statistics.median(values):6.2f} s"
              f"  p95 {p95(values):6.2f} s  mean {statistics.fmean(values):6.2f} s")

#!/usr/bin/env python3
"""How generation slows down when something else wants the CPU, by OpenMP wait policy.

llama.cpp's worker threads meet at a barrier after every step of a token. How they wait there
is OpenMP's choice: GNU OpenMP spins for GOMP_SPINCOUNT iterations, then sleeps (300,000 when
nothing is set), or sleeps at once (OMP_WAIT_POLICY=passive). Spinning is fastest on an idle
machine and burns a core another process wanted. `ragtune` runs with GOMP_SPINCOUNT=1000 unless
either variable is set (crates/cli/src/main.rs); each row here sets one, so ragtune keeps it.

    python3 bench/contention/run.py         # from the repository root, after scripts/setup

One `ragtune generate` (SmolLM2 as shipped, an ~890-token prompt, 64 tokens, --threads 2), wall
seconds (best of RUNS), for each policy under: nothing else running; one busy-loop process;
two; and a second identical `ragtune generate` started at the same moment (the slower of the
two). Environment: RAGTUNE [target/release/ragtune], MODEL [smollm2-135m-instruct], RUNS [2].
"""
import json
import os
import subprocess
import time

RAGTUNE = os.environ.get("RAGTUNE", "target/release/ragtune")
MODEL = os.environ.get("MODEL", "smollm2-135m-instruct")
RUNS = int(os.environ.get("RUNS", "2"))
CORPUS = "../shared/data/beir-scifact/corpus.jsonl"

with open(CORPUS, encoding="utf-8") as f:
    docs = [json.loads(next(f))["text"] for _ in range(6)]
PROMPT = " ".join(docs)[:3800] + " Summarize."
POLICIES = {
    "GOMP_SPINCOUNT=300000": {"GOMP_SPINCOUNT": "300000"},  # libgomp's default
    "GOMP_SPINCOUNT=10000": {"GOMP_SPINCOUNT": "10000"},
    "GOMP_SPINCOUNT=1000": {"GOMP_SPINCOUNT": "1000"},  # ragtune's default
    "OMP_WAIT_POLICY=passive": {"OMP_WAIT_POLICY": "passive"},
}


def generate(env):
    cmd = [RAGTUNE, "generate", "--model", MODEL, "-n", "64", "--threads", "2", PROMPT]
    return subprocess.Popen(cmd, env={**os.environ, **env}, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)


def timed(env, twin=False, hogs=0):
    busy = [subprocess.Popen(["sh", "-c", "while :; do :; done"]) for _ in range(hogs)]
    try:
        best = float("inf")
        for _ in range(RUNS):
            start = time.perf_counter()
            procs = [generate(env) for _ in range(2 if twin else 1)]
            for p in procs:
                if p.wait() != 0:
                    raise SystemExit(f"ragtune generate failed ({p.returncode})")
            best = min(best, time.perf_counter() - start)
        return best
    finally:
        for b in busy:
            b.kill()
            b.wait()


print(f"machine: {os.cpu_count()} cores; {MODEL}; ~890-token prompt, 64 tokens, --threads 2; "
      f"best of {RUNS}")
print(f"{'policy':<26} {'idle':>7} {'1 busy':>7} {'2 busy':>7} {'twin':>7}")
for name, env in POLICIES.items():
    row = [timed(env), timed(env, hogs=1), timed(env, hogs=2), timed(env, twin=True)]
    print(f"{name:<26} " + " ".join(f"{t:7.2f}" for t in row), flush=True)

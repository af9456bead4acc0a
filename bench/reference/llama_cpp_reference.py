#!/usr/bin/env python3
"""llama.cpp reference numbers through llama-cpp-python (pip install llama-cpp-python==0.3.36).

Used twice: once to produce the committed expected token ids and greedy text for ragtune's
tests (`tokenize`, `greedy`), and by the generation benchmark to time llama.cpp side by side
with ragtune (`bench`). Prints JSON on stdout.
"""
import argparse
import json
import sys
import time

import llama_cpp
import numpy as np


def load(path, threads=2, n_ctx=2048, vocab_only=False):
    return llama_cpp.Llama(
        model_path=path,
        n_ctx=n_ctx,
        n_threads=threads,
        n_threads_batch=threads,
        n_batch=512,
        n_ubatch=512,
        vocab_only=vocab_only,
        verbose=False,
    )


def cmd_tokenize(args):
    llm = load(args.model, vocab_only=True)
    cases = json.load(open(args.cases, encoding="utf-8"))
    out = []
    for text in cases:
        b = text.encode("utf-8")
        out.append({
            "text": text,
            "special": llm.tokenize(b, add_bos=True, special=True),
            "plain": llm.tokenize(b, add_bos=False, special=False),
        })
    json.dump(out, sys.stdout, ensure_ascii=False, indent=1)


def last_logits_argmax(llm):
    # Llama.eval no longer copies logits into llm.scores (0.3.x); read llama.cpp's buffer.
    ptr = llama_cpp.llama_get_logits_ith(llm.ctx, -1)
    return int(np.argmax(np.ctypeslib.as_array(ptr, shape=(llm.n_vocab(),))))


def greedy_continue(llm, prompt_tokens, n):
    """Greedy decoding with plain argmax, end-of-generation ignored: n tokens exactly."""
    llm.reset()
    t0 = time.perf_counter()
    llm.eval(prompt_tokens)
    tok = last_logits_argmax(llm)
    t1 = time.perf_counter()
    out = [tok]
    for _ in range(n - 1):
        llm.eval([tok])
        tok = last_logits_argmax(llm)
        out.append(tok)
    t2 = time.perf_counter()
    return out, t1 - t0, t2 - t1


def cmd_greedy(args):
    llm = load(args.model, threads=args.threads)
    prompt = llm.tokenize(args.prompt.encode("utf-8"), add_bos=True, special=True)
    eog = {llm.token_eos()}
    out, _, _ = greedy_continue(llm, prompt, args.max_tokens)
    # Stop at the first end-of-generation token, as generation normally does.
    for i, t in enumerate(out):
        if llama_cpp.llama_vocab_is_eog(llama_cpp.llama_model_get_vocab(llm.model), t) or t in eog:
            out = out[:i]
            break
    text = llm.detokenize(out).decode("utf-8", errors="replace")
    json.dump({"prompt_tokens": len(prompt), "tokens": out, "text": text}, sys.stdout,
              ensure_ascii=False, indent=1)


def cmd_bench(args):
    llm = load(args.model, threads=args.threads, n_ctx=2048)
    prompt = llm.tokenize(open(args.prompt_file, encoding="utf-8").read().encode("utf-8"),
                          add_bos=True, special=True)
    results = []
    for rep in range(args.repeats + 1):
        _, tp, td = greedy_continue(llm, prompt, args.decode)
        if rep > 0:  # the first run warms caches
            results.append((tp, td))
    tp = min(r[0] for r in results)
    td = min(r[1] for r in results)
    json.dump({
        "engine": f"llama-cpp-python {llama_cpp.__version__}",
        "prompt_tokens": len(prompt),
        "decode_tokens": args.decode,
        "prompt_tps": len(prompt) / tp,
        "decode_tps": (args.decode - 1) / td,
    }, sys.stdout)


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("tokenize")
    t.add_argument("model")
    t.add_argument("cases")
    g = sub.add_parser("greedy")
    g.add_argument("model")
    g.add_argument("prompt")
    g.add_argument("--max-tokens", type=int, default=48)
    g.add_argument("--threads", type=int, default=2)
    b = sub.add_parser("bench")
    b.add_argument("model")
    b.add_argument("prompt_file")
    b.add_argument("--threads", type=int, default=2)
    b.add_argument("--decode", type=int, default=64)
    b.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    {"tokenize": cmd_tokenize, "greedy": cmd_greedy, "bench": cmd_bench}[args.cmd](args)


if __name__ == "__main__":
    main()

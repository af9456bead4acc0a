#!/usr/bin/env python3
"""ragtune's defaults and LlamaIndex's defaults side by side, in one run, on the same long
documents (the 48 SQuAD v1.1 dev articles as Markdown files), the same questions and the same
GGUF model. Run it through `llamaindex.sh` next to this file, which makes the virtual
environment; see README.md ("LlamaIndex side by side").

Steps:
1. ragtune: `ragtune eval qa SQUAD --kb KB --sample SAMPLE --model MODEL --window 0 --json
   --results ragtune.jsonl` (its defaults: hybrid retrieval, top 2 chunks of a KB ingested with
   `--max-tokens 128`). Its per-question JSONL fixes the question ids.
2. LlamaIndex, its defaults as a new user writes them: `SimpleDirectoryReader(articles).load_data()`,
   `SentenceSplitter()` (chunk_size 1024, overlap 200, tiktoken cl100k_base as bundled in
   llama-index-core), `BM25Retriever.from_defaults(nodes=..., similarity_top_k=2)`,
   `RetrieverQueryEngine.from_args(retriever, llm=...)` (response mode "compact", whose text-QA
   prompt for a chat model is `CHAT_TEXT_QA_PROMPT`). The LLM is a small `CustomLLM` that hands
   the formatted chat messages to llama-cpp-python's `Llama.create_chat_completion` (the GGUF's
   own chat template), greedy, 64 tokens: the same library call that llama-index-llms-llama-cpp
   would make, without that wrapper's generic `messages_to_prompt`.
   The same question ids, in the same order.
3. Both sides scored with the official SQuAD v1.1 normalisation (EM and token F1, max over gold
   answers); paired bootstrap (10,000 resamples of question indices, seed 0) of the mean F1 and
   EM differences, ragtune minus LlamaIndex.

Environment: RAGTUNE [target/release/ragtune], SQUAD [../shared/data/squad-v1.1-dev/dev-v1.1.json],
WORK [/tmp/ragtune-longdoc] (holds articles/ and kb-128/), SAMPLE [100], MODEL
[qwen2.5-coder-0.5b-instruct], GGUF [the .gguf in ~/.cache/ragtune/models/$MODEL/], THREADS [2]
(llama-cpp-python's n_threads), OUT [bench/results/longdoc/llamaindex-side-by-side.json],
RAGTUNE_RESULTS [unset] (development only: the path of an
existing `--results` JSONL of the same ragtune command, whose JSON report sits next to it with the
.json suffix, instead of running ragtune; the report says so), LIMIT [0] (development only: with
RAGTUNE_RESULTS, only the first LIMIT questions), LLAMAINDEX_REPORT [unset] (a report this script
wrote before: its LlamaIndex answers and scores are reused for the same question ids instead of
running LlamaIndex again, for when only ragtune changed; the report says so, and the two sides
were then not run together).
"""

import collections
import json
import os
import re
import string
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, List, Sequence

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

RAGTUNE = os.environ.get("RAGTUNE", "target/release/ragtune")
SQUAD = os.environ.get("SQUAD", "../shared/data/squad-v1.1-dev/dev-v1.1.json")
WORK = Path(os.environ.get("WORK", "/tmp/ragtune-longdoc"))
SAMPLE = int(os.environ.get("SAMPLE", "100"))
MODEL = os.environ.get("MODEL", "qwen2.5-coder-0.5b-instruct")
THREADS = int(os.environ.get("THREADS", "2"))
OUT = Path(os.environ.get("OUT", "bench/results/longdoc/llamaindex-side-by-side.json"))
RAGTUNE_RESULTS = os.environ.get("RAGTUNE_RESULTS")
LIMIT = int(os.environ.get("LIMIT", "0"))
LLAMAINDEX_REPORT = os.environ.get("LLAMAINDEX_REPORT")
CHUNK = 128
TOP_K = 2
N_CTX = 4096
MAX_TOKENS = 64
RESAMPLES = 10_000


def gguf_path() -> str:
    if os.environ.get("GGUF"):
        return os.environ["GGUF"]
    folder = Path.home() / ".cache/ragtune/models" / MODEL
    files = sorted(folder.glob("*.gguf"))
    if not files:
        sys.exit(f"no .gguf in {folder}: run `ragtune models pull` or set GGUF")
    return str(files[0])


# --- official SQuAD v1.1 scoring (evaluate-v1.1.py) ---------------------------------------

def normalize_answer(s: str) -> str:
    s = s.lower()
    s = "".join(ch for ch in s if ch not in set(string.punctuation))
    s = re.sub(r"\b(a|an|the)\b", " ", s)
    return " ".join(s.split())


def f1_score(prediction: str, gold: str) -> float:
    p, g = normalize_answer(prediction).split(), normalize_answer(gold).split()
    common = collections.Counter(p) & collections.Counter(g)
    same = sum(common.values())
    if same == 0:
        return 0.0
    precision, recall = same / len(p), same / len(g)
    return 2 * precision * recall / (precision + recall)


def exact_match(prediction: str, gold: str) -> float:
    return float(normalize_answer(prediction) == normalize_answer(gold))


def score(prediction: str, golds: Sequence[str]) -> tuple:
    return (max(exact_match(prediction, g) for g in golds),
            max(f1_score(prediction, g) for g in golds))


def gold_paragraph_in(text: str, paragraph: str, golds: Sequence[str], n: int = 8) -> bool:
    """Approximately ragtune's context recall: the retrieved text holds a gold answer and shares
    n consecutive normalised words with the gold paragraph."""
    t = normalize_answer(text)
    if not any(normalize_answer(g) and normalize_answer(g) in t for g in golds):
        return False
    tw, pw = t.split(), normalize_answer(paragraph).split()
    grams = {tuple(pw[i:i + n]) for i in range(len(pw) - n + 1)}
    return any(tuple(tw[i:i + n]) in grams for i in range(len(tw) - n + 1))


def bootstrap(a: List[float], b: List[float]) -> dict:
    import numpy as np
    d = np.asarray(a) - np.asarray(b)
    rng = np.random.default_rng(0)
    idx = rng.integers(0, len(d), size=(RESAMPLES, len(d)))
    means = d[idx].mean(axis=1)
    lo, hi = np.percentile(means, [2.5, 97.5])
    return {"mean_difference": float(d.mean()), "ci95": [float(lo), float(hi)],
            "share_of_resamples_above_zero": float((means > 0).mean())}


# --- questions -----------------------------------------------------------------------------

def squad_items() -> dict:
    items = {}
    for article in json.load(open(SQUAD, encoding="utf-8"))["data"]:
        for p in article["paragraphs"]:
            for q in p["qas"]:
                items[q["id"]] = {"question": q["question"], "context": p["context"],
                                  "title": article["title"],
                                  "gold": [a["text"] for a in q["answers"]]}
    return items


# --- ragtune side --------------------------------------------------------------------------

def run_ragtune() -> dict:
    kb = WORK / f"kb-{CHUNK}"
    if RAGTUNE_RESULTS:
        jsonl = Path(RAGTUNE_RESULTS)
        report = json.load(open(jsonl.with_suffix(".json")))
        wall = report["reports"][0]["wall_ms"] / 1000
        reused = str(jsonl)
    else:
        jsonl, out = WORK / "ragtune.jsonl", WORK / "ragtune.json"
        cmd = [RAGTUNE, "eval", "qa", SQUAD, "--kb", str(kb), "--sample", str(SAMPLE),
               "--model", MODEL, "--window", "0", "--json", "--results", str(jsonl)]
        print("ragtune:", " ".join(cmd), flush=True)
        start = time.monotonic()
        with open(out, "w") as f:
            subprocess.run(cmd, stdout=f, check=True)
        wall = time.monotonic() - start
        report = json.load(open(out))
        reused = None
    rows = [json.loads(line) for line in open(jsonl)]
    if reused and LIMIT:
        rows = rows[:LIMIT]
    summary = report["reports"][0]["summary"]
    return {"rows": rows, "summary": summary, "wall_s": wall, "reused": reused,
            "options": report.get("options"), "seed": report.get("seed")}


# --- LlamaIndex side -----------------------------------------------------------------------

def make_llm(model_path: str):
    from llama_cpp import Llama
    from llama_index.core.base.llms.types import (ChatMessage, ChatResponse,
                                                  CompletionResponse, LLMMetadata)
    from llama_index.core.llms import CustomLLM
    from llama_index.core.llms.callbacks import llm_chat_callback, llm_completion_callback
    from pydantic import PrivateAttr

    class LlamaCppChat(CustomLLM):
        """Chat messages straight to llama-cpp-python's create_chat_completion (the GGUF's
        chat template), recording each call's messages and usage."""

        model_path: str
        _llama: Any = PrivateAttr()
        _calls: list = PrivateAttr(default_factory=list)

        def __init__(self, **kw: Any) -> None:
            super().__init__(**kw)
            self._llama = Llama(model_path=self.model_path, n_ctx=N_CTX, n_threads=THREADS,
                                seed=0, verbose=False)
            self._calls = []

        @property
        def metadata(self) -> LLMMetadata:
            return LLMMetadata(context_window=N_CTX, num_output=MAX_TOKENS,
                               is_chat_model=True, model_name=Path(self.model_path).name)

        @llm_chat_callback()
        def chat(self, messages: Sequence[ChatMessage], **kw: Any) -> ChatResponse:
            msgs = [{"role": m.role.value, "content": m.content or ""} for m in messages]
            out = self._llama.create_chat_completion(messages=msgs, temperature=0,
                                                     max_tokens=MAX_TOKENS)
            self._calls.append({"messages": msgs, "usage": out["usage"],
                                "finish_reason": out["choices"][0].get("finish_reason")})
            return ChatResponse(message=ChatMessage(
                role="assistant", content=out["choices"][0]["message"]["content"]), raw=out)

        @llm_completion_callback()
        def complete(self, prompt: str, formatted: bool = False, **kw: Any) -> CompletionResponse:
            r = self.chat([ChatMessage(role="user", content=prompt)])
            return CompletionResponse(text=r.message.content or "", raw=r.raw)

        def stream_complete(self, prompt: str, formatted: bool = False, **kw: Any):
            raise NotImplementedError

    return LlamaCppChat(model_path=model_path)


def run_llamaindex(ids: List[str], items: dict, llm, variant: str) -> dict:
    from llama_index.core import Settings, SimpleDirectoryReader
    from llama_index.core.node_parser import SentenceSplitter
    from llama_index.core.prompts.chat_prompts import TEXT_QA_SYSTEM_PROMPT
    from llama_index.core.query_engine import RetrieverQueryEngine

    Settings.llm = llm  # never the OpenAI default
    start = time.monotonic()
    docs = SimpleDirectoryReader(str(WORK / "articles")).load_data()
    splitter = SentenceSplitter()
    nodes = splitter.get_nodes_from_documents(docs)
    assert variant == "bm25"
    from llama_index.retrievers.bm25 import BM25Retriever
    retriever = BM25Retriever.from_defaults(nodes=nodes, similarity_top_k=TOP_K)
    engine = RetrieverQueryEngine.from_args(retriever, llm=llm)
    index_s = time.monotonic() - start
    print(f"llamaindex/{variant}: {len(docs)} documents, {len(nodes)} nodes "
          f"(chunk_size {splitter.chunk_size}, overlap {splitter.chunk_overlap}), "
          f"indexed in {index_s:.1f} s", flush=True)

    rows, start, first_call = [], time.monotonic(), len(llm._calls)
    for i, qid in enumerate(ids):
        item = items[qid]
        first = len(llm._calls)
        t0 = time.monotonic()
        response = engine.query(item["question"])
        secs = time.monotonic() - t0
        calls = llm._calls[first:]
        answer = str(response).strip()
        em, f1 = score(answer, item["gold"])
        context = "\n\n".join(n.node.get_content() for n in response.source_nodes)
        assert calls and calls[0]["messages"][0]["content"] == TEXT_QA_SYSTEM_PROMPT.content
        rows.append({
            "id": qid, "answer": answer, "exact_match": em, "f1": f1,
            "prompt_tokens": sum(c["usage"]["prompt_tokens"] for c in calls),
            "completion_tokens": sum(c["usage"]["completion_tokens"] for c in calls),
            "llm_calls": len(calls),
            "finish_reason": calls[-1]["finish_reason"],
            "sources": [Path(n.node.metadata.get("file_path", "?")).name
                        for n in response.source_nodes],
            "gold_paragraph_in_prompt": gold_paragraph_in(
                context, item["context"], item["gold"]),
            "seconds": round(secs, 2),
        })
        if (i + 1) % 10 == 0:
            print(f"llamaindex/{variant}: {i + 1}/{len(ids)} "
                  f"EM {100 * mean(r['exact_match'] for r in rows):.1f} "
                  f"F1 {100 * mean(r['f1'] for r in rows):.1f} "
                  f"({time.monotonic() - start:.0f} s)", flush=True)
    qa_s = time.monotonic() - start
    return {"rows": rows, "index_s": index_s, "qa_s": qa_s, "documents": len(docs),
            "nodes": len(nodes), "example_messages": llm._calls[first_call]["messages"]}


def mean(xs) -> float:
    xs = list(xs)
    return sum(xs) / len(xs)


def main() -> int:
    items = squad_items()
    rt = run_ragtune()
    ids = [r["result"]["id"] for r in rt["rows"]]
    if RAGTUNE_RESULTS is None and len(ids) != SAMPLE:
        sys.exit(f"ragtune returned {len(ids)} questions, expected {SAMPLE}")

    # ragtune's answers rescored with the official scorer.
    rt_rows, disagreements = [], []
    for r in rt["rows"]:
        res = r["result"]
        item = items[res["id"]]
        if sorted(res["gold"]) != sorted(item["gold"]):
            disagreements.append({"id": res["id"], "what": "gold answers differ"})
        em, f1 = score(res["answer"]["answer_text"], item["gold"])
        if abs(em - res["exact_match"]) > 1e-9 or abs(f1 - res["f1"]) > 1e-9:
            disagreements.append({"id": res["id"], "answer": res["answer"]["answer_text"],
                                  "ours": [em, f1], "ragtune": [res["exact_match"], res["f1"]]})
        rt_rows.append({"id": res["id"], "answer": res["answer"]["answer_text"],
                        "exact_match": em, "f1": f1,
                        "prompt_tokens": res["answer"]["tokens"]["prompt"],
                        "completion_tokens": res["answer"]["tokens"]["completion"],
                        "gold_paragraph_in_prompt": res.get("gold_in_context")})
    s = rt["summary"]
    rt_side = {
        "name": "ragtune defaults",
        "setup": "ragtune ingest --max-tokens 128; eval qa --window 0 (hybrid BM25 + MiniLM, "
                 "options as recorded in command_options; top 2 chunks, ragtune's prompt)",
        "command_options": rt["options"], "reused_results": rt["reused"],
        "questions": len(rt_rows),
        "exact_match": 100 * mean(r["exact_match"] for r in rt_rows),
        "f1": 100 * mean(r["f1"] for r in rt_rows),
        "mean_prompt_tokens": mean(r["prompt_tokens"] for r in rt_rows),
        "gold_paragraph_in_prompt": 100 * mean(bool(r["gold_paragraph_in_prompt"])
                                               for r in rt_rows),
        "wall_s_under_load": round(rt["wall_s"], 1),
        "ragtune_summary": {"exact_match": 100 * s["exact_match"], "f1": 100 * s["f1"],
                            "mean_prompt_tokens": s["mean_prompt_tokens"],
                            "context_recall": 100 * s["context_recall"]
                            if s.get("context_recall") is not None else None},
        "scorer_agrees_with_ragtune": not disagreements,
        "scorer_disagreements": disagreements,
    }

    variants = ["bm25"]
    li_sides = {}
    if LLAMAINDEX_REPORT:
        before = json.load(open(LLAMAINDEX_REPORT, encoding="utf-8"))
        for v in variants:
            rows = [q["llamaindex"] for q in before["comparison"][v]["per_question"]]
            before_ids = [q["id"] for q in before["comparison"][v]["per_question"]]
            if before_ids != ids:
                sys.exit(f"{LLAMAINDEX_REPORT} answered other questions than ragtune did")
            li_sides[v] = {"reused": before["llamaindex"][v], "rows": rows}
        model_path = before["gguf"]
        chat_format = before["generation"]["llama_cpp"].rsplit("(", 1)[-1].rstrip(")")
        versions, llama_cpp_version = before["versions"], before["llama_cpp_version"]
    else:
        model_path = gguf_path()
        llm = make_llm(model_path)
        chat_format = llm._llama.chat_format
        import llama_cpp
        llama_cpp_version = llama_cpp.__version__
        for v in variants:
            li_sides[v] = run_llamaindex(ids, items, llm, v)
        from importlib.metadata import version
        versions = {p: version(p) for p in ["llama-index-core", "llama-index-retrievers-bm25",
                                            "llama-cpp-python", "bm25s", "PyStemmer",
                                            "tiktoken", "nltk", "numpy"]}

    report = {
        "what": "ragtune defaults vs LlamaIndex defaults on the 48 SQuAD v1.1 dev articles as "
                "Markdown files, same questions, same GGUF, one run",
        "squad": SQUAD, "sample": len(ids), "sample_seed": rt["seed"],
        "model": MODEL, "gguf": Path(model_path).name,
        "generation": {"llama_cpp": f"Llama(n_ctx={N_CTX}, n_threads={THREADS}, seed=0); "
                                    f"create_chat_completion(temperature=0, "
                                    f"max_tokens={MAX_TOKENS}), GGUF chat template "
                                    f"({chat_format})"},
        "scoring": "official SQuAD v1.1 normalisation (lowercase, strip punctuation, articles "
                   "a/an/the, collapse whitespace); EM and token F1, max over gold answers; "
                   "ragtune scored on its answer_text (citation markers removed)",
        "bootstrap": f"paired, {RESAMPLES} resamples of question indices (numpy "
                     "default_rng(0)), 2.5/97.5 percentiles of the mean difference, "
                     "ragtune minus LlamaIndex; the same resamples for EM and F1",
        "wall_times": "measured on a 2-core machine while another engineer compiled Rust: "
                      "under load, not clean",
        "llamaindex_reused_from": LLAMAINDEX_REPORT,
        "versions": versions, "llama_cpp_version": llama_cpp_version,
        "ragtune": rt_side, "llamaindex": {}, "comparison": {},
    }
    print()
    print(f"{'side':<34} {'EM':>6} {'F1':>6} {'prompt tok':>10} {'gold para':>9} {'wall s':>8}")
    print(f"{'ragtune (hybrid, 128-token chunks)':<34} {rt_side['exact_match']:6.1f} "
          f"{rt_side['f1']:6.1f} {rt_side['mean_prompt_tokens']:10.1f} "
          f"{rt_side['gold_paragraph_in_prompt']:9.0f} {rt_side['wall_s_under_load']:8.0f}")
    for v, li in li_sides.items():
        rows = li["rows"]
        side = dict(li["reused"], reused_from=LLAMAINDEX_REPORT) if "reused" in li else {
            "name": f"LlamaIndex defaults ({v})",
            "setup": ("SimpleDirectoryReader; SentenceSplitter() (1024/200, tiktoken "
                      "cl100k_base bundled in llama-index-core); "
                      + "BM25Retriever.from_defaults(similarity_top_k=2)"
                      + "; RetrieverQueryEngine.from_args (compact, CHAT_TEXT_QA_PROMPT); "
                        "llama-cpp-python create_chat_completion"),
            "documents": li["documents"], "nodes": li["nodes"], "questions": len(rows),
            "exact_match": 100 * mean(r["exact_match"] for r in rows),
            "f1": 100 * mean(r["f1"] for r in rows),
            "mean_prompt_tokens": mean(r["prompt_tokens"] for r in rows),
            "mean_completion_tokens": mean(r["completion_tokens"] for r in rows),
            "llm_calls": sum(r["llm_calls"] for r in rows),
            "answers_cut_at_max_tokens": sum(r["finish_reason"] == "length" for r in rows),
            "gold_paragraph_in_prompt": 100 * mean(r["gold_paragraph_in_prompt"] for r in rows),
            "index_s_under_load": round(li["index_s"], 1),
            "wall_s_under_load": round(li["index_s"] + li["qa_s"], 1),
            "example_messages": li["example_messages"],
        }
        f1 = bootstrap([r["f1"] for r in rt_rows], [r["f1"] for r in rows])
        em = bootstrap([r["exact_match"] for r in rt_rows], [r["exact_match"] for r in rows])
        report["llamaindex"][v] = side
        report["comparison"][v] = {
            "f1_difference": {k: (100 * x if k == "mean_difference" else
                                  [100 * y for y in x] if k == "ci95" else x)
                              for k, x in f1.items()},
            "em_difference": {k: (100 * x if k == "mean_difference" else
                                  [100 * y for y in x] if k == "ci95" else x)
                              for k, x in em.items()},
            "prompt_token_ratio_ragtune_over_llamaindex":
                rt_side["mean_prompt_tokens"] / side["mean_prompt_tokens"],
            "per_question": [
                {"id": a["id"], "question": items[a["id"]]["question"],
                 "gold": items[a["id"]]["gold"],
                 "ragtune": {k: a[k] for k in ["answer", "exact_match", "f1", "prompt_tokens"]},
                 "llamaindex": {k: b[k] for k in ["answer", "exact_match", "f1",
                                                  "prompt_tokens", "sources"]}}
                for a, b in zip(rt_rows, rows)],
        }
        c = report["comparison"][v]
        print(f"{side['name']:<34} {side['exact_match']:6.1f} {side['f1']:6.1f} "
              f"{side['mean_prompt_tokens']:10.1f} {side['gold_paragraph_in_prompt']:9.0f} "
              f"{side['wall_s_under_load']:8.0f}")
        print(f"  ragtune minus LlamaIndex ({v}): F1 {c['f1_difference']['mean_difference']:+.1f} "
              f"[{c['f1_difference']['ci95'][0]:+.1f}, {c['f1_difference']['ci95'][1]:+.1f}], "
              f"EM {c['em_difference']['mean_difference']:+.1f} "
              f"[{c['em_difference']['ci95'][0]:+.1f}, {c['em_difference']['ci95'][1]:+.1f}]; "
              f"prompt tokens ratio {c['prompt_token_ratio_ragtune_over_llamaindex']:.2f}")
    print(f"ragtune's own summary: EM {rt_side['ragtune_summary']['exact_match']:.1f} "
          f"F1 {rt_side['ragtune_summary']['f1']:.1f}; this scorer "
          f"{'agrees' if not disagreements else f'DISAGREES on {len(disagreements)} questions'}")
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(report, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"report: {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""sentence-transformers reference for ragtune-embed (PyTorch on the CPU).

Install (only PyPI is reachable here). torch 2.15's PyPI wheel is a CUDA build: its
libtorch_cpu.so links libcudart.so.13 and libcupti.so.13, and libtorch_python.so the other CUDA
libraries, so `pip install --no-deps torch` alone fails at `import torch`. The CUDA runtime
wheels are needed even on the CPU (about 2 GB); triton and cuda-bindings are not. Tested with:

    pip install --no-deps torch==2.15.0 sentence-transformers==6.2.0 transformers==5.23.0
    pip install filelock fsspec sympy networkx jinja2 setuptools \
        "cuda-toolkit[cublas,cudart,cufft,cufile,cupti,cusolver,cusparse,nvjitlink,nvrtc,nvtx]==13.2.2" \
        nvidia-cudnn-cu13==9.26.0.51 nvidia-cusparselt-cu13==0.8.1 \
        nvidia-nccl-cu13==2.30.7 nvidia-nvshmem-cu13==3.7.2
    pip install huggingface-hub==2.4.0 tokenizers==0.23.3 safetensors==0.8.0 \
        scikit-learn==1.9.1 scipy==1.17.1 numpy tqdm pyyaml regex packaging typer

(`pip install torch==2.15.0 sentence-transformers==6.2.0` also works and adds triton).

Used twice:
- `vectors`: the expected vectors, token ids and token counts committed in
  crates/embed/tests/data/minilm_reference.json (run once, by hand);
- `bench`: times `SentenceTransformer.encode` for the embedding benchmark
  (crates/embed/benches/embed.rs), which runs it side by side with ragtune.
Prints JSON on stdout.
"""
import argparse
import json
import os
import sys
import time


def load(model_dir, threads):
    # Before torch starts its thread pools.
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(threads)
    import torch
    torch.set_num_threads(threads)
    from sentence_transformers import SentenceTransformer
    return SentenceTransformer(model_dir, device="cpu")


def cmd_vectors(args):
    model = load(args.model, args.threads)
    texts = json.load(open(args.texts, encoding="utf-8"))
    vectors = model.encode(texts, batch_size=32, convert_to_numpy=True)
    tok = model.tokenizer
    out = []
    for text, vec in zip(texts, vectors):
        features = model.tokenize([text])
        out.append({
            "text": text,
            # What the model reads: special tokens added, cut to max_seq_length.
            "ids": features["input_ids"][0].tolist(),
            # Word pieces without special tokens and without truncation.
            "count": len(tok(text.strip(), add_special_tokens=False, truncation=False)["input_ids"]),
            "vector": [float(f"{x:.7g}") for x in vec.tolist()],
        })
    import sentence_transformers
    json.dump({
        "model": os.path.basename(os.path.normpath(args.model)),
        "max_seq_length": model.max_seq_length,
        "engine": f"sentence-transformers {sentence_transformers.__version__}",
        "cases": out,
    }, sys.stdout, ensure_ascii=False, indent=1)


def cmd_bench(args):
    model = load(args.model, args.threads)
    import numpy as np
    import sentence_transformers
    import torch
    texts = json.load(open(args.texts, encoding="utf-8"))
    model.encode(texts[:64], batch_size=args.batch_size)  # warm-up
    times = []
    vectors = None
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        vectors = model.encode(texts, batch_size=args.batch_size, convert_to_numpy=True)
        times.append(time.perf_counter() - t0)
    np.asarray(vectors, dtype="<f4").tofile(args.out)
    best = min(times)
    json.dump({
        "engine": f"sentence-transformers {sentence_transformers.__version__}, "
                  f"torch {torch.__version__}",
        "threads": torch.get_num_threads(),
        "batch_size": args.batch_size,
        "sentences": len(texts),
        "seconds": best,
        "all_seconds": times,
        "sentences_per_s": len(texts) / best,
    }, sys.stdout)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    v = sub.add_parser("vectors", help="expected vectors for tests")
    v.add_argument("model")
    v.add_argument("texts", help="JSON list of strings")
    v.add_argument("--threads", type=int, default=2)
    v.set_defaults(func=cmd_vectors)
    b = sub.add_parser("bench", help="time encode() on a JSON list of sentences")
    b.add_argument("model")
    b.add_argument("texts")
    b.add_argument("--threads", type=int, default=2)
    b.add_argument("--batch-size", type=int, default=32)
    b.add_argument("--repeats", type=int, default=1)
    b.add_argument("--out", required=True, help="embeddings as little-endian f32, row-major")
    b.set_defaults(func=cmd_bench)
    args = p.parse_args()
    args.func(args)


if __name__ == "__main__":
    main()

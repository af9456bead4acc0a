"""Writes every paragraph of a SQuAD JSON file as one text file (`<article>_<n>.txt`), so
`ragtune ingest` builds a knowledge base of exactly the paragraphs the questions are about.

Usage: python3 paragraphs.py SQUAD_JSON OUT_DIR
"""
import json, os, re, sys

src, out = sys.argv[1], sys.argv[2]
os.makedirs(out, exist_ok=True)
n = 0
for article in json.load(open(src))["data"]:
    stem = re.sub(r"[^A-Za-z0-9]+", "_", article["title"]).strip("_")
    for i, p in enumerate(article["paragraphs"]):
        with open(os.path.join(out, f"{stem}_{i:03d}.txt"), "w") as f:
            f.write(p["context"] + "\n")
        n += 1
print(f"{n} paragraphs -> {out}")

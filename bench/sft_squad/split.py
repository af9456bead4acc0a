"""Splits SQuAD v1.1 dev by article into a training half and a held-out half (SQuAD JSON each).

Usage: python3 split.py ../../../shared/data/squad-v1.1-dev/dev-v1.1.json OUT_DIR
Writes OUT_DIR/train.json (even-numbered articles) and OUT_DIR/heldout.json (odd-numbered), so
no paragraph or article of a held-out question is ever seen in training.
"""
import json, sys, os

src, out = sys.argv[1], sys.argv[2]
data = json.load(open(src))
os.makedirs(out, exist_ok=True)
for name, parity in (("train", 0), ("heldout", 1)):
    part = dict(data, data=[a for i, a in enumerate(data["data"]) if i % 2 == parity])
    json.dump(part, open(os.path.join(out, f"{name}.json"), "w"))
    qs = sum(len(p["qas"]) for a in part["data"] for p in a["paragraphs"])
    print(f"{name}: {len(part['data'])} articles, {qs} questions")

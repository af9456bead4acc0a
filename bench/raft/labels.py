"""Yes/no/maybe accuracy by gold label for each variant of a `ragtune compare` run, beside the
majority-class baseline on the same questions: a model that always says the commonest label
scores that much without reading anything, so accuracy means something only above it.

Usage: python3 labels.py PQAL_JSON RUNS_JSON
"""
import collections, json, sys

gold = {k: v["final_decision"] for k, v in json.load(open(sys.argv[1])).items()}
runs = json.load(open(sys.argv[2]))["runs"]
ids = [o["id"] for o in runs[0]["outcomes"]]
counts = collections.Counter(gold[i] for i in ids)
labels = ["yes", "no", "maybe"]
majority, n_majority = counts.most_common(1)[0]
print(f"{len(ids)} questions: " + ", ".join(f"{l} {counts[l]}" for l in labels))
print(f"majority class ({majority}) baseline: {100 * n_majority / len(ids):.1f}%")
print()
print(f"{'variant':<60} {'accuracy':>8}  " + "  ".join(f"{'on ' + l:>9}" for l in labels))
for run in runs:
    right = collections.Counter()
    for o in run["outcomes"]:
        right[gold[o["id"]]] += bool(o["correct"])
    total = sum(right.values())
    per = "  ".join(
        f"{100 * right[l] / counts[l]:8.1f}%" if counts[l] else f"{'-':>9}" for l in labels
    )
    print(f"{run['name']:<60} {100 * total / len(ids):7.1f}%  {per}")

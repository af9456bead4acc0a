#!/usr/bin/env python3
"""Writes each article of a SQuAD JSON file (v1.1 or v2.0) as one Markdown file: the title as
a heading, then its paragraphs in order, separated by blank lines, as a user's Wikipedia export
would be. The questions stay in the SQuAD file, which `ragtune eval qa` reads with `--kb`.

    python3 bench/longdoc/export_articles.py SQUAD_JSON OUT_DIR

Standard library only. Prints the number of articles, paragraphs and bytes written.
"""

import json
import re
import sys
from pathlib import Path


def file_name(title: str, taken: set) -> str:
    """A safe, unique file name for an article title."""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", title).strip("._") or "article"
    name, n = f"{stem}.md", 1
    while name in taken:
        n += 1
        name = f"{stem}-{n}.md"
    taken.add(name)
    return name


def main() -> int:
    if len(sys.argv) != 3:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    source, out = Path(sys.argv[1]), Path(sys.argv[2])
    try:
        data = json.loads(source.read_text(encoding="utf-8"))["data"]
    except (OSError, ValueError, KeyError) as e:
        print(f"cannot read SQuAD articles from {source}: {e}", file=sys.stderr)
        return 1
    out.mkdir(parents=True, exist_ok=True)
    taken, paragraphs, size = set(), 0, 0
    for article in data:
        title = article["title"].replace("_", " ")
        texts = [p["context"].strip() for p in article["paragraphs"]]
        text = f"# {title}\n\n" + "\n\n".join(texts) + "\n"
        (out / file_name(article["title"], taken)).write_text(text, encoding="utf-8")
        paragraphs += len(texts)
        size += len(text.encode("utf-8"))
    print(f"{len(data)} articles, {paragraphs} paragraphs, {size} bytes in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/bin/sh
# ragtune's defaults and LlamaIndex's defaults side by side, in one run, on the SQuAD v1.1 dev
# articles as long Markdown files: the same questions and the same GGUF. Makes the Python
# virtual environment when missing (pinned packages from PyPI only; llama-cpp-python builds
# from source, several minutes on 2 cores), exports the articles, ingests the knowledge base
# when missing, then runs llamaindex_side_by_side.py, which prints a table and writes a JSON
# report. See README.md next to this file ("LlamaIndex side by side").
#
#   bench/longdoc/llamaindex.sh            # from the repository root
#
# Environment (defaults in brackets): RAGTUNE [target/release/ragtune], SQUAD
# [../shared/data/squad-v1.1-dev/dev-v1.1.json], WORK [/tmp/ragtune-longdoc] (articles/,
# kb-128/, the venv venv-llamaindex/ and ragtune's ragtune.json(l) go there), SAMPLE [100],
# MODEL [qwen2.5-coder-0.5b-instruct], GGUF [the .gguf in ~/.cache/ragtune/models/$MODEL/],
# THREADS [2] (llama-cpp-python's n_threads), OUT
# [bench/results/longdoc/llamaindex-side-by-side.json].
# Nothing is downloaded at run time: HF_HUB_OFFLINE=1; LlamaIndex's tiktoken (cl100k_base) and
# NLTK (punkt_tab, stopwords) files ship inside the llama-index-core wheel.
set -eu
RAGTUNE=${RAGTUNE:-target/release/ragtune}
SQUAD=${SQUAD:-../shared/data/squad-v1.1-dev/dev-v1.1.json}
WORK=${WORK:-/tmp/ragtune-longdoc}
SAMPLE=${SAMPLE:-100}
MODEL=${MODEL:-qwen2.5-coder-0.5b-instruct}
HERE=$(dirname "$0")
VENV="$WORK/venv-llamaindex"
export RAGTUNE SQUAD WORK SAMPLE MODEL HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1

if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV"
fi
"$VENV/bin/pip" install -q -r "$HERE/requirements-llamaindex.txt"

python3 "$HERE/export_articles.py" "$SQUAD" "$WORK/articles"
if [ ! -d "$WORK/kb-128" ]; then
    "$RAGTUNE" ingest --kb "$WORK/kb-128" --max-tokens 128 "$WORK/articles"
fi
# NLTK_DATA elsewhere would make LlamaIndex look (and download) there instead of its own copy.
unset NLTK_DATA TIKTOKEN_CACHE_DIR 2>/dev/null || true
exec "$VENV/bin/python" "$HERE/llamaindex_side_by_side.py"

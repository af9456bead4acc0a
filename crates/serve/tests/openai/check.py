"""The official openai Python SDK against a running `ragtune serve`.

    python3 check.py BASE_URL MODEL ADAPTER EMBEDDER

BASE_URL is the server's root (http://127.0.0.1:PORT); the server must serve MODEL with the
adapter ADAPTER, the knowledge base `docs` (which says the signing keys are rotated every
ninety days) and the embedder EMBEDDER. Prints one JSON object with what it saw; exits non-zero
on the first check that fails.
"""

import json
import sys

import openai
from openai import OpenAI

base, model, adapter, embedder = sys.argv[1:5]
client = OpenAI(base_url=base + "/v1", api_key="not-needed", max_retries=0, timeout=300)
seen = {"sdk": openai.__version__}

# Models: the base, the adapter with its parent, the knowledge base, the embedder.
models = {m.id: m for m in client.models.list()}
assert {model, adapter, "rag/docs", embedder} <= set(models), models.keys()
assert models[adapter].model_extra.get("parent") == model, models[adapter]
seen["models"] = sorted(models)

# Chat, greedy, then the same request streamed: the same text, piece by piece.
ask = [{"role": "user", "content": "Name a primary colour."}]
whole = client.chat.completions.create(model=model, messages=ask, max_tokens=12, temperature=0)
text = whole.choices[0].message.content
assert text, whole
assert whole.object == "chat.completion" and whole.choices[0].finish_reason in ("stop", "length")
assert whole.usage.completion_tokens > 0 and whole.usage.prompt_tokens > 0, whole.usage
pieces = []
usage = None
for chunk in client.chat.completions.create(
    model=model, messages=ask, max_tokens=12, temperature=0, stream=True,
    stream_options={"include_usage": True},
):
    if chunk.usage:
        usage = chunk.usage
    if chunk.choices and chunk.choices[0].delta.content:
        pieces.append(chunk.choices[0].delta.content)
assert "".join(pieces) == text, (pieces, text)
assert usage and usage.completion_tokens == whole.usage.completion_tokens, usage
seen["chat"] = text

# The adapter, by name.
tuned = client.chat.completions.create(model=adapter, messages=ask, max_tokens=12, temperature=0)
assert tuned.choices[0].message.content, tuned
seen["adapter"] = tuned.choices[0].message.content

# RAG: the answer carries message.context.citations, each with its passage and whether it
# checked out; streamed, the citations come in the last chunk before [DONE].
question = [{"role": "user", "content": "How often are the signing keys rotated?"}]
rag = client.chat.completions.create(model="rag/docs", messages=question, max_tokens=48)
message = rag.choices[0].message
context = message.model_extra.get("context")
assert context is not None and isinstance(context["citations"], list), message
for c in context["citations"]:
    assert {"id", "filepath", "content", "start", "end", "valid", "score"} <= set(c), c
    assert c["filepath"].endswith("keys.md") or c["filepath"].endswith(".md"), c
streamed_citations = None
for chunk in client.chat.completions.create(model="rag/docs", messages=question, max_tokens=48, stream=True):
    if chunk.choices and chunk.choices[0].finish_reason:
        streamed_citations = chunk.choices[0].delta.model_extra.get("context", {}).get("citations")
assert streamed_citations is not None
seen["rag"] = {"answer": message.content, "citations": context["citations"]}

# Text completions and embeddings (the SDK asks for base64 and decodes it).
completion = client.completions.create(model=model, prompt="One, two, three,", max_tokens=4, temperature=0)
assert completion.object == "text_completion" and completion.choices[0].text, completion
vectors = client.embeddings.create(model=embedder, input=["signing keys", "espresso machine"])
assert len(vectors.data) == 2 and len(vectors.data[0].embedding) >= 64, vectors
assert vectors.usage.prompt_tokens > 0
seen["embedding_dimensions"] = len(vectors.data[0].embedding)

# Errors: the SDK's own exception classes, from the status codes.
try:
    client.chat.completions.create(model="no-such-model", messages=ask)
    raise AssertionError("an unknown model was accepted")
except openai.NotFoundError as e:
    assert e.status_code == 404 and e.code == "model_not_found", e
try:
    client.chat.completions.create(model=model, messages=ask, temperature=5)
    raise AssertionError("temperature 5 was accepted")
except openai.BadRequestError as e:
    assert e.status_code == 400, e
seen["errors"] = "ok"

print(json.dumps(seen))

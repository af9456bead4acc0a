"""The official openai Python SDK against a running `ragtune serve`.

    python3 check.py BASE_URL MODEL ADAPTER EMBEDDER API_KEY

BASE_URL is the server's root (http://127.0.0.1:PORT); the server must serve MODEL with the
adapter ADAPTER, the knowledge base `docs` (which says the signing keys are rotated every
ninety days) and the embedder EMBEDDER, and require API keys, API_KEY being a write key.
Prints one JSON object with what it saw; exits non-zero on the first check that fails.
"""

import json
import sys
import time

import httpx2 as httpx  # the HTTP client the SDK itself uses
import openai
from openai import OpenAI

base, model, adapter, embedder, key = sys.argv[1:6]
client = OpenAI(base_url=base + "/v1", api_key=key, max_retries=0, timeout=300)
seen = {"sdk": openai.__version__}

# Without the right key: the SDK's AuthenticationError; /health needs none.
try:
    OpenAI(base_url=base + "/v1", api_key="rt-wrong", max_retries=0).models.list()
    raise AssertionError("a wrong key was accepted")
except openai.AuthenticationError as e:
    assert e.status_code == 401, e
assert httpx.get(base + "/health").status_code == 200

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

# Log-probabilities, parsed by the SDK's own types: each token with its bytes and the most
# likely alternatives; greedy decoding takes the first. Streamed, they come with the last chunk.
scored = client.chat.completions.create(
    model=model, messages=ask, max_tokens=12, temperature=0, logprobs=True, top_logprobs=3
)
tokens = scored.choices[0].logprobs.content
assert "".join(t.token for t in tokens) == scored.choices[0].message.content, tokens
for t in tokens:
    assert t.logprob <= 0 and len(t.top_logprobs) == 3, t
    assert t.top_logprobs[0].token == t.token and bytes(t.bytes).decode("utf-8", "replace") == t.token, t
streamed_tokens = []
for chunk in client.chat.completions.create(
    model=model, messages=ask, max_tokens=12, temperature=0, logprobs=True, stream=True
):
    if chunk.choices and chunk.choices[0].logprobs and chunk.choices[0].logprobs.content:
        streamed_tokens += [t.token for t in chunk.choices[0].logprobs.content]
assert streamed_tokens == [t.token for t in tokens], (streamed_tokens, tokens)
seen["logprobs"] = [[t.token, round(t.logprob, 3)] for t in tokens]

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
completion = client.completions.create(
    model=model, prompt="One, two, three,", max_tokens=4, temperature=0, logprobs=2
)
assert completion.object == "text_completion" and completion.choices[0].text, completion
scores = completion.choices[0].logprobs
assert "".join(scores.tokens) == completion.choices[0].text, scores
assert len(scores.token_logprobs) == len(scores.tokens) == len(scores.top_logprobs), scores
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

# A knowledge base fed over HTTP: upload a file (multipart), watch its ingestion finish,
# then get an answer that cites it.
auth = {"Authorization": "Bearer " + key}
up = httpx.post(
    base + "/v1/kb/docs/files",
    headers=auth,
    files={"file": ("vault.md", b"# Vault\n\nThe vault code word is blue pelican.\n")},
)
assert up.status_code == 202, up.text
for _ in range(600):
    status = httpx.get(base + "/v1/kb/docs/status", headers=auth).json()
    if status["state"] == "idle":
        break
    time.sleep(0.1)
assert status["state"] == "idle" and status["files"]["failed"] == 0, status
hits = httpx.post(base + "/v1/kb/docs/search", headers=auth, json={"query": "vault code word"}).json()
assert hits["data"][0]["filepath"].endswith("vault.md"), hits
cited = client.chat.completions.create(
    model="rag/docs", messages=[{"role": "user", "content": "What is the vault code word?"}], max_tokens=32,
)
passages = [c["filepath"] for c in cited.choices[0].message.model_extra["context"]["citations"]]
seen["uploaded"] = {"status": status, "answer": cited.choices[0].message.content, "cited": passages}
metrics = httpx.get(base + "/metrics", headers=auth).text
assert 'ragtune_requests_total{route="/v1/kb/{name}/files",status="202"} 1' in metrics, metrics

print(json.dumps(seen))

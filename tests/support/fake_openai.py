"""A small OpenAI-style streaming server for FAULT INJECTION only (never for measurements).

The prompt's first word picks the behaviour:
  ok       3 chunks of 3 tokens each (as speculation sends them), usage and spec metrics at the end
  slow     like ok, 50 ms between chunks
  malformed  like ok, with garbage lines mixed into the stream
  http429 / http503   an error status
  reset    one chunk, then the connection is cut
  stall    one chunk, then nothing (the client must time out)
  burst    8 one-token chunks held back 30 ms, then written at once (a buffering server or proxy)
GET /metrics serves, in turn, the files listed in $FAKE_METRICS (comma-separated; the last repeats),
so a test can replay real scrapes, including a counter reset. FAKE_METRICS=live serves this process's
own spec-decode counters instead (they start at 0, so killing and restarting it is a real reset; with
FAKE_SPECULATES=0 they never move: a server without speculation).
$FAKE_LISTED (comma-separated) is what /v1/models lists (default "fake"); with $FAKE_SERVED set, a completion for a
model not in it gets vLLM's 404 ("does not exist"), so a router that serves more than it lists can be played.
With $FAKE_API_KEY set, every /v1 request needs "Authorization: Bearer <that key>" (else HTTP 401). With
$FAKE_NO_STREAM set, a completion is one JSON body, never a stream (a server that ignores "stream": true).
Run as a process: python tests/support/fake_openai.py PORT   (prints "ready" when listening)
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

from aiohttp import web

CHUNK_TOKENS = 3
CHUNKS = 3
SPEC = {"draft_acceptance_rate": 0.5, "mean_acceptance_length": 3.0, "num_draft_tokens": 8,
        "num_accepted_draft_tokens": 4, "acceptance_histogram": [1, 0, 1], "num_spec_steps": 2}


def _chunk(text: str, completion_tokens: int) -> bytes:
    obj = {"choices": [{"index": 0, "text": text}],
           "usage": {"prompt_tokens": 5, "completion_tokens": completion_tokens}}
    return b"data: " + json.dumps(obj).encode() + b"\n\n"


LIVE = {"vllm:spec_decode_num_drafts_total": 0, "vllm:spec_decode_num_draft_tokens_total": 0,
        "vllm:spec_decode_num_accepted_tokens_total": 0}


def _authorized(request: web.Request) -> bool:
    key = os.environ.get("FAKE_API_KEY")
    return not key or request.headers.get("Authorization") == f"Bearer {key}"


async def completions(request: web.Request) -> web.StreamResponse:
    if not _authorized(request):
        return web.Response(status=401, text='{"error": "unauthorized"}')
    body = await request.json()
    served = os.environ.get("FAKE_SERVED", "").split(",")
    if served != [""] and body.get("model") not in served:  # vLLM's answer to a model name it does not serve
        return web.json_response({"error": {"message": f"The model `{body.get('model')}` does not exist.",
                                            "type": "NotFoundError", "param": "model", "code": 404}}, status=404)
    if os.environ.get("FAKE_NO_STREAM"):
        return web.json_response({"choices": [{"index": 0, "text": "tok0 tok1", "finish_reason": "length"}],
                                  "usage": {"prompt_tokens": 5, "completion_tokens": 2}})
    mode = str(body.get("prompt", "ok")).split()[0]
    if mode.startswith("http"):
        return web.Response(status=int(mode[4:]), text=f"fake {mode[4:]}: try again later")
    resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await resp.prepare(request)
    gap = 0.05 if mode == "slow" else 0.002
    if mode == "burst":
        await asyncio.sleep(0.03)
        await resp.write(b"".join(_chunk(f"tok{i} ", i + 1) for i in range(8)))
        await resp.write(b"data: [DONE]\n\n")
        return resp
    for i in range(CHUNKS):
        await resp.write(_chunk(f"tok{i} " * CHUNK_TOKENS, (i + 1) * CHUNK_TOKENS))
        if mode == "malformed":
            await resp.write(b"data: {not json\n\nthis is not sse\n\n")
        if mode == "reset" and i == 0:
            request.transport.close()
            return resp
        if mode == "stall" and i == 0:
            await asyncio.sleep(3600)
        await asyncio.sleep(gap)
    final = {"choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": CHUNKS * CHUNK_TOKENS},
             "metrics": {"speculative_decoding": SPEC}}
    await resp.write(b"data: " + json.dumps(final).encode() + b"\n\ndata: [DONE]\n\n")
    for name, key in (("drafts", "num_spec_steps"), ("draft_tokens", "num_draft_tokens"),
                      ("accepted_tokens", "num_accepted_draft_tokens")):
        LIVE[f"vllm:spec_decode_num_{name}_total"] += SPEC[key] if SPECULATES else 0
    return resp


_METRICS = [p for p in os.environ.get("FAKE_METRICS", "").split(",") if p]
SPECULATES = os.environ.get("FAKE_SPECULATES", "1") != "0"  # FAKE_SPECULATES=0: live counters that never move


async def metrics(request: web.Request) -> web.Response:
    if not _authorized(request):
        return web.Response(status=401, text="unauthorized")
    if _METRICS == ["live"]:
        lines = [line for name, value in LIVE.items() for line in (
            f"# TYPE {name.removesuffix('_total')} counter", f'{name}{{engine="0",model_name="fake"}} {value}.0')]
        return web.Response(text="\n".join(lines) + "\n", content_type="text/plain")
    if not _METRICS:
        return web.Response(status=404, text="no metrics")
    path = _METRICS.pop(0) if len(_METRICS) > 1 else _METRICS[0]
    return web.Response(text=Path(path).read_text(), content_type="text/plain")


async def models(request: web.Request) -> web.Response:
    if not _authorized(request):
        return web.Response(status=401, text='{"error": "unauthorized"}')
    listed = os.environ.get("FAKE_LISTED", "fake").split(",")
    return web.json_response({"object": "list", "data": [{"id": m, "object": "model"} for m in listed]})


def app() -> web.Application:
    a = web.Application()
    a.router.add_post("/v1/completions", completions)
    a.router.add_get("/v1/models", models)
    a.router.add_get("/metrics", metrics)
    return a


if __name__ == "__main__":
    port = int(sys.argv[1])

    async def main():
        runner = web.AppRunner(app())
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        print("ready", flush=True)
        await asyncio.Event().wait()

    asyncio.run(main())

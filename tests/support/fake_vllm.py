"""A stand-in for ``python -m vllm.entrypoints.openai.api_server`` for FAULT INJECTION only: serves
tests/support/fake_openai.py (FAKE_METRICS=live counters) plus /health on the ``--port`` it is given,
and ignores every other vLLM argument. Used by the server-pool tests (tests/unit/test_servers.py)
and the pool fault scenarios (tests/support/pool_scenarios.py); never by a measurement.
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("FAKE_METRICS", "live")
if "--speculative-config" not in sys.argv:  # started as a baseline: its spec-decode counters stay still
    os.environ.setdefault("FAKE_SPECULATES", "0")

import fake_openai  # noqa: E402
from aiohttp import web  # noqa: E402


async def _health(request: web.Request) -> web.Response:
    return web.Response(text="")


async def _main(port: int) -> None:
    app = fake_openai.app()
    app.router.add_get("/health", _health)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    print(f"INFO fake vllm serving on port {port} (pid {os.getpid()})", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    argv = sys.argv[1:]
    asyncio.run(_main(int(argv[argv.index("--port") + 1])))

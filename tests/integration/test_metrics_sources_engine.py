"""Metrics behind a router: two real vLLM CPU servers (the package's shared ones), a round-robin proxy in front, a real Prometheus.

The proxy (aiohttp, in a thread) sends each request, ``/metrics`` included, to the next server in turn,
as a plain load balancer does. Through it, preflight's router detection must warn with the default
``server`` source; the sweep measured through it with ``pods``, ``prometheus`` or ``per_request`` must
give the acceptance of the two servers' own counters summed (read directly from each server).
Prometheus is Debian's ``prometheus`` package, started here scraping both servers every second.
"""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from playbook.helpers.loadgen import Target
from playbook.helpers.metrics import merge, scrape, spec_delta
from playbook.helpers.metrics_sources import PerRequestSource, PodsSource, PrometheusSource, router_check
from playbook.helpers.params import PreflightParams
from playbook.helpers.preflight import check_servers
from playbook.helpers.schemas.preflight import PreflightResult
from playbook.helpers.sweep import run_sweep
from tests.support.prometheus_tools import prometheus_tool

pytestmark = pytest.mark.engine
SELECTOR = 'job="vllm-pods"'


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def pods(pair, spec_server, ngram_server):
    """Two speculative servers of the same target, both proposing k=4 tokens: the package's shared
    draft_model and n-gram ones (no extra start: each start costs 30 to 40 s on 2 cores). The tests read
    counter deltas, so what they served before does not matter, and a router's sum is a sum whatever
    each replica's method."""
    return spec_server, ngram_server


class RoundRobinProxy:
    """Every request, whatever its path, goes to the next backend in turn; responses are streamed back."""

    def __init__(self, backends: list[str]):
        self.backends, self.port, self.next = backends, _free_port(), 0
        self.url = f"http://127.0.0.1:{self.port}"
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    async def _handle(self, request):
        from aiohttp import ClientSession, ClientTimeout, web

        base = self.backends[self.next % len(self.backends)]
        self.next += 1
        body = await request.read()
        headers = {k: v for k, v in request.headers.items() if k.lower() not in ("host", "content-length")}
        async with ClientSession(timeout=ClientTimeout(total=600)) as session, \
                session.request(request.method, base + request.path_qs, data=body, headers=headers) as up:
            resp = web.StreamResponse(status=up.status, headers={"Content-Type": up.headers.get("Content-Type", "")})
            await resp.prepare(request)
            async for chunk in up.content.iter_any():
                await resp.write(chunk)
            await resp.write_eof()
            return resp

    async def _start(self):
        from aiohttp import web

        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()

    def __enter__(self):
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(10)
        return self

    def __exit__(self, *exc):
        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


@pytest.fixture(scope="module")
def proxy(pods):
    with RoundRobinProxy([p.url for p in pods]) as px:
        yield px


@pytest.fixture(scope="module")
def prometheus(pods, tmp_path_factory):
    """Prometheus scraping both servers every second; stopped (its own process only) afterwards."""
    binary = prometheus_tool("prometheus")
    d = tmp_path_factory.mktemp("prometheus")
    targets = [p.url.removeprefix("http://") for p in pods]
    (d / "prometheus.yml").write_text(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
        f"scrape_configs:\n  - job_name: vllm-pods\n    static_configs:\n      - targets: {json.dumps(targets)}\n")
    port = _free_port()
    log = (d / "prometheus.log").open("w")
    proc = subprocess.Popen([binary, f"--config.file={d / 'prometheus.yml'}", f"--storage.tsdb.path={d / 'data'}",
                             f"--web.listen-address=127.0.0.1:{port}"], stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 60
        while True:
            try:
                q = urllib.request.urlopen(f"{url}/api/v1/query?query={urllib.parse.quote(f'sum(up{{{SELECTOR}}})')}",
                                           timeout=2)
                res = json.loads(q.read())["data"]["result"]
                if res and float(res[0]["value"][1]) == 2:
                    break
            except OSError:
                pass
            if proc.poll() is not None or time.time() > deadline:
                pytest.fail(f"Prometheus did not scrape both servers within 60 s: {Path(log.name).read_text()[-2000:]}")
            time.sleep(0.5)
        yield url
    finally:
        proc.terminate()
        proc.wait(20)
        log.close()


def _sweep(target: Target, source):
    """One sweep point (T=0, 8 structured prompts) through the proxy, counters from ``source``."""
    return run_sweep(target, ["structured"], [0.0], requests_per_point=8, max_tokens=48, concurrency=2,
                     progress=False, metrics=lambda t: source)


def _measured(pods, proxy, source):
    urls = [p.url for p in pods]
    before = {u: scrape(u) for u in urls}
    result = _sweep(Target(proxy.url, pods[0].model_name), source)
    after = {u: scrape(u) for u in urls}
    per_pod = {u: spec_delta(before[u], after[u]) for u in urls}
    assert all(d.drafts > 0 for d in per_pod.values()), "the proxy must spread the requests over both servers"
    expected = spec_delta(merge(before), merge(after))
    return result.points[0], expected


def test_preflight_warns_behind_the_proxy_with_the_server_source(pods, proxy):
    from tests.support.spec_probe import complete

    complete(pods[0].url, pods[0].model_name, ["one request to the first server only"], 0.0, max_tokens=16)
    check = router_check(proxy.url)
    assert check.status == "warn", check
    assert "pods" in check.fix and "prometheus" in check.fix
    result = check_servers(PreflightParams(mode="external", spec_url=proxy.url), None, PreflightResult(mode="external"))
    warned = [c for c in result.checks if c.name == "metrics source (spec)"]
    assert warned and warned[0].status == "warn", result.checks
    # each server alone holds still: no warning
    assert router_check(pods[1].url).status == "ok"


def test_pods_source_gives_the_sum_of_both_servers(pods, proxy):
    point, expected = _measured(pods, proxy, PodsSource([p.url for p in pods]))
    assert point.drafts == expected.drafts and point.accepted == expected.accepted
    assert point.acceptance_rate == pytest.approx(expected.acceptance_rate)
    assert point.per_position == pytest.approx(expected.per_position)


def test_prometheus_source_gives_the_sum_of_both_servers(pods, proxy, prometheus):
    params = PreflightParams(mode="external", spec_url=proxy.url, metrics_source="prometheus",
                             prometheus_url=prometheus, prometheus_selector=SELECTOR)
    checks = {c.name: c for c in check_servers(params, None, PreflightResult(mode="external")).checks}
    assert checks["spec-decode counters (spec)"].status == "ok", checks
    assert checks["metrics source (spec)"].status == "ok", checks
    point, expected = _measured(pods, proxy, PrometheusSource(prometheus, SELECTOR))
    # each replica's range ends on its own samples: increase() extrapolates by 1 ms at most
    assert point.drafts == pytest.approx(expected.drafts, rel=0.01)
    assert point.accepted == pytest.approx(expected.accepted, rel=0.01)
    assert point.acceptance_rate == pytest.approx(expected.acceptance_rate, abs=0.005)
    assert point.per_position == pytest.approx(expected.per_position, abs=0.01)


def test_per_request_source_pools_the_benchmark_requests(pods, proxy):
    point, expected = _measured(pods, proxy, PerRequestSource(proxy.url))
    assert point.drafts == pytest.approx(expected.drafts, rel=0.02)
    assert point.acceptance_rate == pytest.approx(expected.acceptance_rate, abs=0.02)
    assert point.per_position == pytest.approx(expected.per_position, abs=0.02)


def test_the_monitoring_queries_work_on_what_prometheus_stored(pods, proxy, prometheus):
    """The report's PromQL (rule file, dashboard) on the real series: one acceptance rate per instance."""
    from playbook.helpers import monitoring

    _measured(pods, proxy, PodsSource([p.url for p in pods]))
    src = PrometheusSource(prometheus, SELECTOR)
    time.sleep(3)  # a few more scrapes after the traffic
    q = {x.name: x.promql for x in monitoring.queries(window="2m", extra_selector=SELECTOR)}
    rates = {r["metric"]["instance"]: float(r["value"][1]) for r in src.query(q["acceptance_rate"])}
    assert set(rates) == {p.url.removeprefix("http://") for p in pods}
    assert all(0 < v <= 1 for v in rates.values()), rates
    assert {r["metric"]["instance"] for r in src.query(q["running_requests"])} == set(rates)
    assert src.query(q["tpot_p99_seconds"]) and src.query(q["acceptance_by_position"])

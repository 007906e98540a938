"""Parameters a new user gives on the command line over the default profile (QA round 6)."""

from __future__ import annotations

from playbook.helpers import params
from playbook.resources import profile_path
from playbook.runner import profile_values


def test_changing_the_mode_with_p_drops_the_profiles_embedded_memory_share():
    embedded = profile_values(profile_path(None))
    assert embedded["gpu_memory_utilization"] == 0.3
    merged = params.with_mode_defaults(params.merge_profile(embedded, {"mode": "managed"}))
    assert merged["gpu_memory_utilization"] == 0.9  # vLLM's default, not the CPU engine's third
    given = params.merge_profile(embedded, {"mode": "managed", "gpu_memory_utilization": 0.5})
    assert given["gpu_memory_utilization"] == 0.5  # an override still wins
    same = params.merge_profile(embedded, {"concurrencies": [1]})
    assert same["gpu_memory_utilization"] == 0.3  # the profile's own mode: its values stand
    per_step = params.resolve_parameters(embedded, {"mode": "managed", "target_model": "Llama-3.1-70B",
                                                    "draft_model": "Llama-3.2-1B", "gpu": "H100-SXM"},
                                         ["20_memory"])
    assert per_step["20_memory"]["gpu_memory_utilization"] == 0.9


def test_a_url_answering_without_metrics_is_named_a_router_with_the_metrics_source_fix():
    import threading
    from http.server import BaseHTTPRequestHandler, HTTPServer

    import pytest

    from playbook.helpers.errors import MetricsError
    from playbook.helpers.metrics import scrape

    class NoMetrics(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - the http.server API
            self.send_response(404)
            self.end_headers()

        def log_message(self, *args):
            pass

    srv = HTTPServer(("127.0.0.1", 0), NoMetrics)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        with pytest.raises(MetricsError) as err:
            scrape(f"http://127.0.0.1:{srv.server_port}")
    finally:
        srv.shutdown()
    assert "HTTP 404" in err.value.problem and "router" in err.value.problem
    assert "metrics_source pods" in err.value.fix

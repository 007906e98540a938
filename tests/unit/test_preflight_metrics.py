"""Preflight's spec-decode check: which counters are missing decides between ok, warn and fail."""

import pytest

from playbook.helpers.metrics import ACCEPTED_PER_POS, LEGACY_RATE, SPEC_COUNTERS
from playbook.helpers.preflight import check_metrics

URL = "http://127.0.0.1:8000"


@pytest.mark.parametrize("names, status, needle", [
    (set(SPEC_COUNTERS), "ok", "all 4 counters"),
    (set(SPEC_COUNTERS) - {ACCEPTED_PER_POS}, "warn", "per-position acceptance unavailable"),
    ({LEGACY_RATE}, "warn", "legacy"),
    ({SPEC_COUNTERS[0]}, "fail", "lacks"),
    ({"vllm:num_requests_running"}, "fail", "has no vllm:spec_decode_* metrics"),
])
def test_spec_counters_check(names, status, needle):
    _, check = check_metrics(names, "spec", URL)
    assert check.status == status and needle in check.detail

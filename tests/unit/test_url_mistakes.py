"""URLs a new user gets wrong: the error names the mistake and the fix (fake server, real sockets)."""

from __future__ import annotations

import pytest

from playbook.helpers.errors import ServerUnreachableError
from playbook.helpers.server import list_models
from tests.support import start_fake, stop_fake


def test_https_to_a_plain_http_server_says_use_http():
    proc, url = start_fake()
    try:
        tls = url.replace("http://", "https://")
        with pytest.raises(ServerUnreachableError) as err:
            list_models(tls, timeout_s=5)
        assert "answered plain HTTP" in err.value.problem and err.value.fix == f"write it as {url}"
        assert list_models(url, timeout_s=5) == ["fake"]  # the fix works
    finally:
        stop_fake(proc)

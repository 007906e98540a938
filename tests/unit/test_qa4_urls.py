"""A URL carrying a key in its query string is refused without quoting it; a server that answers /v1/models with
something other than the OpenAI API's JSON is named as such, not as unreachable (QA round 4)."""

from __future__ import annotations

import http.server
import threading

import pytest

from playbook.cli import main
from playbook.helpers.errors import ParameterError, ServerUnreachableError
from playbook.helpers.params import LoadParams, validate_params
from playbook.helpers.redact import redact_url
from playbook.helpers.server import list_models


@pytest.mark.parametrize("url", ["http://127.0.0.1:18999/?api_key=s3cretQS", "http://gw.example/v2?token=s3cretQT",
                                 "http://127.0.0.1:8000#s3cretF"])
def test_a_url_with_a_query_string_is_refused_at_validation_without_the_query(url):
    with pytest.raises(ParameterError) as err:
        validate_params(LoadParams, {"mode": "external", "baseline_url": url, "spec_url": "http://127.0.0.1:9"})
    text = f"{err.value.problem} {err.value.fix}"
    assert "s3cret" not in text and "query string" in text and "api_key_env" in text


def test_the_sweep_command_refuses_it_without_printing_the_key(capsys, tmp_path):
    assert main(["sweep", "--url", "http://127.0.0.1:9/?api_key=s3cretQ", "--model", "x",
                 "--run-dir", str(tmp_path / "r")]) != 0
    err = capsys.readouterr().err
    assert "s3cret" not in err and "query string" in err


def test_redact_url_hides_queries_and_fragments_of_urls_only():
    assert redact_url("see http://h:1/v2?token=x#f, then?") == "see http://h:1/v2?<redacted> then?"
    assert redact_url("what? http://h:1/path") == "what? http://h:1/path"


@pytest.fixture()
def html_server():
    class Page(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server's name
            body = b"<html><body>Directory listing</body></html>"
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    srv = http.server.HTTPServer(("127.0.0.1", 0), Page)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_port}"
    srv.shutdown()
    srv.server_close()


def test_a_server_answering_html_is_named_as_not_the_openai_api(html_server):
    with pytest.raises(ServerUnreachableError) as err:
        list_models(html_server, timeout_s=5)
    assert "answered, but not with the OpenAI API's JSON (it sent text/html)" in err.value.problem
    assert "unreachable" not in err.value.problem and "base URL" in err.value.fix

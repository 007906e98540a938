"""report.html must render on an air-gapped node: no script, style, image or frame from the network."""

import base64
import re

import nbformat

from playbook.helpers.artifacts import RunDir
from playbook.report import build_html

_NETWORK_REF = re.compile(r"<(?:script|link|img|iframe|source)\b[^>]*\b(?:src|href)\s*=\s*[\"']?(?:https?:)?//", re.I)
_CSS_IMPORT = re.compile(r"(?:@import|url\()\s*[\"']?(?:https?:)?//", re.I)
_PNG = base64.b64encode(bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000100ffff03000006000557bfabd40000000049454e44ae426082")).decode()


def _executed_report(run: RunDir) -> None:
    nb = nbformat.v4.new_notebook()
    nb.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {"state": {}, "version_major": 2,
                                                                             "version_minor": 0}}
    out_html = nbformat.v4.new_output("display_data", data={"text/html": "<b>NO-GO</b>", "text/plain": "x"})
    out_png = nbformat.v4.new_output("display_data", data={"image/png": _PNG, "text/plain": "<Figure>"})
    nb.cells = [nbformat.v4.new_markdown_cell("# 90 · Report with $x^2$ maths"),
                nbformat.v4.new_code_cell("display(x)", outputs=[out_html, out_png])]
    nbformat.write(nb, run.notebooks / "90_report.ipynb")


def test_report_html_has_no_network_resource(tmp_path):
    run = RunDir(tmp_path / "run")
    _executed_report(run)
    html = build_html(run).read_text()
    assert "<b>NO-GO</b>" in html and "data:image/png;base64," in html  # the content is there, images inline
    assert not _NETWORK_REF.findall(html), _NETWORK_REF.findall(html)[:3]
    assert not _CSS_IMPORT.findall(html)
    assert "cdnjs" not in html and "unpkg" not in html


class _RecordingProxy:
    """A TCP listener given to Chromium as its proxy for every URL (loopback included): each connection is a
    network request the page tried; its first line (``GET http://...`` or ``CONNECT host:443``) is kept."""

    def __init__(self):
        import socket
        import threading

        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.requests: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)

    def _accept(self):
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            with conn:
                conn.settimeout(1)
                try:
                    self.requests.append(conn.recv(2048).decode("latin-1").split("\r\n")[0] or "<connection>")
                except OSError:
                    self.requests.append("<connection>")

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(5)
        self.sock.close()


def test_report_html_opens_in_chromium_with_the_network_off(tmp_path):
    """Debian's Chromium (headless, through Selenium and the system's chromedriver) opens report.html with
    the network off: every request goes to a proxy that answers nothing. The page renders (its verdict and
    image are in the DOM), and its DevTools network log holds no request other than the file itself and
    inline data: URLs. (Requests Chromium makes for itself, e.g. its updater, reach the proxy too and are
    not the page's: the page's own log is what counts.)"""
    import json as _json
    import shutil

    import pytest

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver_path = shutil.which("chromedriver")
    if not chromium or not driver_path:
        pytest.fail("Chromium or chromedriver is missing: apt-get install -y chromium chromium-driver "
                    "(make test installs them as root)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    run = RunDir(tmp_path / "run")
    _executed_report(run)
    page = build_html(run)
    with _RecordingProxy() as proxy:
        opts = webdriver.ChromeOptions()
        opts.binary_location = chromium
        for arg in ("--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-sync",
                    "--disable-background-networking", "--disable-component-update",
                    f"--user-data-dir={tmp_path / 'profile'}", f"--proxy-server=http://127.0.0.1:{proxy.port}",
                    "--proxy-bypass-list=<-loopback>"):
            opts.add_argument(arg)
        opts.set_capability("goog:loggingPrefs", {"performance": "ALL"})
        driver = webdriver.Chrome(service=Service(driver_path), options=opts)
        try:
            driver.get("about:blank")
            driver.get_log("performance")  # drain the start-up tab's events: only the report's count
            driver.get(page.as_uri())
            driver.execute_script("return new Promise(r => setTimeout(r, 1500))")  # let any late script fetch
            dom = driver.page_source
            events = [_json.loads(e["message"])["message"] for e in driver.get_log("performance")]
        finally:
            driver.quit()
    assert "<b>NO-GO</b>" in dom and "data:image/png;base64," in dom
    urls = [e["params"]["request"]["url"] for e in events if e["method"] == "Network.requestWillBeSent"]
    assert page.as_uri() in urls  # the log does record the page's requests
    remote = [u for u in urls if not u.startswith(("file:", "data:"))]
    assert remote == [], f"report.html requested from the network: {remote}"
    failed = [e["params"] for e in events if e["method"] == "Network.loadingFailed"]
    assert failed == [], failed

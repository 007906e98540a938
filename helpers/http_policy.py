"""One HTTP policy for every client the playbook uses (urllib checks, the aiohttp load generator, lab).

- Proxies: ``HTTPS_PROXY`` / ``HTTP_PROXY`` / ``NO_PROXY`` (either case) as urllib reads them
  (``urllib.request.getproxies`` / ``proxy_bypass``), resolved once per URL; a loopback URL
  (localhost, 127.0.0.0/8, ::1) never goes through a proxy, whatever the environment says.
- CA bundle: ``SSL_CERT_FILE``, else ``REQUESTS_CA_BUNDLE``, else the system store
  (``ssl.create_default_context``), for urllib and aiohttp alike.
- The API key goes only to the URL the user named: urllib drops ``Authorization`` on a redirect to
  another origin; the load generator's POSTs do not follow redirects at all.
"""

from __future__ import annotations

import ipaddress
import os
import ssl
import urllib.parse
import urllib.request
from functools import lru_cache
from typing import Any

from .errors import ParameterError

CA_ENV = ("SSL_CERT_FILE", "REQUESTS_CA_BUNDLE")


def is_loopback(url: str) -> bool:
    """True for http(s)://localhost..., 127.x.y.z and [::1]."""
    host = (urllib.parse.urlsplit(url).hostname or "").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def proxy_for(url: str) -> str | None:
    """The proxy URL a request to ``url`` goes through, or None (loopback, NO_PROXY, no proxy set)."""
    if is_loopback(url):
        return None
    parts = urllib.parse.urlsplit(url)
    proxies = urllib.request.getproxies()
    proxy = proxies.get(parts.scheme) or proxies.get("all")
    if not proxy or urllib.request.proxy_bypass(parts.netloc):
        return None
    return proxy


def ca_bundle() -> str | None:
    """The CA bundle file the environment names (SSL_CERT_FILE, else REQUESTS_CA_BUNDLE), or None."""
    return next((os.environ[k] for k in CA_ENV if os.environ.get(k)), None)


@lru_cache(maxsize=8)
def _context(cafile: str | None) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=cafile)


def ssl_context() -> ssl.SSLContext:
    """The TLS context every client uses (verification on; the CA bundle from the environment)."""
    return _context(ca_bundle())


def same_origin(a: str, b: str) -> bool:
    pa, pb = urllib.parse.urlsplit(a), urllib.parse.urlsplit(b)
    return (pa.scheme, pa.hostname, pa.port or _default_port(pa.scheme)) == \
        (pb.scheme, pb.hostname, pb.port or _default_port(pb.scheme))


def _default_port(scheme: str) -> int:
    return 443 if scheme == "https" else 80


class _KeepKeyHome(urllib.request.HTTPRedirectHandler):
    """Follow redirects, but drop the Authorization header when one leaves the origin the user named."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        new = super().redirect_request(req, fp, code, msg, headers, newurl)
        if new is not None and not same_origin(req.full_url, new.full_url):
            for name in list(new.headers):
                if name.lower() == "authorization":
                    del new.headers[name]
            new.unredirected_hdrs.pop("Authorization", None)
        return new


def opener(url: str) -> urllib.request.OpenerDirector:
    """A urllib opener for ``url`` under this policy."""
    proxy = proxy_for(url)
    scheme = urllib.parse.urlsplit(url).scheme or "http"
    return urllib.request.build_opener(
        urllib.request.ProxyHandler({scheme: proxy} if proxy else {}),
        urllib.request.HTTPSHandler(context=ssl_context()),
        _KeepKeyHome(),
    )


def urlopen(req: urllib.request.Request | str, timeout: float):
    """``urllib.request.urlopen`` under this policy (same arguments, same errors)."""
    url = req.full_url if isinstance(req, urllib.request.Request) else req
    return opener(url).open(req, timeout=timeout)


def client_session(**kwargs: Any):
    """An aiohttp session under this policy: TLS context from the environment, no implicit proxy or
    netrc lookups per request (``trust_env`` off: the proxy is resolved once per URL, see
    :func:`request_kwargs`), no connection limit, cached DNS, no decompression."""
    import aiohttp

    connector = aiohttp.TCPConnector(limit=0, ttl_dns_cache=300, ssl=ssl_context())
    return aiohttp.ClientSession(connector=connector, auto_decompress=False, trust_env=False, **kwargs)


def request_kwargs(url: str) -> dict[str, Any]:
    """Per-request aiohttp arguments for ``url``: its proxy (if any), and no redirects (the API key stays
    with the URL the user named; a redirect is reported as its HTTP status)."""
    proxy = proxy_for(url)
    return {"allow_redirects": False, **({"proxy": proxy} if proxy else {})}


def read_api_key(env_name: str) -> str | None:
    """The key in environment variable ``env_name`` (None when unnamed, unset or empty), without the newline a key
    file or secret mount leaves at its end. A key with a space or control character inside is refused, naming the
    variable and never the value: sent as a header it would fail, and the HTTP library's error quotes the header."""
    if not env_name:
        return None
    key = (os.environ.get(env_name) or "").strip()
    if not key:
        return None
    if any(ch.isspace() or not ch.isprintable() for ch in key):
        bearer = key.lower().startswith("bearer ")
        raise ParameterError(
            f"environment variable {env_name} (api_key_env) holds a space or control character inside the key"
            + (" (it starts with 'Bearer ')" if bearer else ""),
            f"export {env_name} with the bare key only" + (", without 'Bearer ' (the playbook adds it)" if bearer else ""))
    return key

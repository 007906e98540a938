"""Secrets given as server arguments stay on this machine: redact them wherever arguments are written.

``extra_server_args`` may carry ``--api-key X`` (vLLM's OpenAI server, docs.vllm.ai "OpenAI-Compatible
Server", ``--api-key``) or a token; run.json, decision.json, logs and reports show ``<redacted>``
instead. ``host_override`` finds a ``--host`` that would replace the playbook's loopback bind.
``looks_like_secret`` and ``redact_url`` keep a key typed where a variable name goes, and a password
inside a URL, out of error messages; ``redact_command`` does all of it (and ``Authorization: Bearer`` headers) to
another tool's recorded command line (``playbook import``).
"""

from __future__ import annotations

import re
import shlex
from typing import Any

MARK = "<redacted>"
_SECRET_FLAG = re.compile(r"--[\w-]*(key|token|secret|password|passwd|credential)[\w-]*", re.IGNORECASE)
_NOT_SECRET = {"--kv-cache-dtype", "--tokenizer", "--tokenizer-mode", "--tokenizer-revision", "--max-num-batched-tokens",
               "--tokenizer-pool-size", "--skip-tokenizer-init", "--max-logprobs"}


def is_secret_flag(flag: str) -> bool:
    name = flag.split("=", 1)[0]
    return name not in _NOT_SECRET and "tokens" not in name and bool(_SECRET_FLAG.fullmatch(name))


def _secret_spans(args: list[str]) -> list[tuple[int, str, str]]:
    """(index, flag, value) of each secret-looking flag's value in ``args``: ``--hf-token=Y`` at the flag's own index,
    ``--api-key X`` at the next argument's (one not starting with ``--``)."""
    spans: list[tuple[int, str, str]] = []
    for i, arg in enumerate(args):
        if not (arg.startswith("--") and is_secret_flag(arg)):
            continue
        name, eq, value = arg.partition("=")
        if eq:
            spans.append((i, name, value))
        elif i + 1 < len(args) and not args[i + 1].startswith("--"):
            spans.append((i + 1, name, args[i + 1]))
    return spans


def redact_args(args: list[str]) -> list[str]:
    """``args`` with the value of every secret-looking flag (``--api-key X``, ``--hf-token=Y``) replaced."""
    out = [str(a) for a in args]
    for i, name, _value in _secret_spans(out):
        out[i] = f"{name}={MARK}" if out[i].startswith("--") else MARK
    return out


# Where vLLM reads a secret flag's value from the environment instead (vLLM's serve arguments: --api-key falls back
# to VLLM_API_KEY; --hf-token to huggingface_hub's HF_TOKEN).
SECRET_ENV = {"--api-key": "VLLM_API_KEY", "--hf-token": "HF_TOKEN"}


def secret_values(args: list[str]) -> list[str]:
    """The secret flags in ``args`` that carry a value (``--api-key X``, ``--hf-token=Y``): a value given there
    would be written wherever the arguments go (the executed notebooks, their HTML). A bare flag (vLLM's
    ``--hf-token`` alone means "the token of huggingface-cli login") carries none."""
    return [name for _i, name, value in _secret_spans([str(a) for a in args]) if value]


def secret_fix(flags: list[str]) -> str:
    """How to give the secrets of :func:`secret_values` instead: through the environment."""
    ways = []
    for flag in dict.fromkeys(flags):
        if flag == "--api-key":
            ways.append("the server's API key through api_key_env: NAME of an environment variable holding it (the "
                        "managed servers get it as VLLM_API_KEY, the playbook's client sends it)")
        elif flag in SECRET_ENV:
            ways.append(f"{flag} through the environment: export {SECRET_ENV[flag]}=... before the run (vLLM reads it)")
        else:
            ways.append(f"{flag} through an environment variable the server reads")
    return "; ".join(ways) + ", and leave the value out of extra_server_args"


def redact_params(values: dict[str, Any]) -> dict[str, Any]:
    """A copy of step parameters with ``extra_server_args`` redacted (what run.json may hold)."""
    extra = values.get("extra_server_args")
    if not extra:
        return dict(values)
    items = extra.split(",") if isinstance(extra, str) else list(extra)
    return {**values, "extra_server_args": redact_args(items)}


# How common API keys and tokens open (OpenAI/Anthropic-style sk-, Hugging Face hf_, GitHub ghp_/github_pat_,
# GitLab glpat-, Slack xox*, AWS AKIA/ASIA, Google AIza, NVIDIA nvapi-, Groq gsk_, a JWT's eyJ): a value opening
# so, with a few more characters, is a key, never a variable name.
_KEY_PREFIXES = ("sk-", "sk_", "pk-", "pk_", "rk_", "hf_", "ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_",
                 "glpat-", "xoxb-", "xoxp-", "xoxa-", "AKIA", "ASIA", "AIza", "nvapi-", "gsk_", "eyJ")
_KEY_BODY = 6  # characters after the prefix: "sk-abc123" is a key, "sk_" alone is not
_TOKEN_PART = 20  # a run of letters and digits this long (a base64 or hex blob) is a key, not a word of a name


def looks_like_secret(text: str) -> bool:
    """Whether ``text`` looks like an API key or token rather than a name (``sk-...``, ``hf_...``, ``Bearer ...``,
    or a long run mixing letters and digits). Such a value is never echoed in an error."""
    t = str(text).strip()
    if t.lower().startswith("bearer "):
        return True
    if any(t.startswith(p) and len(t) >= len(p) + _KEY_BODY for p in _KEY_PREFIXES):
        return True
    return any(len(part) >= _TOKEN_PART and re.search(r"\d", part) and re.search(r"[A-Za-z]", part)
               for part in re.split(r"[-_.:/+=~]", t))


_USERINFO = re.compile(r"(?<=://)[^/?#\s]*@")  # up to the last @ of the host part: a password may hold one


def url_has_credentials(url: str) -> bool:
    """Whether ``url`` carries a user name or password (``http://user:password@host``)."""
    return bool(_USERINFO.search(str(url)))


_QUERY = re.compile(r"(https?://[^\s?#]*)[?#][^\s]*")  # a URL's query string and fragment: a gateway's ?api_key=


def redact_url(text: str) -> str:
    """``text`` with the credentials of every URL in it replaced: ``http://<redacted>@host:port``, and a URL's
    query string or fragment (``?api_key=...``): ``http://host:port/?<redacted>``."""
    return _QUERY.sub(r"\1?" + MARK, _USERINFO.sub(MARK + "@", str(text)))


# A secret-carrying HTTP header as a command line gives it (``--header 'Authorization: Bearer X'``, ``-H "x-api-key:
# X"``): the header's name says it holds a credential; its value (after an auth scheme word) is replaced. And a bare
# ``Bearer X`` / ``Basic X`` anywhere.
_SECRET_HEADER = re.compile(r"(?i)\b((?:proxy-)?authorization|[\w-]*(?:api[-_]?key|token|secret|password|cookie)[\w-]*)"
                            r"(\s*[:=]\s*)((?:bearer|basic|token)\s+)?([^\s'\",]+)")
_BEARER = re.compile(r"(?i)\b(bearer)(\s+)([A-Za-z0-9._~+/=-]+|<redacted>)")


def _header(m: re.Match) -> str:
    name, value = m.group(1).lower(), m.group(4)
    if value.startswith(MARK) or "tokens" in name or name.startswith("tokenizer"):  # max_tokens:256 is no secret
        return m.group(0)
    return f"{m.group(1)}{m.group(2)}{m.group(3) or ''}{MARK}"


def redact_headers(text: str) -> str:
    """``text`` with the value of every secret-looking header (``Authorization: Bearer X``, ``x-api-key: X``) and of
    every bare ``Bearer X`` replaced."""
    out = _SECRET_HEADER.sub(_header, str(text))
    return _BEARER.sub(lambda m: f"{m.group(1)}{m.group(2)}{MARK}", out)


def redact_command(command: str | None) -> str | None:
    """A command line as another tool recorded it (a benchmark's ``cli_command``), with its secrets replaced: the
    values of secret flags (:func:`redact_args`), secret headers and bearer tokens (:func:`redact_headers`), and the
    credentials and query strings of URLs (:func:`redact_url`). Unchanged when it holds none."""
    if not command:
        return command
    try:
        argv = shlex.split(str(command))
    except ValueError:  # unbalanced quotes: redact the text as it is
        return redact_url(redact_headers(str(command)))
    out = [redact_url(redact_headers(a)) for a in redact_args(argv)]
    return str(command) if out == argv else shlex.join(out)


def url_has_query(url: str) -> bool:
    """Whether ``url`` carries a query string or fragment (``?key=...``, ``#...``)."""
    return bool(_QUERY.fullmatch(str(url).strip()))


def has_redacted(values: dict[str, Any]) -> bool:
    return any(MARK in str(a) for a in (values.get("extra_server_args") or []))


def host_override(args: list[str]) -> str | None:
    """The address a ``--host`` in ``args`` binds to (the last one wins, as in argparse), or None."""
    host = None
    for i, arg in enumerate(map(str, args)):
        if arg == "--host" and i + 1 < len(args):
            host = str(args[i + 1])
        elif arg.startswith("--host="):
            host = arg.split("=", 1)[1]
    return host


LOOPBACK = {"127.0.0.1", "localhost", "::1"}


def host_warning(args: list[str]) -> str | None:
    """A finding when ``extra_server_args`` makes a started server listen beyond loopback."""
    host = host_override(args)
    if host is None or host in LOOPBACK:
        return None
    return (f"extra_server_args sets --host {host}: the vLLM servers this run starts listen on {host}, not only "
            "on 127.0.0.1, so other machines can reach them (and use them without a key unless --api-key is set); "
            "remove --host from extra_server_args unless that is what you want")

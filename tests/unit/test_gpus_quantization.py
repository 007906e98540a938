"""GPU catalog lookups and quantization helpers (servable pairs, acceptance drops, order)."""

from __future__ import annotations

import pytest

from playbook.helpers import gpus
from playbook.helpers import quantization as q
from playbook.helpers.errors import ParameterError
from playbook.helpers.schemas.quantization import AcceptanceRow


@pytest.mark.parametrize("name", ["H100-SXM", "H100-PCIe", "H200", "A100-40GB", "A100-80GB", "L40S", "L4", "A10G",
                                  "B200", "MI300X", "RTX-3090"])
def test_gpu_catalog_has_the_listed_gpus(name):
    g = gpus.get_gpu(name)
    assert g.memory_gib > 10 and g.bandwidth_gbs > 100 and g.bf16_tflops > 10


def test_gpu_names_are_forgiving_and_unknown_lists_close_ones():
    assert gpus.get_gpu("h100 sxm").name == "H100-SXM"
    with pytest.raises(ParameterError, match="H100"):
        gpus.get_gpu("H1000")
    # what nvidia-smi prints, copied as is
    assert gpus.get_gpu("NVIDIA H100 80GB HBM3").name == "H100-SXM"
    assert gpus.get_gpu("NVIDIA GeForce RTX 3090").name == "RTX-3090"
    with pytest.raises(ParameterError, match="unknown GPU 'Tesla V100-SXM2-32GB'"):
        gpus.get_gpu("Tesla V100-SXM2-32GB")


@pytest.mark.parametrize("smi,expected", [("NVIDIA H100 80GB HBM3", "H100-SXM"), ("NVIDIA H100 PCIe", "H100-PCIe"),
                                          ("NVIDIA A100-SXM4-80GB", "A100-80GB"), ("NVIDIA L40S", "L40S"),
                                          ("NVIDIA A10G", "A10G"), ("NVIDIA GeForce RTX 4090", "RTX-4090"),
                                          ("NVIDIA L40", "L40"), ("NVIDIA A10", "A10"), ("NVIDIA GB300", "GB300"),
                                          ("NVIDIA H20", "H20"), ("NVIDIA RTX A1000", None), ("Tesla V100-SXM2-32GB", None),
                                          ("AMD Instinct MI300X", "MI300X"), ("AMD Instinct MI355X", "MI355X"),
                                          ("AMD Instinct MI325X VF", "MI325X"), ("AMD Radeon PRO W7900", None)])
def test_nvidia_smi_names_map_to_catalog(smi, expected):
    assert gpus.match_smi_name(smi) == expected


def test_cpu_entry_reads_host_memory():
    cpu = gpus.get_gpu("cpu")
    assert cpu.is_cpu and cpu.memory_gib == pytest.approx(gpus.host_memory_gib(), abs=0.01) and cpu.memory_gib > 0


def test_serving_overrides():
    spec = {"method": "draft_model", "model": "/d", "num_speculative_tokens": 4}
    assert q.serving_overrides("bf16", "bf16", spec) == {"dtype": "bfloat16"}
    assert q.serving_overrides("fp16", "fp16", spec) == {"dtype": "float16"}
    assert q.serving_overrides("bf16", "fp8", spec)["speculative_config"]["quantization"] == "fp8"
    assert q.serving_overrides("int4", "bf16", spec) is None  # needs an AWQ/GPTQ checkpoint
    assert q.serving_overrides("bf16", "fp16", spec) is None  # the draft runs in the target's dtype
    assert q.serving_overrides("fp8", "", {"method": "ngram"}) == {"quantization": "fp8"}


def test_acceptance_drop_flags_more_than_the_threshold():
    rows = [AcceptanceRow(target_quant="bf16", draft_quant="bf16", servable=True, measured=True, acceptance_rate=0.60),
            AcceptanceRow(target_quant="fp8", draft_quant="bf16", servable=True, measured=True, acceptance_rate=0.57),
            AcceptanceRow(target_quant="int4", draft_quant="bf16", servable=True, measured=True, acceptance_rate=0.50),
            AcceptanceRow(target_quant="int8", draft_quant="bf16", servable=False)]
    assert q.acceptance_drop(rows, 5.0) == 0.60
    assert [r.drop_pp for r in rows] == [0.0, 3.0, 10.0, None]
    assert [r.flagged for r in rows] == [False, False, True, False]


def test_recommendation_order_quantizes_the_draft_first_and_int8_before_int4():
    order = q.recommendation_order(q.pairs())
    assert order[0] == ("bf16", "bf16") and order[1][0] == "bf16"
    assert order.index(("int8", "bf16")) < order.index(("int4", "bf16"))
    assert order.index(("bf16", "int4")) < order.index(("int8", "bf16"))


def test_recommend_skips_pairs_with_a_flagged_drop_and_pairs_that_do_not_fit():
    from playbook.helpers import gpus as g
    from playbook.helpers import memory, models
    from playbook.helpers.schemas.quantization import QuantizationResult

    rows = memory.precision_matrix(models.from_catalog("Llama-3.1-70B"), models.from_catalog("Llama-3.2-1B"),
                                   g.get_gpu("H200"), num_gpus=1, tensor_parallel_size=1, max_model_len=4096)
    result = QuantizationResult(matrix=rows, acceptance=[
        AcceptanceRow(target_quant="int8", draft_quant="bf16", servable=True, measured=True, acceptance_rate=0.5),
        AcceptanceRow(target_quant="int4", draft_quant="bf16", servable=True, measured=True, acceptance_rate=0.62)])
    order, best, finding = q.recommend(result)
    assert "bf16/bf16" not in order  # 70B at BF16 does not fit one H200
    assert order[0].startswith(("fp8", "int8")) and best == order[0]
    result.acceptance[0].flagged = True  # int8/bf16 dropped too much
    _, best2, finding2 = q.recommend(result)
    assert best2 != "int8/bf16" and "drop > 5 pp" in finding2

"""`playbook predict --draft-tp`: only the draft TPs vLLM starts with (helpers/compat.py draft_tp_rule)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from playbook.cli import main

HEAD = str(Path(__file__).resolve().parents[2] / "benchmarks/predictor/heads/EAGLE-LLaMA3.1-Instruct-8B")
PAIR = ["--target", "Llama-3.1-8B", "--draft", "Llama-3.2-1B", "--acceptance", "0.7", "--batch-sizes", "1,8"]


def _run(capsys, *args):
    rc = main(["predict", *args])
    return rc, capsys.readouterr()


@pytest.mark.parametrize("tp,draft_tp,allowed", [(4, 3, "1 or 4"), (2, 4, "1 or 2"), (1, 2, "1,")])
def test_a_draft_tp_other_than_1_or_the_targets_is_refused(capsys, tp, draft_tp, allowed):
    rc, out = _run(capsys, *PAIR, "--gpu", "H100-SXM", "--tp", str(tp), "--draft-tp", str(draft_tp))
    assert rc == 1 and not out.out
    assert f"--draft-tp {draft_tp} with --tp {tp}" in out.err and f"fix: give --draft-tp {allowed}" in out.err


def test_draft_model_at_draft_tp_1_under_a_larger_tp_is_refused(capsys):
    """vLLM's DraftModelProposer refuses a draft TP other than the target's: no prediction for a server that
    does not start."""
    rc, out = _run(capsys, *PAIR, "--gpu", "H100-SXM", "--tp", "4", "--draft-tp", "1")
    assert rc == 1 and "method draft_model" in out.err and "fix: give --draft-tp 4 or leave it out" in out.err


@pytest.mark.parametrize("extra", [["--target-step-ms", "5", "--per-token-ms", "0.1"],
                                   ["--gpu", "H100-SXM", "--tpot-ms", "6,4"]])
def test_measured_step_times_do_not_skip_the_rule(capsys, extra):
    rc, out = _run(capsys, *PAIR, *extra, "--tp", "4", "--draft-tp", "3")
    assert rc == 1 and "--draft-tp 3 with --tp 4" in out.err


def test_the_targets_tp_and_an_eagle_head_at_tp_1_are_predicted(capsys):
    rc, out = _run(capsys, *PAIR, "--gpu", "H100-SXM", "--tp", "4", "--draft-tp", "4", "--json")
    assert rc == 0 and json.loads(out.out)["method"] == "draft_model"
    steps = {}
    for draft_tp in ("1", "4"):
        rc, out = _run(capsys, "--target", "Llama-3.1-8B", "--draft", HEAD, "--gpu", "H100-SXM", "--tp", "4",
                       "--draft-tp", draft_tp, "--acceptance", "0.7", "--batch-sizes", "1", "--json")
        assert rc == 0
        steps[draft_tp] = json.loads(out.out)["draft_step"]["weights_ms"]
    assert steps["1"] == pytest.approx(4 * steps["4"])  # the head unsharded reads all its weights on one GPU


def test_a_lookup_has_no_draft_to_shard(capsys):
    """vLLM does not check draft_tensor_parallel_size for n-gram (no draft model)."""
    rc, _ = _run(capsys, "--target", "Llama-3.1-8B", "--method", "ngram", "--gpu", "H100-SXM", "--acceptance", "0.7",
                 "--tp", "4", "--draft-tp", "3", "--batch-sizes", "1", "--json")
    assert rc == 0

"""A server spread over nodes: what each other node runs besides the head's launch command (helpers/multinode.py)."""

from __future__ import annotations

import json
import shlex

import pytest

from playbook.helpers import decide, multinode, sections, summary
from playbook.helpers.params import ReportParams
from playbook.helpers.schemas.decision import Decision, Evidence, RecommendedConfig

HEAD = ("VLLM_API_KEY=\"$MY_KEY\" vllm serve /models/405b --tensor-parallel-size 8 --pipeline-parallel-size 2 "
        "--speculative-config '{\"method\": \"ngram\", \"num_speculative_tokens\": 3}' --max-num-seqs 8")


def _argv(command: str) -> list[str]:
    return shlex.split(command.replace('"$HEAD_NODE_IP"', "10.0.0.1"))


def test_multiprocessing_over_nodes_gives_each_node_its_rank_headless():
    plan = multinode.plan(HEAD + " --nnodes 3 --node-rank 0 --master-addr 10.0.0.1", 8, 8, 3)
    assert plan.nodes == 3 and [c.node for c in plan.commands] == ["node 2 of 3 (--node-rank 1)",
                                                                   "node 3 of 3 (--node-rank 2)"]
    for rank, c in enumerate(plan.commands, start=1):
        argv = _argv(c.command)
        assert argv.count("--node-rank") == 1 and argv[argv.index("--node-rank") + 1] == str(rank)
        assert "--headless" in argv and argv[argv.index("--master-addr") + 1] == "10.0.0.1"
        assert not any(a.startswith("VLLM_API_KEY") for a in argv)  # a headless node serves no API
        assert argv[argv.index("--speculative-config") + 1] == '{"method": "ngram", "num_speculative_tokens": 3}'
    assert not any("--master-addr is not set" in n for n in plan.notes)


def test_multiprocessing_without_master_addr_says_every_node_needs_it():
    plan = multinode.plan(HEAD + " --nnodes=2", 8, 8, 2)
    argv = _argv(plan.commands[0].command)
    assert argv[argv.index("--master-addr") + 1] == "10.0.0.1"  # the pasteable "$HEAD_NODE_IP"
    assert "--nnodes=2" in argv and "--headless" in argv
    assert any(n.startswith("--master-addr is not set") and "127.0.0.1" in n and "HEAD_NODE_IP=" in n
               for n in plan.notes)


def test_data_parallel_over_nodes_starts_each_node_at_its_first_rank():
    head = ("vllm serve M --data-parallel-size 6 --data-parallel-size-local 2 --data-parallel-address 10.0.0.1 "
            "--data-parallel-rpc-port 13345")
    plan = multinode.plan(head, 2, 1, 1, 6)
    assert plan.nodes == 3 and [c.node for c in plan.commands] == ["node 2 of 3 (ranks 2-3)", "node 3 of 3 (ranks 4-5)"]
    starts = [_argv(c.command)[_argv(c.command).index("--data-parallel-start-rank") + 1] for c in plan.commands]
    assert starts == ["2", "4"] and all("--headless" in c.command for c in plan.commands)
    assert "--data-parallel-address is not set" not in " ".join(plan.notes)


def test_ray_cluster_commands_come_before_the_head_runs_the_launch_command():
    plan = multinode.plan(HEAD + " --distributed-executor-backend ray", 8, 8, 2)
    assert plan.nodes == 2
    assert [c.command for c in plan.commands] == ["ray start --head --port=6379",
                                                  'ray start --address="$HEAD_NODE_IP":6379']
    assert any("launch command on the head node only" in n and "16 GPUs at 8 per node" in n for n in plan.notes)


def test_one_node_needs_no_other_command_and_a_layout_beyond_it_says_how_to_spread():
    assert multinode.plan(HEAD, 16, 8, 2) == multinode.plan(HEAD, None, 8, 2) == multinode.NodePlan()
    plan = multinode.plan(HEAD, 8, 8, 2)
    assert plan.nodes == 2 and not plan.commands
    assert "needs 16 GPUs, 2 nodes of 8" in plan.notes[0] and "--nnodes 2" in plan.notes[0]


def test_the_report_shows_the_other_nodes_commands():
    """From the run's parameters (extra_server_args) and step 20's num_gpus to decision.json, summary.md and the
    report's configuration block."""
    p = ReportParams(mode="managed", target_model="/models/target", method="ngram", draft_model="",
                     tensor_parallel_size=8, pipeline_parallel_size=2,
                     extra_server_args=["--distributed-executor-backend", "ray"])
    rec = RecommendedConfig(enable=True, method="ngram", num_speculative_tokens=3, max_concurrency=8,
                            speculative_config={"method": "ngram", "num_speculative_tokens": 3})
    cmd = decide.launch_command_for(p, rec, gpus_per_node=8)
    assert "--distributed-executor-backend ray" in cmd
    assert [c.command for c in rec.node_commands][0] == "ray start --head --port=6379"
    single = rec.model_copy(deep=True)
    decide.launch_command_for(p, single, gpus_per_node=16)
    assert single.node_commands == []
    rec.launch_command = cmd
    decision = Decision(verdict="GO", confidence="high", headline="h", reasons=[], rules=[], recommended=rec)
    md = summary.summary_markdown(decision, Evidence())
    assert multinode.NODES_LABEL in md and "# node 2 of 2\nray start --address=" in md
    html = sections.recommendation(decision)
    assert "ray start --head --port=6379" in html and "&quot;$HEAD_NODE_IP&quot;:6379" in html
    from playbook.helpers import headline

    assert "2 command(s) for the other nodes" in headline.build(decision, Evidence()).launch_label


# -- a tensor-parallel group over whole nodes ----------------------------------------------------------------------

def test_tensor_parallelism_over_whole_nodes_is_budgeted_and_said():
    """DeepSeek-V3 at TP 16 on two nodes of 8 H100s (vLLM with Ray or --nnodes): budgeted per GPU, with what it costs;
    TP 16 on nodes of 6 GPUs is no whole number of nodes, and a 1-GPU node with TP 2 is a num_gpus left at 1."""
    from playbook.helpers import gpus, memory, models
    from playbook.helpers.errors import ParameterError
    from playbook.helpers.params import MemoryParams, validate_params

    target, h100 = models.resolve("DeepSeek-V3"), gpus.get_gpu("H100-SXM")
    two_nodes = memory.budget(target, None, h100, method="mtp", num_gpus=8, tensor_parallel_size=16)
    one_node = memory.budget(target, None, h100, method="mtp", num_gpus=16, tensor_parallel_size=16)
    assert two_nodes.fits and two_nodes.kv_cache_tokens == one_node.kv_cache_tokens > 0
    assert any(w.startswith("tensor_parallel_size 16 spans 2 nodes of 8 GPUs") for w in two_nodes.warnings)
    assert not any("spans" in w for w in one_node.warnings)
    staged = memory.budget(target, None, h100, method="mtp", num_gpus=8, tensor_parallel_size=16,
                           pipeline_parallel_size=2)
    assert any("(4 nodes for its 2 pipeline stages)" in w for w in staged.warnings)
    assert not memory.budget(target, None, h100, method="mtp", num_gpus=6, tensor_parallel_size=16).fits
    base = {"target_model": "DeepSeek-V3", "method": "mtp", "gpu": "H100-SXM", "mode": "managed"}
    assert validate_params(MemoryParams, {**base, "num_gpus": 8, "tensor_parallel_size": 16}).num_gpus == 8
    for num_gpus, tp, said in [(6, 16, "as a multiple of 6, the GPUs of each node (e.g. 12 or 18)"),
                               (1, 2, "lower tensor_parallel_size to at most 1")]:
        with pytest.raises(ParameterError) as err:
            validate_params(MemoryParams, {**base, "num_gpus": num_gpus, "tensor_parallel_size": tp})
        assert said in str(err.value)
    assert "across nodes" not in str(err.value)  # nodes of one GPU: no TP across them is offered


def test_predict_over_whole_nodes_says_its_all_reduces_are_optimistic(capsys):
    from playbook.cli import main

    rc = main(["predict", "--target", "DeepSeek-V3", "--gpu", "H100-SXM", "--num-gpus", "8", "--tp", "16",
               "--method", "mtp", "-k", "1", "--acceptance-length", "1.8", "--batch-sizes", "1,16", "--json"])
    out = capsys.readouterr()
    assert rc == 0, out.err
    notes = json.loads(out.out)["assumptions"]
    assert any("spans 2 nodes of 8 GPUs" in n and "prediction is optimistic" in n for n in notes)
    assert main(["predict", "--target", "DeepSeek-V3", "--gpu", "H100-SXM", "--num-gpus", "6", "--tp", "16",
                 "--method", "mtp", "-k", "1", "--acceptance-length", "1.8"]) == 1
    assert "--tp 16 needs 16 GPUs" in capsys.readouterr().err

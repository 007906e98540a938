"""What each node runs when the recommended server spans several: vLLM's own multi-node serving, not a cluster layer.

The launch command is what the head node runs. vLLM spreads one server over nodes in three ways, each with commands
for the other nodes (docs.vllm.ai "Parallelism and Scaling"; the flags as vllm/engine/arg_utils.py reads them):

- a Ray cluster (``--distributed-executor-backend ray``): ``ray start --head`` on the head, ``ray start --address`` on
  every other node, then the launch command on the head only (examples/online_serving/multi-node-serving.sh);
- multiprocessing across nodes (``--nnodes N``): the same command on every node with its own ``--node-rank`` and, on
  all but the head, ``--headless``; every node needs ``--master-addr`` (vLLM's default, 127.0.0.1, reaches no other);
- data parallelism over nodes (``--data-parallel-size-local L`` below ``--data-parallel-size``): the other nodes run
  the command ``--headless`` from their first rank (``--data-parallel-start-rank``), reaching the head at
  ``--data-parallel-address``.
"""

from __future__ import annotations

import math
import re
import shlex

from .schemas.decision import NodeCommand, NodePlan
from .specconfig import pop_flags

RAY_PORT = 6379  # ray start --head's default port
HEAD_IP = '"$HEAD_NODE_IP"'  # a shell variable the user sets on every node: the commands stay pasteable
SET_HEAD_IP = "set HEAD_NODE_IP to the head node's IP address on every node first (HEAD_NODE_IP=10.0.0.1)"


def _tokens(command: str) -> list[str]:
    try:
        return shlex.split(command)
    except ValueError:  # an unbalanced quote: no flag is read from it
        return []


def _value(tokens: list[str], *names: str) -> str | None:
    """The last value given to any of ``names`` (``--x v`` or ``--x=v``, as :func:`specconfig.pop_flags` reads
    flags); None when absent."""
    taken = pop_flags(tokens, set(names))[1]
    return taken[-1][1] if taken else None


def _int(text: str | None, default: int) -> int:
    return int(text) if text is not None and text.strip().isdigit() else default


def _without(command: str, *names: str) -> str:
    """``command`` without the flags ``names`` (each with its value unless it is a switch: ``--headless``)."""
    out = command
    for name in names:
        pattern = re.escape(name).replace(r"\-", "[-_]")
        switch = name == "--headless"
        out = re.sub(rf"\s{pattern}(?=\s|$)" if switch else rf"\s{pattern}(?:=\S+|\s+\S+)", "", out)
    return out


def _worker(command: str, *flags: str) -> str:
    """The head's command for a headless node: no API key (a headless node serves no API), ``flags`` appended."""
    command = re.sub(r"""(^|\s)VLLM_API_KEY=("[^"]*"|'[^']*'|\S+)\s""", r"\1", command)
    return " ".join([command, *flags])


def plan(command: str, gpus_per_node: int | None, tensor_parallel_size: int = 1, pipeline_parallel_size: int = 1,
         data_parallel_size: int = 1) -> NodePlan:
    """The other nodes' commands for the head's launch ``command``; a one-node plan when it runs on one node.
    ``gpus_per_node``: the node's GPUs (step 20's num_gpus), to tell a layout that needs more nodes."""
    tokens = _tokens(command)
    tp, pp, dp = (max(1, n) for n in (tensor_parallel_size, pipeline_parallel_size, data_parallel_size))
    world = tp * pp * dp
    nnodes = _int(_value(tokens, "--nnodes", "-n"), 1)
    dp_local = _int(_value(tokens, "--data-parallel-size-local", "-dpl"), 0)
    ray = (_value(tokens, "--distributed-executor-backend") or "") == "ray"
    if nnodes > 1:
        return _multiprocessing(command, tokens, nnodes)
    if dp_local and dp > dp_local:
        return _data_parallel(command, tokens, dp, dp_local)
    needed = math.ceil(world / gpus_per_node) if gpus_per_node else 1
    if ray and needed > 1:
        return _ray(needed, gpus_per_node or 0, world)
    if needed > 1:
        return NodePlan(nodes=needed, notes=[
            f"this layout needs {world} GPUs, {needed} nodes of {gpus_per_node}: the command as it stands runs on one "
            f"node; spread it with vLLM's multiprocessing (--nnodes {needed} --node-rank 0 --master-addr <head node IP>, "
            "the other nodes the same with their --node-rank and --headless) or a Ray cluster "
            "(--distributed-executor-backend ray), given in extra_server_args so this command carries them"])
    return NodePlan()


def _same_everywhere() -> str:
    return ("every node needs the same vLLM version and the model (and the draft) at the same path; the nodes reach "
            "each other over the network the GPUs' collectives use (NCCL_SOCKET_IFNAME / GLOO_SOCKET_IFNAME name it)")


def _multiprocessing(command: str, tokens: list[str], nnodes: int) -> NodePlan:
    base = _without(command, "--node-rank", "-r", "--headless")
    notes = [_same_everywhere()]
    if _value(tokens, "--master-addr") is None:
        base += f" --master-addr {HEAD_IP}"
        notes.insert(0, f"--master-addr is not set: every node's command, the head's too, needs --master-addr with the "
                        f"head node's IP (vLLM's default, 127.0.0.1, reaches no other node); shown as {HEAD_IP}: {SET_HEAD_IP}")
    commands = [NodeCommand(node=f"node {r + 1} of {nnodes} (--node-rank {r})", command=_worker(
        base, "--node-rank", str(r), "--headless")) for r in range(1, nnodes)]
    return NodePlan(nodes=nnodes, commands=commands, notes=notes)


def _data_parallel(command: str, tokens: list[str], dp: int, dp_local: int) -> NodePlan:
    nodes = math.ceil(dp / dp_local)
    base = _without(command, "--data-parallel-start-rank", "-dpr", "--headless", "--api-server-count")
    notes = [_same_everywhere()]
    if _value(tokens, "--data-parallel-address", "-dpa") is None:
        base += f" --data-parallel-address {HEAD_IP}"
        notes.insert(0, "--data-parallel-address is not set: every node's command, the head's too, needs it with the "
                        f"head node's IP (shown as {HEAD_IP}: {SET_HEAD_IP}), and the same --data-parallel-rpc-port")
    commands = [NodeCommand(node=f"node {i + 1} of {nodes} (ranks {i * dp_local}-{min(dp, (i + 1) * dp_local) - 1})",
                            command=_worker(base, "--headless", "--data-parallel-start-rank", str(i * dp_local)))
                for i in range(1, nodes)]
    return NodePlan(nodes=nodes, commands=commands, notes=notes)


def _ray(nodes: int, gpus_per_node: int, world: int) -> NodePlan:
    head = NodeCommand(node="head node, first", command=f"ray start --head --port={RAY_PORT}")
    others = [NodeCommand(node=f"node {i + 1} of {nodes}", command=f"ray start --address={HEAD_IP}:{RAY_PORT}")
              for i in range(1, nodes)]
    return NodePlan(nodes=nodes, commands=[head, *others], notes=[
        f"a Ray cluster of {nodes} nodes ({world} GPUs at {gpus_per_node} per node): start it first (`ray status` on "
        f"the head lists every node's GPUs), then run the launch command on the head node only; {SET_HEAD_IP}",
        _same_everywhere()])


def as_script(commands: list[NodeCommand]) -> str:
    """The commands as one shell listing, each under a comment naming its node (report and summary.md)."""
    return "\n".join(f"# {c.node}\n{c.command}" for c in commands)


NODES_LABEL = "The other nodes' commands (a Ray cluster's before the launch command; the others with it)"

"""Kill a server's whole process tree, and a watchdog that does it when the launcher dies.

The launcher (notebook kernel, CLI, test) starts vLLM in a new session, then starts this module
as a tiny separate process (``python -m playbook.helpers.reaper PID``) whose stdin is the read end
of a pipe only the launcher holds. When the launcher dies, even by SIGKILL, the kernel closes the
pipe; the watchdog reads EOF and kills the server's process groups. A clean ``stop()`` writes
``disarm`` first, so the watchdog just exits. The watchdog also remembers every descendant of the
server and their process groups (vLLM's data-parallel supervisor calls setpgrp), so nothing that
left the first group is missed.
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

DISARM = b"disarm\n"


def proc_stat(pid: int) -> tuple[str, int, int, int] | None:
    """(state, ppid, pgid, start ticks) of a process from /proc, or None if it does not exist."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (OSError, ValueError):
        return None
    fields = raw[raw.rfind(")") + 2:].split()
    return fields[0], int(fields[1]), int(fields[2]), int(fields[19])


def proc_start_ticks(pid: int) -> int | None:
    stat = proc_stat(pid)
    return stat[3] if stat else None


def is_running(pid: int, start_ticks: int | None = None) -> bool:
    """True if the process exists, is not a zombie, and (if given) started at ``start_ticks``."""
    stat = proc_stat(pid)
    if stat is None:
        if Path("/proc").is_dir():
            return False
        try:  # no /proc (not Linux): a signal probe
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    return stat[0] not in ("Z", "X") and (start_ticks is None or stat[3] == start_ticks)


def _live_stats() -> dict[int, tuple[str, int, int, int]]:
    stats = {}
    for entry in Path("/proc").iterdir() if Path("/proc").is_dir() else []:
        if entry.name.isdigit() and (stat := proc_stat(int(entry.name))) and stat[0] not in ("Z", "X"):
            stats[int(entry.name)] = stat
    return stats


def descendants(pid: int) -> list[int]:
    """Every live descendant of ``pid`` (children, grandchildren, ...)."""
    children: dict[int, list[int]] = {}
    for child, stat in _live_stats().items():
        children.setdefault(stat[1], []).append(child)
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def tree_snapshot(pid: int) -> dict[int, int]:
    """{pid: start ticks} of a live process and its live descendants."""
    pids = [pid, *descendants(pid)] if is_running(pid) else []
    return {p: t for p in pids if (t := proc_start_ticks(p)) is not None}


def _tree_groups(tree: dict[int, int]) -> set[int]:
    """Process groups led by a member of the tree (the server's session, DP supervisors, ...)."""
    return {stat[2] for p in tree if (stat := proc_stat(p)) and stat[2] in tree}


def _still_ours(tree: dict[int, int], groups: set[int]) -> dict[int, int]:
    """Members of the tree, or of its groups, that are still running (same start time: no pid reuse)."""
    live = {p: t for p, t in tree.items() if is_running(p, t)}
    for p, stat in _live_stats().items():
        if stat[2] in groups and p not in live:
            live[p] = stat[3]
    return live


def _signal(pids: dict[int, int], groups: set[int], sig: int) -> None:
    for pgid in groups:
        if pgid > 1 and pgid != os.getpgrp():
            try:
                os.killpg(pgid, sig)
            except (ProcessLookupError, PermissionError):
                pass
    for pid in pids:
        try:
            os.kill(pid, sig)
        except (ProcessLookupError, PermissionError):
            pass


def kill_tree(pid: int, grace_s: float = 10.0, known: dict[int, int] | None = None,
              pgid: int | None = None) -> bool:
    """SIGTERM a server's process groups and descendants, wait ``grace_s``, then SIGKILL.

    ``known`` adds members seen earlier ({pid: start ticks}); ``pgid`` is the server's own group
    (its pid, as it leads a new session). Returns True when none of them is left.
    """
    tree = {**(known or {}), **tree_snapshot(pid)}
    groups = _tree_groups(tree) | ({pid} if pid in tree else set()) | ({pgid} if pgid else set())
    deadline = time.monotonic() + grace_s
    if pid in tree and is_running(pid, tree[pid]):
        _signal({pid: tree[pid]}, set(), signal.SIGTERM)  # first the server alone: it shuts its children down
        while is_running(pid, tree[pid]) and time.monotonic() < deadline - grace_s / 2:
            time.sleep(0.1)
    if _still_ours(tree, groups):
        _signal(_still_ours(tree, groups), groups, signal.SIGTERM)
    while _still_ours(tree, groups) and time.monotonic() < deadline:
        time.sleep(0.1)
    if left := _still_ours(tree, groups):
        _signal(left, groups, signal.SIGKILL)
        deadline = time.monotonic() + 5
        while _still_ours(tree, groups) and time.monotonic() < deadline:
            time.sleep(0.05)
    return not _still_ours(tree, groups)


class Reaper:
    """Handle on a running watchdog; ``disarm()`` lets it exit without killing anything."""

    def __init__(self, pid: int, proc: subprocess.Popen, write_fd: int):
        self.pid, self.proc, self._fd = pid, proc, write_fd

    def disarm(self) -> None:
        if self._fd is None:
            return
        try:
            os.write(self._fd, DISARM)
        except OSError:
            pass
        os.close(self._fd)
        self._fd = None
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def start_reaper(server_pid: int, grace_s: float = 10.0) -> Reaper:
    """Start the watchdog for a server; it kills the server's tree if this process dies."""
    read_fd, write_fd = os.pipe()  # both non-inheritable; only the watchdog gets read_fd as stdin
    proc = subprocess.Popen(
        [sys.executable, "-m", "playbook.helpers.reaper", str(server_pid), str(grace_s)],
        stdin=read_fd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    os.close(read_fd)
    return Reaper(server_pid, proc, write_fd)


def _watch(server_pid: int, grace_s: float) -> int:
    for sig in (signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)
    tree = tree_snapshot(server_pid)
    start = tree.get(server_pid)
    while True:
        ready, _, _ = select.select([0], [], [], 1.0)
        if ready:
            data = os.read(0, 64)
            if data.startswith(DISARM.strip()):
                return 0
            if not data:  # EOF: the launcher died without disarming
                kill_tree(server_pid, grace_s, known=tree, pgid=server_pid)
                return 0
        if not is_running(server_pid, start):  # the server died: clean up what it left behind
            kill_tree(server_pid, 2.0, known=tree, pgid=server_pid)
            return 0
        tree.update(tree_snapshot(server_pid))


if __name__ == "__main__":
    sys.exit(_watch(int(sys.argv[1]), float(sys.argv[2]) if len(sys.argv) > 2 else 10.0))

"""Where the load test's client and the embedded servers run: on different CPU cores.

On a 2-core machine the load generator's event loop and vLLM's OpenMP threads otherwise compete for
the same cores: a client late to read a stream merges its chunks (they look burst-delivered) and the
server's pace moves with the client's work. See :class:`Placement`.

Pinning alone does not stop it: with Linux's per-session scheduling groups (autogroup, on by default)
the kernel running the client is one group and each vLLM server another, and vLLM's engine core
busy-polls for a second after every step. A client made to wait 100-500 ms then reads a whole stream
in one go. Measured here with one busy process beside an embedded server: 32 of 48 streams
burst-delivered; with the client's group favoured (autogroup nice -10) 2 of 48. So the embedded load
test also favours the client's group, where it may (root or CAP_SYS_NICE), and says so.
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlparse

from .embedded import BIND_ENV
from .loadgen import Target


class Placement:
    """Embedded engine on 2+ cores: the client on the first core, the servers' compute elsewhere.

    Each embedded server's OpenMP (compute) threads are bound by its own launch environment
    (``embedded.omp_bind``: every core but the first), so the binding is the same whoever starts the
    server (the run's pool, a step, a test) and the same at every start. :meth:`pin_client` pins every
    thread of this process to the first core and says where each server computes; :meth:`release`
    restores them. The servers' API and engine-core processes are left to the kernel.
    """

    def __init__(self, enabled: bool):
        self.local = enabled
        self.autogroup_nice: int | None = None
        self.cores = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
        self.enabled = enabled and len(self.cores) >= 2
        self.saved: dict[int, set[int]] = {}
        self.note = "" if self.enabled else ("not pinned: " + ("not the embedded engine" if not enabled else
                                                               f"{len(self.cores)} core(s) available"))

    def pin_client(self, targets: dict[str, Target]) -> None:
        if self.local:
            self.autogroup_nice = _autogroup_nice()
            boosted = _set_autogroup_nice(CLIENT_AUTOGROUP_NICE) if self.autogroup_nice is not None else False
            self.note = (self.note + "; " if self.note else "") + (
                f"client's scheduling group favoured (autogroup nice {CLIENT_AUTOGROUP_NICE})" if boosted
                else "client's scheduling group not favoured (autogroup off, or not permitted)")
            if not boosted:
                self.autogroup_nice = None
        if not self.enabled:
            return
        for tid in _threads():
            try:
                self.saved[tid] = os.sched_getaffinity(tid)
                os.sched_setaffinity(tid, self.cores[:1])
            except OSError:
                continue
        placed = {c: _compute_cores(t.url) for c, t in targets.items()}
        where = ", ".join(f"{c} on {sorted(v) if v else '?'}" for c, v in placed.items())
        self.note = f"client on core {self.cores[0]}; servers compute: {where}; " + self.note
        if any(v is not None and self.cores[0] in v for v in placed.values()):
            self.note += f" (a server computes on the client's core {self.cores[0]}: started with its own " \
                         f"{BIND_ENV}, or before this placement)"

    def release(self) -> None:
        if self.autogroup_nice is not None:
            _set_autogroup_nice(self.autogroup_nice)
            self.autogroup_nice = None
        for tid, mask in self.saved.items():
            try:
                os.sched_setaffinity(tid, mask)
            except OSError:
                continue
        self.saved.clear()


CLIENT_AUTOGROUP_NICE = -10
_AUTOGROUP = "/proc/self/autogroup"


def _autogroup_nice() -> int | None:
    """This session's autogroup nice value, or None when autogroup is off or absent."""
    try:
        if Path("/proc/sys/kernel/sched_autogroup_enabled").read_text().strip() != "1":
            return None
        return int(Path(_AUTOGROUP).read_text().split("nice")[1])
    except (OSError, ValueError, IndexError):
        return None


def _set_autogroup_nice(nice: int) -> bool:
    try:
        with open(_AUTOGROUP, "w") as fh:
            fh.write(str(nice))
        return True
    except OSError:  # lowering it needs CAP_SYS_NICE
        return False


def _threads() -> list[int]:
    try:
        return [int(t) for t in os.listdir("/proc/self/task")]
    except OSError:
        return [0]


def _compute_cores(url: str) -> set[int] | None:
    """Cores of the narrowest-bound process in the tree of the server listening on the URL's port
    (vLLM's worker, whose OpenMP threads are bound); None when it cannot be found."""
    try:
        import psutil

        port = urlparse(url).port
        for c in psutil.net_connections(kind="inet"):
            if c.laddr and c.laddr.port == port and c.status == psutil.CONN_LISTEN and c.pid:
                proc = psutil.Process(c.pid)
                masks = [set(p.cpu_affinity()) for p in [proc, *proc.children(recursive=True)]]
                return min(masks, key=len)
    except Exception:  # noqa: BLE001 - informative only (psutil may be missing or denied)
        return None
    return None

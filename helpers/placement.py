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
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlparse

from .loadgen import Target


class Placement:
    """Embedded engine on 2+ cores: servers on every core but the first, the client on the first.

    Servers inherit the affinity of the thread that starts them (vLLM's CPU backend then binds its
    OpenMP threads inside it), so :meth:`starting_servers` narrows this thread's affinity while they
    start; :meth:`pin_client` then pins every thread of this process to the first core and
    :meth:`release` restores them. Servers that were already running are left alone (and said so).
    """

    def __init__(self, enabled: bool):
        self.local = enabled
        self.autogroup_nice: int | None = None
        self.cores = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
        self.enabled = enabled and len(self.cores) >= 2
        self.saved: dict[int, set[int]] = {}
        self.note = "" if self.enabled else ("not pinned: " + ("not the embedded engine" if not enabled else
                                                               f"{len(self.cores)} core(s) available"))

    @contextmanager
    def starting_servers(self):
        if not self.enabled:
            yield
            return
        mine = os.sched_getaffinity(0)
        os.sched_setaffinity(0, self.cores[1:])
        try:
            yield
        finally:
            os.sched_setaffinity(0, mine)

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
        placed = {c: _server_cores(t.url) for c, t in targets.items()}
        servers = set(self.cores[1:])
        where = ", ".join(f"{c} on {sorted(v) if v else '?'}" for c, v in placed.items())
        self.note = f"client on core {self.cores[0]}; servers: {where}; " + self.note
        if any(v is not None and v != servers for v in placed.values()):
            self.note += " (a server already running before this step was not moved)"

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


def _server_cores(url: str) -> set[int] | None:
    """CPU affinity of the process listening on the URL's port (None when it cannot be found)."""
    try:
        import psutil

        port = urlparse(url).port
        for c in psutil.net_connections(kind="inet"):
            if c.laddr and c.laddr.port == port and c.status == psutil.CONN_LISTEN and c.pid:
                return set(os.sched_getaffinity(c.pid))
    except Exception:  # noqa: BLE001 - informative only (psutil may be missing or denied)
        return None
    return None

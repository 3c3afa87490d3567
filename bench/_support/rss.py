"""Peak RSS of the run processes, sampled while a benchmark runs."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable


# -- peak RSS of run processes -------------------------------------------------------------------
def _proc_table() -> dict[int, tuple[int, str]]:
    """pid -> (ppid, cmdline) for every process we can read."""
    table_ = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as handle:
                stat = handle.read()
            ppid = int(stat[stat.rindex(b")") + 2 :].split()[1])
            with open(f"/proc/{entry.name}/cmdline", "rb") as handle:
                cmdline = handle.read().replace(b"\0", b" ").decode(errors="replace")
        except (OSError, ValueError):
            continue
        table_[int(entry.name)] = (ppid, cmdline)
    return table_


def _hwm_kib(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/status") as handle:
            for line in handle:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def classify(cmdline: str, parent_cmdline: str = "") -> str:
    """What a descendant of the webserver or the daemon is. The default run launcher asks the code
    location's gRPC server (`dagster api grpc`) to start each run, which it does in a fresh process
    made by multiprocessing's spawn (`... spawn_main ...`); `dagster api execute_run` is the same
    role for launchers that start a command (WarmRunLauncher with warm: false). WarmRunLauncher's
    runs are forks of its worker, so they carry the worker's command line: a child of the worker is
    a run, the worker itself is not."""
    if "resource_tracker" in cmdline:
        return "other"
    if "warm_runs.forkserver" in cmdline:
        return "run" if "warm_runs.forkserver" in parent_cmdline else "warm worker"
    if "spawn_main" in cmdline or "execute_run" in cmdline or "execute_step" in cmdline:
        return "run"
    if "api grpc" in cmdline or "code-server" in cmdline:
        return "code server"
    return "other"


class RssSampler:
    """Samples /proc every `interval` s for descendants of the given roots and keeps each process's
    peak resident set (VmHWM, the kernel's own high-water mark, so a spike between samples counts)."""

    def __init__(self, roots: Callable[[], list[int]], interval: float = 0.2, everything_runs: bool = False) -> None:
        self.roots = roots
        self.interval = interval
        self.everything_runs = everything_runs  # `picsaris process`: it and its workers all run runs
        self.peaks: dict[int, tuple[str, int]] = {}  # pid -> (class, VmHWM KiB)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def sample(self) -> None:
        procs = _proc_table()
        children: dict[int, list[int]] = {}
        for pid, (ppid, _) in procs.items():
            children.setdefault(ppid, []).append(pid)
        stack = list(self.roots())
        roots = set(stack)
        while stack:
            pid = stack.pop()
            stack.extend(children.get(pid, []))
            cmdline = procs.get(pid, (0, ""))[1]
            if self.everything_runs:  # Python processes only: not the compute-log tails and their watchers
                python = "python" in cmdline and "watch_orphans" not in cmdline and "resource_tracker" not in cmdline
                kind = "run" if python else "other"
            else:
                parent = procs.get(procs.get(pid, (0, ""))[0], (0, ""))[1]
                kind = "service" if pid in roots else classify(cmdline, parent)
            hwm = _hwm_kib(pid)
            if hwm is not None:
                previous = self.peaks.get(pid, (kind, 0))[1]
                self.peaks[pid] = (kind, max(previous, hwm))

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def peak_mib(self, kind: str) -> tuple[int, float]:
        """(processes seen, max VmHWM in MiB) of one class."""
        values = [kib for k, kib in self.peaks.values() if k == kind]
        return len(values), (max(values) / 1024 if values else float("nan"))

    def reset(self) -> None:
        self.peaks.clear()

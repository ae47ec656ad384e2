"""A watchdog that outlives the search driver: when the driver dies, even by kill -9, it ends every
process the driver had started (the embedded Ray instance and its workers), so none is left behind.

Run as `python -m sola_search.search.reaper DRIVER_PID` in its own session; it snapshots the
driver's descendants every `INTERVAL` seconds and, once the driver is gone, terminates them."""

from __future__ import annotations

import sys
import time

import psutil

INTERVAL = 0.5
GRACE = 3.0


def _descendants(proc: psutil.Process) -> dict[int, psutil.Process]:
    try:
        return {p.pid: p for p in proc.children(recursive=True)}
    except psutil.Error:
        return {}


def reap(procs: list[psutil.Process]) -> None:
    """SIGTERM, then SIGKILL what is still alive after a grace period (psutil checks each process's
    start time, so a recycled pid is never hit)."""
    for p in procs:
        try:
            p.terminate()
        except psutil.Error:
            pass
    _, alive = psutil.wait_procs(procs, timeout=GRACE)
    for p in alive:
        try:
            p.kill()
        except psutil.Error:
            pass


def _alive(p: psutil.Process) -> bool:
    try:
        return p.is_running() and p.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def watch(driver_pid: int) -> None:
    try:
        driver = psutil.Process(driver_pid)
    except psutil.NoSuchProcess:
        return
    me = psutil.Process()
    known: dict[int, psutil.Process] = {}
    while _alive(driver):
        known.update(_descendants(driver))
        known.pop(me.pid, None)
        time.sleep(INTERVAL)
    # Processes the driver started, including those re-parented when it died.
    reap([p for p in known.values() if _alive(p)])


if __name__ == "__main__":
    watch(int(sys.argv[1]))

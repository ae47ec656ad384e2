"""Warm Ray workers, one job at a time: what `run`'s search loop, its front confirmation and `calibrate`
share.

A worker (`cluster.ProxyWorker`, a Ray actor) is started and warmed once (`warm`: data on the device,
kernels loaded, so that no job pays a process's one-off costs), then handed one job at a time (`train`:
a pack of patterns). The pool keeps which workers are warming, idle and busy; `wait` returns what ended,
a warm-up or a job, as Ray reports it; a worker whose process died leaves the pool (the caller starts
another when it still has work); `poll` asks the busy workers every `PROGRESS_POLL_S` seconds how their
job is going (`poll_s`: the interval to pass on to `train`, which reports at it). What a job is and what
its results mean stay with the caller."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

PROGRESS_POLL_S = 5.0  # how often a busy worker is asked how its pack is going (and how often it reports)


@dataclass(frozen=True)
class Warmed:
    """A worker's warm-up ended: what it reported, or why it failed. Either way the worker is idle
    now (a job handed to a worker that could not warm fails and says why)."""

    info: dict | None
    error: BaseException | None
    wall: float


def ready_note(info: dict, wall: float) -> str:
    """The progress line a worker's warm-up gets: how long it took and where the time went (data,
    kernels), or why it failed (`reason`)."""
    return (f"worker {info.get('pid', '?')} ready after {wall:.1f}s"
            + (f" (data {info['data_s']:.1f}s, kernels {info['kernels_s']:.1f}s)" if "data_s" in info
               else f": {info.get('reason', '')}"))


@dataclass(frozen=True)
class Done:
    """A job ended: its results, or the exception the worker raised (its process may have died:
    `worker_died`, and the worker has left the pool). `ref` names the job while it ran (`poll`)."""

    ref: Any
    job: Any
    results: Any
    error: BaseException | None
    wall: float
    worker_died: bool = False


class WorkerPool:
    def __init__(self, actor_cls, warm_args: tuple, size: int):
        """`actor_cls`: `cluster.worker_actor(options)`; each new worker runs `warm(*warm_args)` first."""
        self._actor, self._warm_args = actor_cls, warm_args
        self.idle: list = []
        self.warming: dict = {}  # ObjectRef of a worker's `warm` → (worker, start)
        self.jobs: dict = {}  # ObjectRef of a worker's `train` → (job, worker, start)
        self._polls: dict = {}  # ObjectRef of a worker's `progress` → the ObjectRef of its job
        self.poll_s = PROGRESS_POLL_S  # read once: the interval jobs are given to report at, too
        self._next_poll = time.monotonic() + self.poll_s
        for _ in range(size):
            self.start()

    def start(self) -> None:
        """One more worker, warming."""
        actor = self._actor.remote()
        self.warming[actor.warm.remote(*self._warm_args)] = (actor, time.monotonic())

    def submit(self, job: Any, *train_args: Any) -> Any:
        """Hand `job` to an idle worker as `train(*train_args)`; its ObjectRef."""
        actor = self.idle.pop()
        ref = actor.train.remote(*train_args)
        self.jobs[ref] = (job, actor, time.monotonic())
        return ref

    def running(self) -> list:
        """The jobs handed out and not yet ended."""
        return [job for job, _, _ in self.jobs.values()]

    def wait(self, timeout: float = 0.5) -> list[Warmed | Done]:
        """What ended within `timeout` seconds (at most one, as `ray.wait` with num_returns=1)."""
        import ray

        ready, _ = ray.wait([*self.jobs, *self.warming], num_returns=1, timeout=timeout)
        out: list[Warmed | Done] = []
        for ref in ready:
            if ref in self.warming:
                actor, t0 = self.warming.pop(ref)
                try:
                    info, error = ray.get(ref), None
                except Exception as e:  # noqa: BLE001 — the caller says why
                    info, error = None, e
                self.idle.append(actor)
                out.append(Warmed(info, error, time.monotonic() - t0))
                continue
            job, actor, t0 = self.jobs.pop(ref)
            try:
                results, error = ray.get(ref), None
            except Exception as e:  # noqa: BLE001 — the worker raised or its process died: the caller says why
                results, error = None, e
            died = isinstance(error, ray.exceptions.RayActorError)
            if not died:
                self.idle.append(actor)
            out.append(Done(ref, job, results, error, time.monotonic() - t0, died))
        return out

    def poll(self) -> list[tuple[Any, Any, dict]]:
        """The busy workers' answers to the last progress question, (job ref, job, info) for each that
        answered with something; and, every `PROGRESS_POLL_S` seconds, the question again to each
        worker that has none pending. Never blocks."""
        import ray

        out = []
        if self._polls:
            ready, _ = ray.wait(list(self._polls), num_returns=len(self._polls), timeout=0)
            for ref in ready:
                job_ref = self._polls.pop(ref)
                try:
                    info = ray.get(ref)
                except Exception:  # noqa: BLE001 — a dead worker: its job's own result says why
                    continue
                if job_ref in self.jobs and info:
                    out.append((job_ref, self.jobs[job_ref][0], info))
        if time.monotonic() >= self._next_poll:
            self._next_poll = time.monotonic() + self.poll_s
            asked = set(self._polls.values())
            for job_ref, (_, actor, _) in self.jobs.items():
                if job_ref not in asked:
                    self._polls[actor.progress.remote()] = job_ref
        return out

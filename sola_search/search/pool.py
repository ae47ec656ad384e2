"""Warm Ray workers, each holding up to `depth` jobs: what `run`'s search loop, its front confirmation
and `calibrate` share.

A worker (`cluster.ProxyWorker`, a Ray actor) is started and warmed once (`warm`: data on the device,
kernels loaded, so that no job pays a process's one-off costs), then handed jobs (`train`: a pack of
patterns). With `depth` 1 a worker gets a job only when it has none; with 2 the search loop may queue
a second one behind the job it is training (`room`), so that the worker goes from one pack straight to
the next while the driver tells the study the first one's results. The pool keeps which workers are
warming, idle and busy and which job of a busy worker is its running one (the oldest: a worker takes
its jobs in order); `wait` returns what ended, a warm-up or a job, as Ray reports it; a worker whose
process died leaves the pool with all its jobs (the caller starts another when it still has work);
`poll` asks each busy worker every `PROGRESS_POLL_S` seconds how its running job is going (`poll_s`:
the interval to pass on to `train`, which reports at it). What a job is and what its results mean
stay with the caller."""

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
    kernels; compiled blocks' graphs loaded from the caches or generated), or why it failed (`reason`)."""
    graphs = info.get("graphs")
    compiled = f"; graphs {graphs['loaded']} loaded, {graphs['generated']} generated" if graphs else ""
    return (f"worker {info.get('pid', '?')} ready after {wall:.1f}s"
            + (f" (data {info['data_s']:.1f}s, kernels {info['kernels_s']:.1f}s{compiled})" if "data_s" in info
               else f": {info.get('reason', '')}"))


@dataclass(frozen=True)
class Done:
    """A job ended: its results, or the exception the worker raised (its process may have died:
    `worker_died`, and the worker has left the pool with every job it held). `ref` names the job
    while it ran (`poll`). `wall` counts from submit: for a job handed out behind another of its
    worker's (`queued`) it includes that wait. `started` is False for a job whose worker died before
    it came to run it (it waited behind the one that was running)."""

    ref: Any
    job: Any
    results: Any
    error: BaseException | None
    wall: float
    worker_died: bool = False
    queued: bool = False
    started: bool = True


@dataclass
class _Job:
    job: Any
    worker: Any
    submitted: float
    queued: bool  # handed out while its worker held another job
    started: float | None  # when it became its worker's running job, as the driver saw it; None while it waits


class WorkerPool:
    def __init__(self, actor_cls, warm_args: tuple, size: int, depth: int = 1):
        """`actor_cls`: `cluster.worker_actor(options)`; each new worker runs `warm(*warm_args)` first.
        `depth`: the jobs a worker may hold, its running one and those queued behind it."""
        self._actor, self._warm_args, self.depth = actor_cls, warm_args, depth
        self.idle: list = []  # workers holding no job
        self.warming: dict = {}  # ObjectRef of a worker's `warm` → (worker, start)
        self.jobs: dict[Any, _Job] = {}  # ObjectRef of a worker's `train` → the job; in the order handed out
        self._polls: dict = {}  # ObjectRef of a worker's `progress` → (worker, the ObjectRef of its running job)
        self.poll_s = PROGRESS_POLL_S  # read once: the interval jobs are given to report at, too
        self._next_poll = time.monotonic() + self.poll_s
        for _ in range(size):
            self.start()

    def start(self) -> None:
        """One more worker, warming."""
        actor = self._actor.remote()
        self.warming[actor.warm.remote(*self._warm_args)] = (actor, time.monotonic())

    def submit(self, job: Any, *train_args: Any, worker: Any = None) -> Any:
        """Hand `job` to `worker` as `train(*train_args)`: one of `room()`'s, where it queues behind the
        job that worker is running; by default an idle worker. Its ObjectRef."""
        if worker is None:
            worker = self.idle.pop()
        elif worker in self.idle:
            self.idle.remove(worker)
        held = len(self._held(worker))
        assert held < self.depth, f"a worker holds {held} jobs already (depth {self.depth})"
        ref = worker.train.remote(*train_args)
        now = time.monotonic()
        self.jobs[ref] = _Job(job, worker, now, queued=held > 0, started=None if held else now)
        return ref

    def room(self) -> list[tuple[Any, float]]:
        """(worker, when its running job started) for each busy worker that holds fewer than `depth`
        jobs: where `submit` may queue one more."""
        heads = self._running_jobs()
        return [(worker, self.jobs[ref].started) for worker, ref in heads.items()
                if len(self._held(worker)) < self.depth]

    def running(self) -> list:
        """The jobs handed out and not yet ended: those training and those queued behind them."""
        return [j.job for j in self.jobs.values()]

    def waiting(self) -> list:
        """The jobs queued behind their worker's running one."""
        return [j.job for j in self.jobs.values() if j.started is None]

    def _held(self, worker: Any) -> list:
        """The ObjectRefs of `worker`'s jobs, oldest (its running one) first."""
        return [ref for ref, j in self.jobs.items() if j.worker == worker]

    def _running_jobs(self) -> dict:
        """Each busy worker → the ObjectRef of its running job (its oldest)."""
        heads: dict = {}
        for ref, j in self.jobs.items():
            heads.setdefault(j.worker, ref)
        return heads

    def wait(self, timeout: float = 0.5) -> list[Warmed | Done]:
        """What ended within `timeout` seconds (no longer than the progress interval, so that the
        caller's `poll` keeps its pace): one warm-up or job (as `ray.wait` with num_returns=1), or every
        job of a worker that died."""
        import ray

        ready, _ = ray.wait([*self.jobs, *self.warming], num_returns=1, timeout=min(timeout, self.poll_s))
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
            try:
                results, error = ray.get(ref), None
            except Exception as e:  # noqa: BLE001 — the worker raised or its process died: the caller says why
                results, error = None, e
            if isinstance(error, ray.exceptions.RayActorError):
                out += self._lost(self.jobs[ref].worker, error)
            else:
                out.append(self._ended(ref, results, error))
        return out

    def _ended(self, ref: Any, results: Any, error: BaseException | None) -> Done:
        """A job its worker finished (or raised in): the next job it holds is now its running one. A queued
        job may end first (on a worker's second train thread it raised at entry): the running one goes on,
        its start as it was."""
        j = self.jobs.pop(ref)
        now = time.monotonic()
        rest = self._held(j.worker)
        if rest:
            if self.jobs[rest[0]].started is None:
                self.jobs[rest[0]].started = now
        else:
            self.idle.append(j.worker)
        return Done(ref, j.job, results, error, now - j.submitted, queued=j.queued)

    def _lost(self, worker: Any, error: BaseException) -> list[Done]:
        """Every job of a worker whose process died, its running one first: all failed with `error`.
        (None of them had ended: `ray.wait` gives ready refs in the order asked, the oldest first.)"""
        now = time.monotonic()
        out = []
        for ref in self._held(worker):
            j = self.jobs.pop(ref)
            out.append(Done(ref, j.job, None, error, now - j.submitted, worker_died=True, queued=j.queued,
                            started=j.started is not None))
        return out

    def poll(self) -> list[tuple[Any, Any, dict]]:
        """The busy workers' answers to the last progress question, (job ref, job, info) for each that
        answered with something, given to the job that was running when it was asked; and, every
        `PROGRESS_POLL_S` seconds, the question again to each busy worker that has none pending (one
        question a worker, however many jobs it holds). Never blocks."""
        import ray

        out = []
        if self._polls:
            ready, _ = ray.wait(list(self._polls), num_returns=len(self._polls), timeout=0)
            for ref in ready:
                _, job_ref = self._polls.pop(ref)
                try:
                    info = ray.get(ref)
                except Exception:  # noqa: BLE001 — a dead worker: its job's own result says why
                    continue
                if job_ref in self.jobs and info:
                    out.append((job_ref, self.jobs[job_ref].job, info))
        if time.monotonic() >= self._next_poll:
            self._next_poll = time.monotonic() + self.poll_s
            asked = {worker for worker, _ in self._polls.values()}
            for worker, job_ref in self._running_jobs().items():
                if worker not in asked:
                    self._polls[worker.progress.remote()] = (worker, job_ref)
        return out

"""`WorkerPool`'s bookkeeping with `depth` 2 (`run --ahead 1`), on a real local Ray with stand-in workers
that sleep instead of training: which worker has room, which job is running and which queued, a
worker's death with two jobs, and whose progress a worker's answer is."""

from __future__ import annotations

import time

import pytest

import sola_search.search.pool as pool_module
from sola_search.search.pool import Done, Warmed, WorkerPool

pytestmark = pytest.mark.usefixtures("shared_ray")


def _stand_in(train_threads: int = 1):
    """A `ProxyWorker` stand-in as Ray's actor class: `train` sleeps (or raises at once, or its process dies),
    `progress` says which job it is on; each has a concurrency group of its own, as `cluster.worker_actor`
    gives them (`train_threads` 2: a worker of `run --ahead 1`, whose queued call runs on a second thread).
    Made in a function, so that Ray ships the class by value to its worker processes."""
    import os

    import ray

    class StandIn:
        def __init__(self):
            self.on = None

        def warm(self) -> dict:
            return {"pid": os.getpid()}

        def train(self, name: str, seconds: float = 0.3, die: bool = False, fail: bool = False) -> list:
            if die:
                os._exit(1)
            if fail:
                raise ValueError(f"{name} failed at once")
            self.on = name
            time.sleep(seconds)
            self.on = None
            return [[{"name": name, "worker_s": seconds}]]

        def progress(self) -> dict:
            return {"on": self.on} if self.on else {}

    ray.method(concurrency_group="progress")(StandIn.progress)
    ray.method(concurrency_group="train")(StandIn.train)
    return ray.remote(concurrency_groups={"progress": 1, "train": train_threads})(StandIn).options(num_cpus=0)


def _warm_pool(size: int = 1, depth: int = 2, train_threads: int = 1) -> WorkerPool:
    pool = WorkerPool(_stand_in(train_threads), (), size, depth=depth)
    deadline = time.monotonic() + 120
    while pool.warming:
        assert time.monotonic() < deadline, "the stand-in workers did not start"
        assert all(isinstance(end, Warmed) and end.error is None for end in pool.wait())
    return pool


def _next_done(pool: WorkerPool) -> list[Done]:
    deadline = time.monotonic() + 60
    while True:
        ends = pool.wait()
        if ends:
            return ends
        assert time.monotonic() < deadline, "no job ended"


def test_a_worker_holds_its_running_job_and_one_queued_behind_it():
    pool = _warm_pool()
    [worker] = pool.idle
    assert pool.room() == []  # an idle worker is not one with room: `submit` takes it from `idle`
    pool.submit("a", "a", 0.5)
    assert pool.idle == [] and [w for w, _ in pool.room()] == [worker]
    pool.submit("b", "b", 0.3, worker=worker)
    assert pool.room() == [] and pool.running() == ["a", "b"] and pool.waiting() == ["b"]
    with pytest.raises(AssertionError, match="holds 2 jobs already"):
        pool.submit("c", "c", worker=worker)  # never more than `depth` jobs a worker

    [a] = _next_done(pool)
    assert (a.job, a.queued, a.started, a.results[0][0]["name"]) == ("a", False, True, "a")
    assert pool.waiting() == [] and [w for w, _ in pool.room()] == [worker]  # b runs now: room behind it
    [b] = _next_done(pool)
    assert (b.job, b.queued, b.started) == ("b", True, True)
    assert b.wall >= b.results[0][0]["worker_s"]  # from submit: the wait behind a is in it
    assert pool.idle == [worker] and not pool.jobs


def test_a_queued_job_that_fails_at_once_leaves_the_running_job_as_it_was():
    """On a worker with two train threads the queued call runs beside the running one, and may end first
    (it raised at entry): the running job keeps its start (what `--time` reckons its end from)."""
    pool = _warm_pool(train_threads=2)
    [worker] = pool.idle
    pool.submit("a", "a", 1.5)
    [(_, started)] = pool.room()
    time.sleep(0.2)
    pool.submit("b", "b", 0.0, False, True, worker=worker)
    [b] = _next_done(pool)
    assert (b.job, type(b.error).__name__ if b.error else None) == ("b", "RayTaskError(ValueError)")
    assert pool.room() == [(worker, started)] and pool.running() == ["a"] and pool.waiting() == []
    [a] = _next_done(pool)
    assert (a.job, a.error, a.started) == ("a", None, True)
    assert pool.idle == [worker] and not pool.jobs


def test_a_worker_that_dies_with_two_jobs_fails_both_at_once():
    """Both come back in one `wait`, each worker_died; only the running one `started` (the caller
    replaces the worker once, for that one, and re-queues the other's trials: they never ran)."""
    pool = _warm_pool()
    [worker] = pool.idle
    pool.submit("a", "a", 0.3, True)  # its process exits as a segfault would end it
    pool.submit("b", "b", 0.3, worker=worker)
    ends = _next_done(pool)
    assert [(e.job, e.worker_died, e.started, e.queued) for e in ends] == [("a", True, True, False),
                                                                            ("b", True, False, True)]
    assert all(e.error is not None for e in ends)
    assert not pool.jobs and pool.idle == [] and pool.room() == []


def test_progress_is_asked_once_a_worker_and_given_to_its_running_job(monkeypatch):
    monkeypatch.setattr(pool_module, "PROGRESS_POLL_S", 0.05)
    pool = _warm_pool()
    [worker] = pool.idle
    a = pool.submit("a", "a", 1.5)
    b = pool.submit("b", "b", 1.0, worker=worker)
    answers = []
    until = time.monotonic() + 1.0  # a is training all along
    while time.monotonic() < until:
        answers += pool.poll()
        assert len(pool._polls) <= 1  # one question a worker, though it holds two jobs
        time.sleep(0.02)
    assert answers and all(ref == a and job == "a" and info == {"on": "a"} for ref, job, info in answers)

    assert [e.job for e in _next_done(pool)] == ["a"]
    answers = []
    until = time.monotonic() + 30
    while not answers and time.monotonic() < until:
        answers = [(ref, job, info) for ref, job, info in pool.poll() if info]
        time.sleep(0.02)
    assert answers == [(b, "b", {"on": "b"})]
    assert [e.job for e in _next_done(pool)] == ["b"]

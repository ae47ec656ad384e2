"""The search loop: Optuna asks for a pattern, a Ray worker trains its proxy, Optuna is told.

An ask/tell loop over a pool of Ray actors (not Ray Tune): the study in its storage stays the one
source of truth, every pattern is checked against the budget before any worker sees it, a pattern
already measured is answered from storage, and a killed run resumes from the study alone."""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import optuna
from optuna.trial import TrialState

from sola_search.errors import SolaError
from sola_search.search.cluster import ProxyWorker, ray_session
from sola_search.search.config import DEFAULT_GPUS_PER_TRIAL, DEFAULT_TRIALS, DEFAULTS, IDENTITY, SearchConfig
from sola_search.search.progress import Progress, SearchStats
from sola_search.search.rundir import RunDir, new_run_name
from sola_search.search.study import is_counted, measured_patterns, open_study, recover_interrupted, storage_for
from sola_search.space import Budget, FeasibleSet, baselines, cost_table, get_variant

# Consecutive proposals already measured before the search concludes the space is exhausted.
MAX_DUPLICATE_STREAK = 200


@dataclass
class RunSummary:
    name: str
    path: Path
    completed: int
    failed: int
    duplicates: int
    stopped: str  # 'done', 'time', 'failures', 'exhausted', 'interrupted'
    elapsed_s: float


class MaxFailures(SolaError):
    """Not bad input: the run stopped because too many trials failed (exit status 1)."""


@contextmanager
def stop_signals() -> Iterator[dict[str, bool]]:
    """Ctrl-C (SIGINT) or `kill` (SIGTERM) asks the loop to stop at its next safe point: a
    KeyboardInterrupt raised straight from a signal can land inside a library callback and be
    swallowed there. A second Ctrl-C interrupts at once."""
    import signal
    import threading

    state = {"stop": False}
    if threading.current_thread() is not threading.main_thread():
        yield state
        return

    def handler(signum, frame):
        if state["stop"] and signum == signal.SIGINT:
            raise KeyboardInterrupt
        state["stop"] = True

    old = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield state
    finally:
        for sig, h in old.items():
            signal.signal(sig, h)


def _one_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[-1] if text else ''}"[:500]


def _classify(e: BaseException) -> tuple[str, str]:
    """(status, reason) for an exception that came back from a worker."""
    import ray

    cause = getattr(e, "cause", None) or e
    if isinstance(e, ray.exceptions.RayActorError):
        return "error", f"worker process died: {_one_line(e)}"
    import torch

    if isinstance(cause, torch.OutOfMemoryError) or "out of memory" in str(cause).lower():
        return "oom", _one_line(cause)
    return "error", _one_line(cause)


def prepare(cfg: SearchConfig) -> tuple[SearchConfig, RunDir, bool]:
    """Check the configuration (before Ray starts) and bind it to a run directory; an existing run of
    that name is resumed with its stored configuration, and only the count or time may change."""
    cfg.check()
    if cfg.name is None:
        cfg.name = new_run_name(cfg.budget, cfg.variant or DEFAULTS["variant"])
    run = RunDir(Path(cfg.runs_dir) / cfg.name)
    resuming = run.exists()
    if resuming:
        stored = SearchConfig.from_dict(run.read_config())
        for key in IDENTITY:
            new, old = getattr(cfg, key), getattr(stored, key)
            if key == "budget":
                new, old = str(Budget.parse(new)), str(Budget.parse(old))
            if new is not None and new != old:
                raise SolaError(f"run {cfg.name} was made with {key} {old!r}, not {new!r}: "
                                f"resume it as it is, or choose another --name")
            setattr(cfg, key, getattr(stored, key))
        for key in ("trials", "time_limit_s", "workers", "gpus_per_trial", "max_failures", "faults"):
            if getattr(cfg, key) in (None, {}):
                setattr(cfg, key, getattr(stored, key))
    for key, value in DEFAULTS.items():
        if getattr(cfg, key) is None:
            setattr(cfg, key, value)
    budget = Budget.parse(cfg.budget)
    cfg.budget = str(budget)
    variant = get_variant(cfg.variant)
    if FeasibleSet(variant, budget, cfg.resolution).count() == 0:
        raise SolaError(f"budget {cfg.budget} admits no pattern of variant {variant.name} at {cfg.resolution}px")
    from sola_search.proxies import PRESETS, check_data
    from sola_search.search.encodings import DEFAULT_ENCODING, ENCODINGS

    if cfg.preset is not None and cfg.preset not in PRESETS:
        raise SolaError(f"unknown preset {cfg.preset!r}: expected one of {', '.join(PRESETS)}")
    cfg.encoding = cfg.encoding or DEFAULT_ENCODING
    if cfg.encoding not in ENCODINGS:
        raise SolaError(f"unknown sampler {cfg.encoding!r}: expected one of {', '.join(ENCODINGS)}")
    check_data(cfg.data)
    return cfg, run, resuming


def run_search(cfg: SearchConfig, quiet: bool = False) -> RunSummary:
    """Run (or resume) a search to its trial count or time limit; returns what happened."""
    cfg, run, resuming = prepare(cfg)
    run.create()
    run.acquire()
    try:
        return _run(cfg, run, resuming, quiet)
    finally:
        run.release()


def _run(cfg: SearchConfig, run: RunDir, resuming: bool, quiet: bool) -> RunSummary:
    import ray

    from sola_search.proxies import get_preset
    from sola_search.results.front import pareto_mask
    from sola_search.results.patterns import pattern_record_from_trial, write_pattern_file
    from sola_search.search.encodings import enqueue_baselines, get_encoding

    budget, variant = Budget.parse(cfg.budget), get_variant(cfg.variant)
    table = cost_table(variant, cfg.resolution)
    started = time.monotonic()
    with ray_session(cfg.address, num_cpus=None, num_gpus=None, quiet=quiet) as res:
        # What the machine (or cluster) has decides the preset and the number of workers.
        gpus = res.gpus
        cfg.preset = cfg.preset or ("default" if gpus else "quick")
        proxy = get_preset(cfg.preset, variant=variant.name, data=cfg.data, seed=cfg.seed,
                           **({"steps": cfg.steps} if cfg.steps else {}))
        if cfg.trials is None and cfg.time_limit_s is None:
            cfg.trials = DEFAULT_TRIALS.get(cfg.preset, 8)
        if gpus:
            frac = cfg.gpus_per_trial or DEFAULT_GPUS_PER_TRIAL
            n_workers = cfg.workers or max(1, math.floor(gpus / frac + 1e-9))
            options = dict(num_gpus=frac, num_cpus=max(1, min(4, int(res.cpus // max(n_workers, 1)))))
        else:
            n_workers = cfg.workers or 1
            options = dict(num_cpus=max(1, int(res.cpus // n_workers)))
        if not run.exists():
            run.write_config(cfg.to_dict())
        else:  # keep the stored config, record the count/time asked this time
            run.write_config({**run.read_config(), "trials": cfg.trials, "time_limit_s": cfg.time_limit_s})

        encoding = get_encoding(cfg.encoding, variant, budget, cfg.resolution)
        storage = storage_for(cfg.storage or run.default_storage)
        from sola_search import __version__

        study = open_study(storage, run.name, encoding.sampler(cfg.seed), dict(
            variant=variant.name, budget=cfg.budget, resolution=cfg.resolution, preset=cfg.preset,
            encoding=cfg.encoding, seed=cfg.seed, proxy=proxy.to_dict(), sola_search_version=__version__))
        retried = recover_interrupted(study)
        enqueue_baselines(study, baselines(variant, budget, cfg.resolution), encoding)
        run.log("run_resumed" if resuming else "run_started", config=cfg.to_dict(), workers=n_workers,
                resources={"cpus": res.cpus, "gpus": res.gpus, "address": res.address}, retried=retried)

        trials = study.get_trials(deepcopy=False)
        stats = SearchStats(target=cfg.trials, deadline=None if cfg.time_limit_s is None else
                            time.monotonic() + cfg.time_limit_s, workers=n_workers)
        stats.done = sum(1 for t in trials if is_counted(t) and t.state == TrialState.COMPLETE)
        stats.failed = sum(1 for t in trials if is_counted(t) and t.state == TrialState.FAIL)
        measured = measured_patterns(study)
        max_failures = cfg.max_failures or max(3, (cfg.trials or 12) // 4)
        feasible_total = FeasibleSet(variant, budget, cfg.resolution).count()
        points: list[tuple[float, float, str]] = [(t.values[0], t.values[1], t.user_attrs.get("pattern", ""))
                                                 for t in measured.values()]

        def refresh_front() -> None:
            if points:
                import numpy as np

                arr = np.array([(a, b) for a, b, _ in points])
                stats.front_size = int(pareto_mask(arr[:, 0], arr[:, 1]).sum())
                best = max(points, key=lambda p: p[0])
                stats.best_top1, stats.best_pattern = best[0], best[2]

        refresh_front()
        actor_cls = ray.remote(ProxyWorker)
        threads = int(options["num_cpus"])

        def new_actor():
            return actor_cls.options(**options).remote(threads)

        idle = [new_actor() for _ in range(n_workers)]
        inflight: dict = {}  # ObjectRef → (trial, pattern, actor, start)
        running: dict[str, int] = {}  # pattern text → trial number being measured
        waiting: dict[str, list[optuna.Trial]] = {}  # duplicates of a running pattern
        streak, stopped = 0, None
        proxy_dict = proxy.to_dict()

        def finish_duplicate(trial: optuna.Trial, source) -> None:
            trial.set_user_attr("duplicate_of", source.number)
            for key in ("proxy_result", "macs", "params", "softmax_layers"):
                if key in source.user_attrs:
                    trial.set_user_attr(key, source.user_attrs[key])
            study.tell(trial, list(source.values))
            stats.duplicates += 1

        def fail(trial: optuna.Trial, pattern: str, status: str, reason: str) -> None:
            trial.set_user_attr("status", status)
            trial.set_user_attr("reason", reason)
            study.tell(trial, state=TrialState.FAIL)
            run.log("trial_failed", trial=trial.number, pattern=pattern, status=status, reason=reason)
            progress.note(f"trial {trial.number} {pattern} failed ({status}): {reason}")

        def can_ask() -> bool:
            nonlocal stopped
            if stats.failed >= max_failures:
                stopped = stopped or "failures"
            elif stats.deadline is not None and time.monotonic() >= stats.deadline:
                stopped = stopped or "time"
            elif cfg.trials is not None and stats.done + stats.failed + len(inflight) >= cfg.trials:
                stopped = stopped or "done"
            elif streak >= MAX_DUPLICATE_STREAK or len(measured) + len(running) >= feasible_total:
                stopped = stopped or "exhausted"
            else:
                return True
            return False

        with Progress(quiet) as progress, stop_signals() as signals:
            try:
                while True:
                    if signals["stop"]:
                        raise KeyboardInterrupt
                    while idle and can_ask():
                        trial = study.ask()
                        pattern = encoding.suggest(trial)
                        if pattern is None:  # outside the budget: never trained (see encodings)
                            study.tell(trial, state=TrialState.PRUNED)
                            stats.infeasible += 1
                            continue
                        key = str(pattern)
                        if key in measured:
                            finish_duplicate(trial, measured[key])
                            streak += 1
                            continue
                        if key in running:
                            waiting.setdefault(key, []).append(trial)
                            streak += 1
                            continue
                        streak = 0
                        trial.set_user_attr("pattern", key)
                        trial.set_user_attr("softmax_layers", pattern.softmax_layers)
                        trial.set_user_attr("macs", table.macs(pattern))
                        trial.set_user_attr("params", table.params)
                        actor = idle.pop()
                        ref = actor.train.remote(key, proxy_dict, cfg.faults.get(key))
                        inflight[ref] = (trial, pattern, actor, time.monotonic())
                        running[key] = trial.number
                        run.log("trial_started", trial=trial.number, pattern=key,
                                baseline=trial.user_attrs.get("baseline"))
                    stats.running = len(inflight)
                    progress.update(stats)
                    if not inflight:
                        break
                    ready, _ = ray.wait(list(inflight), num_returns=1, timeout=0.5)
                    for ref in ready:
                        trial, pattern, actor, t0 = inflight.pop(ref)
                        key = str(pattern)
                        del running[key]
                        wall = time.monotonic() - t0
                        try:
                            result = ray.get(ref)
                            status, reason = result["status"], result.get("reason", "")
                        except Exception as e:  # the worker raised or died
                            result, (status, reason) = None, _classify(e)
                            if isinstance(e, ray.exceptions.RayActorError):
                                actor = new_actor()
                        idle.append(actor)
                        stats.trial_seconds.append(wall)
                        if result is not None:
                            result["driver_wall_s"] = wall
                            trial.set_user_attr("proxy_result", result)
                        if status == "ok":
                            gmacs = table.macs(pattern) / 1e9
                            frozen = study.tell(trial, [result["val_top1"], gmacs])
                            write_pattern_file(run.patterns / f"{trial.number}.json",
                                               pattern_record_from_trial(study, frozen))
                            measured[key] = frozen
                            points.append((result["val_top1"], gmacs, key))
                            refresh_front()
                            stats.done += 1
                            run.log("trial_finished", trial=trial.number, pattern=key, val_top1=result["val_top1"],
                                    gmacs=gmacs, wall_s=wall, train_s=result.get("train_s"))
                            progress.note(f"trial {trial.number:>3} {key}  top-1 {result['val_top1']:.4f}  "
                                          f"{gmacs:.3f} GMACs  {wall:.1f}s")
                            for dup in waiting.pop(key, []):
                                finish_duplicate(dup, frozen)
                        else:
                            stats.failed += 1
                            fail(trial, key, status, reason)
                            for dup in waiting.pop(key, []):
                                fail(dup, key, "duplicate", f"duplicate of failed trial {trial.number}")
            except KeyboardInterrupt:
                # Give the unfinished patterns back to the study so `resume` measures them.
                for trial, _, _, _ in inflight.values():
                    trial.set_user_attr("status", "interrupted")
                    trial.set_user_attr("reason", "interrupted (Ctrl-C); re-queued")
                    study.tell(trial, state=TrialState.FAIL)
                    study.enqueue_trial(trial.params, user_attrs={"retry_of": trial.number})
                for dups in waiting.values():
                    for trial in dups:
                        study.tell(trial, state=TrialState.FAIL)
                run.log("run_interrupted", done=stats.done, failed=stats.failed)
                raise
        run.log("run_finished", stopped=stopped, done=stats.done, failed=stats.failed,
                duplicates=stats.duplicates, elapsed_s=time.monotonic() - started)
        if stopped == "failures":
            raise MaxFailures(f"run {run.name} stopped after {stats.failed} failed trials (--max-failures "
                              f"{max_failures}); see {run.events}")
        return RunSummary(run.name, run.path, stats.done, stats.failed, stats.duplicates, stopped or "done",
                          time.monotonic() - started)


def resume_search(path: str | Path, trials: int | None = None, time_limit_s: float | None = None,
                  address: str | None = None, quiet: bool = False) -> RunSummary:
    """Continue a run from its directory after it stopped or was killed."""
    run = RunDir(Path(path))
    stored = run.read_config()
    cfg = SearchConfig.from_dict(stored)
    cfg.name, cfg.runs_dir = run.name, str(run.path.parent)
    cfg.trials = trials if trials is not None else cfg.trials
    cfg.time_limit_s = time_limit_s if time_limit_s is not None else cfg.time_limit_s
    cfg.address = address
    return run_search(cfg, quiet=quiet)

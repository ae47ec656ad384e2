"""The search loop: Optuna asks for patterns, a Ray worker trains a pack of their proxies
together, Optuna is told each result.

An ask/tell loop over a pool of Ray actors (not Ray Tune): the study in its storage stays the one
source of truth, every pattern is checked against the budget before any worker sees it, a pattern
already measured is answered from storage, and a killed run resumes from the study alone. A pack
is several trials trained in one worker on the same batches (`train_proxies`): on a GPU their
steps run side by side in one CUDA graph, which fills the GPU where one small proxy cannot."""

from __future__ import annotations

import math
import os
import re
import shutil
import statistics
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path

import optuna
import sqlalchemy
from optuna.trial import TrialState

from sola_search.errors import SolaError, StateError, is_oom, one_line, redact_url
from sola_search.files import deepest_existing, parse_json
from sola_search.objectives import Measured, Objective, companion_scores, get_objectives, over_seeds
from sola_search.search.cluster import check_address, ray_session, worker_actor
from sola_search.search.config import (
    DEFAULT_GPUS_PER_TRIAL,
    DEFAULT_PACK,
    DEFAULT_TRIALS,
    DEFAULTS,
    IDENTITY,
    SUPERNET_PACK,
    SUPERNET_TRIALS,
    SearchConfig,
    check_name,
    pack_models,
)
from sola_search.search.confirm import confirmations
from sola_search.search.pool import Done, Warmed, WorkerPool, ready_note
from sola_search.search.progress import Progress, SearchStats
from sola_search.search.rundir import RunDir
from sola_search.search.study import (
    absolute_sqlite,
    ask_waiting,
    is_counted,
    measured_patterns,
    open_study,
    owed_trials,
    recover_interrupted,
    requeue,
    storage_for,
)
from sola_search.space import Budget, CostTable, FeasibleSet, Variant, baselines, cost_table, get_variant
from sola_search.space.feasible import unlimited_warning
from sola_search.space.latency import LatencyTable

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
    confirmed: str | None = None  # what `--confirm` did this session, in words; None: it did not run


class MaxFailures(SolaError):
    """Not bad input: the run stopped because too many trials failed (exit status 1)."""


@contextmanager
def stop_signals() -> Iterator[dict[str, bool]]:
    """Ctrl-C (SIGINT), `kill` (SIGTERM) or a closed terminal (SIGHUP) asks the loop to stop at its
    next safe point: a KeyboardInterrupt raised straight from a signal can land inside a library
    callback and be swallowed there, and SIGHUP's default ends the process like kill -9, cutting
    the packs in flight. A hang-up also points the terminal's streams at /dev/null, since nobody
    reads them any more; under `nohup` (SIGHUP ignored) the run goes on. A second Ctrl-C
    interrupts at once."""
    import signal
    import threading

    state = {"stop": False}
    if threading.current_thread() is not threading.main_thread():
        yield state
        return

    def handler(signum, frame):
        if signum == signal.SIGHUP:
            _detach_terminal()
        if state["stop"] and signum == signal.SIGINT:
            raise KeyboardInterrupt
        state["stop"] = True

    sigs = [signal.SIGINT, signal.SIGTERM]
    if signal.getsignal(signal.SIGHUP) == signal.SIG_DFL:  # not under nohup
        sigs.append(signal.SIGHUP)
    old = {sig: signal.signal(sig, handler) for sig in sigs}
    try:
        yield state
    finally:
        for sig, h in old.items():
            signal.signal(sig, h)


def _detach_terminal() -> None:
    """Standard streams that are a (hung-up) terminal now write to /dev/null: a write there fails."""
    null = os.open(os.devnull, os.O_RDWR)
    try:
        for fd in (0, 1, 2):
            if os.isatty(fd):
                os.dup2(null, fd)
    finally:
        os.close(null)


def _classify(e: BaseException) -> tuple[str, str]:
    """(status, reason) for an exception that came back from a worker."""
    import ray

    if isinstance(e, ray.exceptions.RayActorError):
        return "error", f"worker process died: {one_line(e)}"
    cause = getattr(e, "cause", None) or e  # a RayTaskError wraps what the worker raised
    return ("oom" if is_oom(cause) else "error"), one_line(cause)


# What a resumed run takes from its run.json when it is not given again (its identity it always takes).
RESUMED_OPTIONS = ("trials", "time_limit_s", "workers", "gpus_per_trial", "pack", "ahead", "max_failures", "faults",
                   "confirm")
# Identity options whose None in run.json means the preset's value: a resume naming that value asks for the same run.
PRESET_OPTIONS = ("steps", "batch_size", "lr")


def _preset_value(preset: str | None, key: str) -> object:
    """What the preset trains with for `key`; None while the preset is not known (the machine picks it)."""
    from sola_search.proxies import PRESETS

    return getattr(PRESETS[preset], key) if preset in PRESETS else None


@dataclass(frozen=True)
class RunPlan:
    """A run's configuration settled once (`prepare`): every option filled in and checked, bound to
    its run directory. What it parses to is derived from it, never kept in step by hand; what the
    machine decides (preset, trial count, pack, workers) is settled once Ray is up (`_settle_machine`)."""

    config: SearchConfig  # as run.json stores it; not changed after `prepare`
    run: RunDir
    resuming: bool
    storage: optuna.storages.BaseStorage | None  # None: the run's own study.db
    pack: int = 1  # models a worker trains together: `patterns` patterns, each with `seeds` seeds
    workers: int = 1
    options: dict = field(default_factory=dict)  # each worker's Ray resources
    embedded: bool = False  # Ray started by this run (`cluster.Resources.embedded`): its workers' settings are Ray's

    @property
    def seeds(self) -> int:
        return self.config.seeds or 1

    @property
    def patterns(self) -> int:
        """Trials (patterns) a worker trains together: a pack's models are their seeds."""
        return self.pack // self.seeds

    @cached_property
    def latency(self) -> LatencyTable | None:
        """The run's latency table (`prepare` checked it is the one the run was made with)."""
        return None if self.config.latency is None else LatencyTable.load(self.config.latency)

    @cached_property
    def budget(self) -> Budget:
        return Budget.parse(self.config.budget).priced(self.latency)

    @cached_property
    def variant(self) -> Variant:
        return get_variant(self.config.variant)

    @cached_property
    def objectives(self) -> tuple[Objective, Objective]:
        return get_objectives(self.config.objectives)

    @cached_property
    def table(self) -> CostTable:
        return cost_table(self.variant, self.config.resolution)


def _check_runs_dir(runs_dir: str) -> None:
    """`--runs-dir` is a directory, or one a run can make: a file there, or on the way to it, is one line
    before anything starts (it was "cannot make the run directory ...: Not a directory")."""
    first = deepest_existing(runs_dir)
    if first is not None and not first.is_dir():
        where = "" if first == Path(runs_dir).absolute() else f" ({first} is not one)"
        raise SolaError(f"--runs-dir {runs_dir}: not a directory{where}")


def prepare(cfg: SearchConfig, stored: SearchConfig | None = None) -> RunPlan:
    """Check the configuration (before Ray starts) and bind it to a run directory; an existing run of
    that name is resumed with its stored configuration (`stored`, read from its run.json when not
    given), and only the count or time may change. `cfg` is left as given: the plan holds a settled
    copy. What the machine decides is settled by `_settle_machine`."""
    from sola_search.proxies.data import absolute_data, same_data

    cfg = replace(cfg).check().named()
    if cfg.storage:
        cfg.storage = absolute_sqlite(cfg.storage)  # run.json must name the same file from any directory
    if cfg.latency:
        cfg.latency = str(Path(cfg.latency).absolute())  # likewise
    if cfg.data:
        cfg.data = absolute_data(cfg.data)  # likewise: resumed elsewhere, a relative path reads other data
    _check_runs_dir(cfg.runs_dir)
    run = RunDir(Path(cfg.runs_dir) / cfg.name)
    try:
        resuming = run.exists()
    except OSError:  # e.g. a name too long to be a file's: no run there, and check_name says why
        resuming = False
    if not resuming:
        check_name(cfg.name)  # a new directory's name; an existing run keeps the one it has
        if run.path.exists() and (not run.path.is_dir() or any(run.path.iterdir())):
            raise SolaError(f"{run.path} exists but is not a sola-search run (no run.json): "
                            "choose another --name or move it away; nothing was changed")
    if resuming:
        stored = stored or SearchConfig.from_dict(run.read_config(), str(run.run_json))
        if stored.estimator == "supernet" and stored.confirm:  # stored by an older version: `--confirm 0` clears it
            if cfg.confirm != 0:
                raise SolaError(f"{run.run_json} stores confirm {stored.confirm} with estimator supernet, which an "
                                "older sola-search accepted and no run can use: resume with --confirm 0 to clear it")
            stored = replace(stored, confirm=0)
        stored.check()
        for key in IDENTITY:
            new, old = getattr(cfg, key), getattr(stored, key)
            if key == "budget":
                new, old = str(Budget.parse(new)), str(Budget.parse(old))
            if old is None and key in DEFAULTS:  # stored before the option existed: it had the default
                old = DEFAULTS[key]
            if key == "preset" and old is None:  # stored before Ray started, before the machine chose one
                continue
            by_preset = old is None and key in PRESET_OPTIONS  # the preset's value, which `new` may name
            effective = _preset_value(cfg.preset, key) if by_preset else old
            if new is not None and new != effective and not (key == "data" and same_data(new, old)):
                was = repr(old) if not by_preset else "the preset's" + ("" if effective is None else f" {effective!r}")
                raise SolaError(f"run {cfg.name} was made with {key} {was}, not {new!r}: "
                                f"resume it as it is, or choose another --name")
            setattr(cfg, key, old)  # a preset's value stays None: the identity as stored
        for key in RESUMED_OPTIONS:
            if getattr(cfg, key) in (None, {}):
                setattr(cfg, key, getattr(stored, key))
    for key, value in DEFAULTS.items():
        if getattr(cfg, key) is None:
            setattr(cfg, key, value)
    cfg.check()  # what is given now with what was stored: e.g. `resume --confirm N` of a supernet run
    budget = Budget.parse(cfg.budget).priced(check_latency(cfg))
    cfg.budget = str(budget)
    variant = get_variant(cfg.variant)
    if FeasibleSet(variant, budget, cfg.resolution).nonempty().count() == 2**variant.num_blocks:
        print(unlimited_warning(budget, [variant.name], cfg.resolution), file=sys.stderr, flush=True)
    from sola_search.proxies import PRESETS, check_data
    from sola_search.search.encodings import DEFAULT_ENCODING, encoding_class

    if cfg.preset is not None and cfg.preset not in PRESETS:
        raise SolaError(f"unknown preset {cfg.preset!r}: expected one of {', '.join(PRESETS)}")
    cfg.encoding = cfg.encoding or DEFAULT_ENCODING
    encoding_class(cfg.encoding)
    check_data(cfg.data)
    storage = storage_for(cfg.storage) if cfg.storage else None  # a bad URL fails before Ray starts
    if resuming:
        storage = check_study_kept(run, storage, cfg.storage)
    elif storage is not None and cfg.name in optuna.get_all_study_names(storage):
        # A shared database (PostgreSQL) is where a second driver would meet the first: it would take
        # over the first one's running trials. A run continues only where its run directory is.
        raise SolaError(f"study {cfg.name} already exists in {redact_url(cfg.storage)}: resume it where its "
                        f"run directory is (sola-search resume RUNS_DIR/{cfg.name}), or choose another --name")
    if resuming and cfg.estimator == "supernet":
        check_supernet(run, cfg)
    if cfg.address:
        check_address(cfg.address)  # at once, not after minutes of Ray's retries
    return RunPlan(cfg, run, resuming, storage)


def check_supernet(run: RunDir, cfg: SearchConfig) -> None:
    """A resumed supernet run reuses the supernet in its directory: one of another variant, budget,
    data or seed, or weights that do not match its supernet.json, is refused before anything starts
    (and never trained over). No supernet yet (a run stopped while training it) is fine: it resumes
    from its checkpoint. Weights without their supernet.json are refused: retraining would overwrite the
    weights that scored the run's trials."""
    from sola_search.proxies.supernet import CHECKPOINT, META, WEIGHTS, checkpoint_progress, read_meta

    if (run.path / META).exists():
        expected = dict(variant=cfg.variant, budget=cfg.budget, data=cfg.data, seed=cfg.seed, resolution=cfg.resolution)
        if cfg.supernet_steps is not None:
            expected["steps"] = cfg.supernet_steps
        read_meta(run.path, expected)
    elif (run.path / WEIGHTS).exists() and not (run.path / CHECKPOINT).exists():
        raise SolaError(f"{run.path / WEIGHTS} is there but {META}, which says what trained it, is missing: put it "
                        f"back (or move {WEIGHTS} away to train the supernet again, beside trials its old weights "
                        "scored); nothing was changed")
    else:
        checkpoint_progress(run.path)  # an unreadable checkpoint: its one line now, not after Ray and the data


def check_latency(cfg: SearchConfig) -> LatencyTable | None:
    """The run's latency table, measured for its variant and resolution; a new run stores its
    content's digest, a resumed one must find the same table where it was (a remeasured or edited
    file would make its trials incomparable). None for a run without one; the latency objective
    needs one."""
    if cfg.latency is None:
        if "latency_ms" in cfg.objectives:
            raise SolaError("--objective latency needs a latency table: pass --latency FILE (made by sola-search "
                            "latency)")
        return None
    table = LatencyTable.load(cfg.latency, cfg.variant, cfg.resolution)
    if cfg.latency_digest is None:
        cfg.latency_digest = table.digest
    elif cfg.latency_digest != table.digest:
        raise SolaError(f"run {cfg.name} was made with the latency table {cfg.latency} (sha256 "
                        f"{cfg.latency_digest[:12]}…), which now holds another table ({table.digest[:12]}…): put the "
                        "run's table back, or start a new run")
    return table


def check_study_kept(run: RunDir, storage: optuna.storages.BaseStorage | None,
                     url: str | None) -> optuna.storages.BaseStorage | None:
    """A run whose study has been lost must not be resumed: it would start over in a new, empty one
    and write over the run's pattern files. (A run stopped before it made its study has no
    `run_started` event and no pattern file, and resumes.) `storage` is the one `url` opened, None
    for the run's own study.db; returns the storage it checked, for the run to use."""
    kept = sum(p.stem.isdigit() for p in run.patterns.glob("*.json"))  # each one a trial of the study
    events = run.read_events()  # [] without a log: it begins with `run_started`
    if events is None:
        started = run.study_db.exists() or url is not None  # no readable log: assume it began
    else:
        started = any(ev.get("event") in ("run_started", "run_resumed") for ev in events)
    if not started and not kept:
        return storage
    evidence = f", though patterns/ holds {kept} pattern file(s) of it" if kept else ""
    if storage is None:
        if not run.study_db.is_file() or run.study_db.stat().st_size == 0:
            raise SolaError(f"run {run.name}: its study database {run.study_db} is missing or empty{evidence}; "
                            "nothing was resumed (restore it, or start a new run)")
        url = run.default_storage
        storage = storage_for(url)
    names = optuna.get_all_study_names(storage)
    if run.name not in names:
        renamed = (f"; the database holds {names[0]!r}: was the directory renamed? name it back"
                   if len(names) == 1 else "")
        raise SolaError(f"run {run.name}: no study {run.name!r} in {redact_url(url)}{evidence}{renamed}; "
                        "nothing was resumed")
    return storage


def run_search(cfg: SearchConfig, quiet: bool = False, stored: SearchConfig | None = None) -> RunSummary:
    """Run (or resume) a search to its trial count or time limit; returns what happened. `stored`:
    the run's run.json, when the caller has read it already."""
    plan = prepare(cfg, stored)
    run = plan.run
    made = [d for d in (run.path, *run.path.parents) if not d.exists()]  # what this run makes, deepest first
    try:
        try:
            if not plan.resuming:  # run.json first: killed at any later moment (Ray's start-up), the run resumes
                run.write_config(plan.config.to_dict())
            run.create()
        except OSError as e:
            raise SolaError(f"cannot make the run directory {run.path}: {e.strerror or e}") from None
        run.acquire()
        try:
            plan = replace(plan, storage=plan.storage or storage_for(run.default_storage))
            if plan.resuming:
                restore_pattern_files(run, plan.storage)
            return _run(plan, quiet)
        except (optuna.exceptions.StorageInternalError, sqlalchemy.exc.OperationalError, OSError) as e:
            raise StateError(_stopped(run, e)) from None
        finally:
            run.release()
    finally:
        if made and not run.events.exists():  # stopped (not killed) before the run started: nothing to
            _remove_made(made)  # resume, so no directory that looks like a run, nor a --runs-dir it made for it


def _stopped(run: RunDir, e: BaseException) -> str:
    """One line for a run that a full disk, a read-only file system or a failing storage stopped
    (Optuna's StorageInternalError, ~100 lines of traceback): what, where, and how to continue. What was
    told to the study is kept; trials it left running are measured again by `resume`."""
    cause = e
    while cause.__cause__ is not None or (cause.__context__ is not None and not cause.__suppress_context__):
        cause = cause.__cause__ or cause.__context__
    if isinstance(cause, OSError) and cause.strerror:
        what = f"{cause.strerror}{f': {cause.filename}' if cause.filename else ''}"
    else:
        what = (str(getattr(cause, "orig", None) or cause).strip().splitlines() or [type(cause).__name__])[0]
    if not isinstance(e, OSError):
        what = f"its study storage failed ({what})"
    return (f"run {run.name} stopped: {what}; what was measured is kept. Fix that (free space, a writable "
            f"disk), then continue with: sola-search resume {run.path}")


def _remove_made(made: list[Path]) -> None:
    """Remove the run directory and the parents made for it (deepest first), each only while empty:
    a refused command leaves nothing behind, and nothing another process put there is removed."""
    shutil.rmtree(made[0], ignore_errors=True)
    for d in made[1:]:
        try:
            d.rmdir()
        except OSError:
            return


# The temporary file `write_atomic` renames into place: `.<name>.<pid>.<hex>.tmp`.
_TEMP_FILE = re.compile(r"\..+\.\d+\.[0-9a-f]{8}\.tmp")


def _pattern_file_owner(path: Path) -> tuple | None:
    """(study, trial, pattern) a pattern file's provenance names; None if it cannot be read."""
    try:
        record = parse_json(path.read_text(encoding="utf-8"), str(path))
        return record["provenance"]["study"], record["provenance"]["trial"], record["pattern"]
    except (OSError, UnicodeDecodeError, SolaError, KeyError, TypeError):
        return None


def restore_pattern_files(run: RunDir, storage: optuna.storages.BaseStorage) -> list[int]:
    """Before a run resumes (its lock held): every pattern file in `patterns/` must be the file of its
    study's completed trial of that number, or nothing is resumed (it would be overwritten when that
    trial completes); a completed trial whose file a kill -9 or a full disk cut off gets it now, and
    temporary files a killed write left are removed; a confirmed trial's file behind its re-measures
    (`--confirm`) is written again. Returns the trials whose files were written."""
    study, measured = None, {}
    if run.name in optuna.get_all_study_names(storage):
        study = optuna.load_study(study_name=run.name, storage=storage)
        measured = {t.number: t for t in study.get_trials(deepcopy=False, states=[TrialState.COMPLETE])
                    if "duplicate_of" not in t.user_attrs and "pattern" in t.user_attrs}
    for path in sorted(run.patterns.glob("*.json")):
        if not path.stem.isdigit():
            continue
        n, t = int(path.stem), measured.get(int(path.stem))
        owner = _pattern_file_owner(path)
        if t is None or owner != (run.name, n, t.user_attrs["pattern"]):
            whose = (f"it records trial {owner[1]} of study {owner[0]!r} ({owner[2]})" if owner
                     else "it is unreadable")
            raise SolaError(f"run {run.name}: {path} is not the file of trial {n} of its study ({whose}); "
                            "nothing was resumed: move it away, or restore the study it belongs to")
    for d in (run.path, run.patterns):
        for tmp in d.iterdir():
            if _TEMP_FILE.fullmatch(tmp.name) and tmp.is_file():
                tmp.unlink(missing_ok=True)
    confirmed = confirmations(study.user_attrs) if study is not None else {}
    written = [n for n in sorted(measured) if not (run.patterns / f"{n}.json").exists()
               or (n in confirmed and _confirm_seeds(run.patterns / f"{n}.json") != len(confirmed[n]["seeds"]))]
    for n in written:
        write_trial_file(run, study, measured[n])
    if written:
        run.log("pattern_files_restored", trials=written)
    return written


def _confirm_seeds(path: Path) -> int | None:
    """How many confirmation seeds a pattern file's values include (a kill between a re-measure's
    record in the study and the file leaves the file one round behind)."""
    try:
        return parse_json(path.read_text(encoding="utf-8"), str(path))["metrics"].get("confirm_seeds", 0)
    except (OSError, UnicodeDecodeError, SolaError, KeyError, TypeError, AttributeError):
        return None


def write_trial_file(run: RunDir, study: optuna.Study, trial) -> None:
    """Write a completed trial's pattern file. A write that fails (a full disk) is not bad input but
    a state to fix: the study keeps the trial, and `resume` writes its file."""
    from sola_search.results.patterns import pattern_record_from_trial, write_pattern_file

    try:
        write_pattern_file(run.patterns / f"{trial.number}.json", pattern_record_from_trial(study, trial))
    except SolaError as e:
        raise StateError(f"{e}; trial {trial.number} is kept in the study and `resume` writes its pattern file: "
                         f"free space, then continue with: sola-search resume {run.path}") from None


# On CPUs a worker a core, each training on one thread: a `quick` proxy trains ~1.5x slower on one thread
# than on two, so on 2 cores two such workers ran the default search's 8 trials 1.23-1.26x sooner than one
# worker on both, the same top-1 to the digit (docs/performance.md, twenty-sixth session). A CPU worker held
# ~1.3 GB (Fashion-MNIST, `quick`): each is given 2 GiB of the machine's memory at least.
CPU_WORKER_BYTES = 2 * 2**30


def _settle_machine(plan: RunPlan, gpus: float, gpus_per_node: float, cpus: float, memory: float = 0.0) -> RunPlan:
    """What the machine decides, once Ray is up: the preset and trial count a run left unset, the
    pack size, the workers and each worker's Ray resources. A pack's size counts models: with K
    seeds a pack of `--pack` slots trains pack // K patterns (at least one) of K models each, and a
    worker's GPU share is the fraction per trial times its models."""
    preset = plan.config.preset or ("default" if gpus else "quick")
    trials = plan.config.trials
    supernet = plan.config.estimator == "supernet"
    if trials is None and plan.config.time_limit_s is None:
        trials = SUPERNET_TRIALS if supernet else DEFAULT_TRIALS.get(preset, 8)
    # A GPU worker prepares its next pack while one trains (1.07x its trials an hour, docs/performance.md);
    # a CPU has no second device stream to gain from, and the supernet scores a pack in seconds.
    ahead = plan.config.ahead if plan.config.ahead is not None else int(bool(gpus) and not supernet)
    cfg = replace(plan.config, preset=preset, trials=trials, ahead=ahead)
    pack, n_workers, options = machine_layout(cfg, gpus, gpus_per_node, cpus, memory)
    return replace(plan, config=cfg, pack=pack, workers=n_workers, options=options)


def machine_layout(cfg: SearchConfig, gpus: float, gpus_per_node: float, cpus: float,
                   memory: float = 0.0) -> tuple[int, int, dict]:
    """(models per pack, workers, each worker's Ray resources) for `cfg`'s pack, seeds, GPU share and
    workers on this machine: packs on every GPU; on CPUs a worker a core, each on one thread, as many
    as `memory` (Ray's, bytes; 0: unknown) holds at `CPU_WORKER_BYTES` each and the trials' packs need.
    `run` and `calibrate` lay out their workers alike."""
    seeds = cfg.seeds or 1
    if cfg.estimator == "supernet":  # one worker keeps the supernet loaded and scores a pack of patterns per call
        options = dict(num_gpus=min(1.0, gpus_per_node)) if gpus else dict(num_cpus=max(1, int(cpus)))
        return cfg.pack or SUPERNET_PACK, 1, options
    if not gpus:
        pack = pack_models(cfg.pack or 1, seeds)
        fit = int(memory // CPU_WORKER_BYTES) if memory else int(cpus)
        needed = math.ceil(cfg.trials * seeds / pack) if cfg.trials else int(cpus)  # no worker without a pack
        n_workers = cfg.workers or max(1, min(int(cpus), fit, needed))
        return pack, n_workers, dict(num_cpus=max(1, int(cpus // n_workers)))
    frac = cfg.gpus_per_trial or DEFAULT_GPUS_PER_TRIAL
    # A pack shares one GPU: a given fraction per trial sets how many fit on it.
    pack = cfg.pack or (max(1, min(64, math.floor(1 / frac + 1e-9))) if cfg.gpus_per_trial else DEFAULT_PACK)
    pack = pack_models(pack, seeds)
    per_worker = frac * pack if pack > 1 else frac
    if per_worker > gpus_per_node + 1e-9:  # Ray would never place a worker: the run would wait forever
        raise SolaError(f"a worker needs {per_worker:g} GPUs (--gpus-per-trial {frac:g}"
                        f"{f' x --pack {pack}' if pack > 1 else ''}), more than a node has "
                        f"({gpus_per_node:g})")
    n_workers = cfg.workers or max(1, math.floor(gpus / per_worker + 1e-9))
    return pack, n_workers, dict(num_gpus=per_worker, num_cpus=max(1, min(4, int(cpus // n_workers))))


def _run(plan: RunPlan, quiet: bool) -> RunSummary:
    """Start (or join) Ray, settle what the machine decides (preset, workers), open the study, seed
    the baselines, and hand over to the loop."""
    from sola_search import __version__
    from sola_search.proxies import check_fit, get_preset, training_advice
    from sola_search.search.encodings import enqueue_baselines, get_encoding

    cfg, run, resuming = plan.config, plan.run, plan.resuming
    started = time.monotonic()
    if not quiet:
        where = f"joining Ray at {cfg.address}" if cfg.address else "starting a local Ray instance"
        print(f"run {run.name} in {run.path}: {where} …", file=sys.stderr, flush=True)
    with ray_session(cfg.address, quiet=quiet) as res:
        plan = replace(_settle_machine(plan, res.gpus, res.gpus_per_node, res.cpus, res.memory), embedded=res.embedded)
        cfg, budget, variant, pack, n_workers = plan.config, plan.budget, plan.variant, plan.pack, plan.workers
        proxy = get_preset(cfg.preset, variant=variant.name, data=cfg.data, seed=cfg.seed,
                           batch_size=cfg.batch_size, lr=cfg.lr,
                           compile=_compile_mode(cfg),
                           **({"steps": cfg.steps} if cfg.steps else {}))
        notes = check_fit(proxy)  # a batch the data cannot fill fails here, not in every trial
        notes += training_advice(proxy.replace(steps=_trained_steps(cfg, proxy)))
        # A resumed run keeps its stored configuration; only the count or time asked may change, and
        # what the machine decided (stored as None before Ray started) is stored now.
        run.write_config({**run.read_config(), "trials": cfg.trials, "time_limit_s": cfg.time_limit_s,
                          "preset": cfg.preset, "confirm": cfg.confirm})

        encoding = get_encoding(cfg.encoding, variant, budget, cfg.resolution)
        study = open_study(plan.storage, run.name, encoding.sampler(cfg.seed),
                           dict(variant=variant.name, budget=cfg.budget, resolution=cfg.resolution,
                                preset=cfg.preset, encoding=cfg.encoding, seed=cfg.seed, seeds=cfg.seeds,
                                estimator=cfg.estimator, proxy=proxy.to_dict(), sola_search_version=__version__),
                           tuple(cfg.objectives))
        retried = recover_interrupted(study)
        queued = enqueue_baselines(study, baselines(variant, budget, cfg.resolution), encoding) if cfg.baselines else []
        run.log("run_resumed" if resuming else "run_started", config=cfg.to_dict(), workers=n_workers, pack=pack,
                resources={"cpus": res.cpus, "gpus": res.gpus, "address": res.address}, retried=retried,
                baselines=queued)
        if retried and not quiet:
            print(_recovered_note(study, retried), file=sys.stderr, flush=True)
        if queued and not quiet:
            print(_baselines_note(queued, cfg.trials), file=sys.stderr, flush=True)
        for note in notes:  # once a session, not once a trial
            run.log("warning", message=note)
            if not quiet:
                print(f"warning: {note}", file=sys.stderr, flush=True)
        if cfg.estimator == "supernet" and not quiet:
            print(_supernet_note(run, cfg, proxy), file=sys.stderr, flush=True)
        loop = SearchLoop(plan, study, encoding, proxy.to_dict(), quiet)
        stopped = loop.run()
        stats = loop.stats
        run.log("run_finished", stopped=stopped, done=stats.done, failed=stats.failed,
                duplicates=stats.duplicates, elapsed_s=time.monotonic() - started)
        if stopped == "failures":
            raise MaxFailures(f"run {run.name} stopped after {stats.failed - loop.failed_before} failed trials "
                              f"(--max-failures {loop.max_failures}); see {run.events}")
        return RunSummary(run.name, run.path, stats.done, stats.failed, stats.duplicates, stopped,
                          time.monotonic() - started, loop.confirmed)


def _compile_mode(cfg: SearchConfig) -> str | None:
    """What the proxy config's `compile` is: the preset's (None) or `--compile` for trained trials; for
    a supernet run only `--compile blocks` compiles, and only its scoring (`Supernet.compile`): 1.91x the
    patterns a minute on 20,000 validation images in a bench, after ~46 s of compilation; off unless asked,
    as a run's rate is bound by the study's per-trial cost, not the scoring (docs/performance.md)."""
    return (cfg.compile or "off") if cfg.estimator == "supernet" else cfg.compile


def _trained_steps(cfg: SearchConfig, proxy) -> int:
    """The steps one training of the run takes: a trial's, or with `--estimator supernet` the supernet's."""
    if cfg.estimator != "supernet":
        return proxy.steps
    from sola_search.proxies.supernet import STEPS_FACTOR

    return cfg.supernet_steps or STEPS_FACTOR * proxy.steps


def _supernet_note(run: RunDir, cfg: SearchConfig, proxy) -> str:
    from sola_search.proxies.supernet import META, checkpoint_progress

    if (run.path / META).exists():
        return f"trials are scored with the run's supernet ({run.path / META})"
    steps = _trained_steps(cfg, proxy)
    progress = checkpoint_progress(run.path)  # a run stopped while it trained its supernet
    if progress is not None:
        return (f"resuming the run's supernet's training from its checkpoint at step {progress[0]} of {progress[1]}, "
                "then each trial is the pattern's score with its shared weights")
    return (f"training the run's supernet first ({steps} steps, checkpointed: a stopped run resumes it), then each "
            "trial is the pattern's score with its shared weights")


def _recovered_note(study: optuna.Study, numbers: list[int]) -> str:
    """One line on what `recover_interrupted` did with the trials a stopped driver (kill -9, a lost
    machine) left RUNNING: each is failed as `interrupted`, and one that had its pattern (or a
    baseline's fixed one) is queued again, measured before any new proposal. A trial cut off before
    it had a pattern leaves nothing to measure."""
    trials = study.get_trials(deepcopy=False)  # numbered in order: trials[n] is trial n
    copies = {t.user_attrs["retry_of"]: t.number for t in trials if "retry_of" in t.user_attrs}  # the latest
    again, empty = [], []
    for n in numbers:
        a = trials[n].user_attrs
        what = ", ".join(x for x in (a.get("pattern"), f"baseline {a['baseline']}" if a.get("baseline") else None) if x)
        (again if n in copies else empty).append(f"{n} ({what})" if what else str(n))
    as_ = ", ".join(str(copies[n]) for n in numbers if n in copies)
    parts = []
    if again:
        one = len(again) == 1
        parts.append(f"trial{'' if one else 's'} {', '.join(again)} {'was' if one else 'were'} left running when "
                     f"the run stopped: marked interrupted, {'its pattern is' if one else 'their patterns are'} "
                     f"measured again first, as trial{'' if one else 's'} {as_}")
    if empty:
        one = len(empty) == 1
        parts.append(f"trial{'' if one else 's'} {', '.join(empty)} had no pattern yet: marked interrupted, "
                     "nothing to measure again")
    return "recovered: " + "; ".join(parts)


def _baselines_note(queued: list[str], trials: int | None) -> str:
    """Baselines come first: with a small --trials a run would measure nothing else, silently."""
    note = f"the first {len(queued)} trials are the baselines ({', '.join(queued)})"
    if trials is not None and trials <= len(queued):
        return (f"{note}: --trials {trials} measures no proposal of the search; ask for more than "
                f"{len(queued)} trials, or pass --no-baselines")
    return f"{note}, then the search's proposals (--no-baselines skips them)"


class SearchLoop:
    """One driver's pass over a run: ask the study for feasible patterns, give each pack of them to
    an idle worker (and, `--ahead 1`, queue one more behind each busy worker's), tell the study what
    came back, until the count, the time, the failures or the space run out. Everything it knows at
    the start it reads from the study."""

    def __init__(self, plan: RunPlan, study: optuna.Study, encoding, proxy: dict, quiet: bool):
        cfg, n_workers = plan.config, plan.workers
        self.cfg, self.run_dir, self.study, self.encoding, self.proxy = cfg, plan.run, study, encoding, proxy
        self.quiet = quiet
        self.table, self.objectives = plan.table, plan.objectives
        self.feasible_total = encoding.feasible.count()
        self.latency = plan.latency
        self.max_failures = cfg.max_failures or max(3, (cfg.trials or 12) // 4)
        trials = study.get_trials(deepcopy=False)
        self.pack_size, self.seeds = plan.patterns, plan.seeds  # trials per pack, each trained with `seeds` seeds
        self.pack: list[tuple[optuna.Trial, object]] = []  # asked trials waiting for a worker
        self.stats = SearchStats(target=cfg.trials, workers=n_workers * plan.patterns,
                                 deadline=None if cfg.time_limit_s is None else time.monotonic() + cfg.time_limit_s)
        self.stats.done = sum(is_counted(t) and t.state == TrialState.COMPLETE for t in trials)
        self.stats.failed = sum(is_counted(t) and t.state == TrialState.FAIL for t in trials)
        self.failed_before = self.stats.failed  # --max-failures counts this session's: a resume may go on
        self.measured = measured_patterns(study)  # pattern → the trial that measured it (its values: the front)
        supernet = None
        if cfg.estimator == "supernet":  # each worker trains or loads the run's supernet as it warms up
            supernet = dict(directory=str(self.run_dir.path), budget=cfg.budget, resolution=cfg.resolution,
                            steps=cfg.supernet_steps, latency=cfg.latency)
        # Jobs: ("trial", [(trial, pattern), …]) for the search, ("confirm", [(trial number, pattern, seeds), …]).
        # A worker holds its running pack and, with `--ahead 1`, one queued behind it (`ask_ahead`).
        self.pool = WorkerPool(worker_actor(plan.options, train_threads=1 + cfg.ahead, embedded=plan.embedded),
                               (self.proxy, self.pack_size, self.seeds, supernet), n_workers,
                               depth=1 + cfg.ahead)
        self.pack_walls: list[float] = []  # this session's finished packs' walls as their workers measured them
        self.running: dict[str, int] = {}  # pattern → trial number measuring it now
        self.waiting: dict[str, list[optuna.Trial]] = {}  # duplicates of a pattern being measured
        self.streak = 0  # proposals in a row that were already measured
        self.owed = owed_trials(study)  # re-queued work: asked before anything else, measured before the end
        self.confirm_failed: set[int] = set()  # trials whose re-measure failed this session: not tried again
        self.confirmed: str | None = None  # what --confirm did, in words
        self._refresh_front()

    def _warmed(self, end: Warmed) -> None:
        info, e = end.info, end.error
        if e is not None:  # its trials will fail and say why; a dead worker is replaced there
            if self.cfg.estimator == "supernet":  # no trial can be scored: stop, saying why
                cause = getattr(e, "cause", None) or e
                if isinstance(cause, SolaError):
                    raise SolaError(str(cause)) from None
                raise StateError(f"run {self.run_dir.name}: its supernet could not be trained or loaded "
                                 f"({one_line(cause)}); what was measured is kept, continue with: "
                                 f"sola-search resume {self.run_dir.path}") from None
            info = dict(status="error", reason=one_line(e))
        wall = end.wall
        self.run_dir.log("worker_ready", wall_s=round(wall, 3), **info)
        self.progress.note(ready_note(info, wall))

    def run(self) -> str:
        """Returns why it stopped: done, time, failures or exhausted."""
        with Progress(self.quiet) as self.progress, stop_signals() as signals:
            try:
                while True:
                    if signals["stop"]:
                        raise KeyboardInterrupt
                    while self.pool.idle:  # fill a pack, then hand it over (a short one when the run ends)
                        if len(self.pack) < self.pack_size and self.stop_reason() is None:
                            self.ask()
                        elif self.pack:
                            self.dispatch()
                        else:
                            break
                    self.ask_ahead()
                    self.stats.queued = sum(len(entries) for _, entries in self.pool.waiting())
                    self.stats.running = sum(len(entries) for _, entries in self.pool.running()) - self.stats.queued
                    self.stats.warming = len(self.pool.warming)
                    self.progress.update(self.stats)
                    if not self.pool.jobs and (not self.pool.warming or self.stop_reason() is not None):
                        stopped = self.stop_reason() or "done"
                        if self.cfg.confirm and stopped in ("done", "exhausted"):
                            self.confirm_front(signals)
                        elif self.cfg.confirm and stopped == "time":  # confirming would overrun the time asked
                            self.confirmed = ("the front was not confirmed: the time limit came first "
                                              "(`sola-search resume RUN --time T` continues the run and confirms it)")
                        return stopped
                    for end in self.pool.wait():
                        if isinstance(end, Warmed):
                            self._warmed(end)
                        else:
                            self.collect(end)
                    self.poll_progress()
            except KeyboardInterrupt:
                self.interrupt()
                raise
            except StateError:
                try:
                    self.interrupt()
                except Exception:  # e.g. the same full disk: `resume` re-queues what is left RUNNING
                    pass
                raise

    def stop_reason(self) -> str | None:
        """Why no new trial may start now (None: one may)."""
        s = self.stats
        if s.failed - self.failed_before >= self.max_failures:
            return "failures"
        if s.deadline is not None and time.monotonic() >= s.deadline:
            return "time"
        if self.owed:  # re-queued work the run owes: measured before the count may end it
            return None
        if self.cfg.trials is not None and s.done + s.failed + len(self.running) >= self.cfg.trials:
            return "done"
        if self.streak >= MAX_DUPLICATE_STREAK or len(self.measured) + len(self.running) >= self.feasible_total:
            return "exhausted"
        return None

    def ask(self) -> None:
        """One proposal: outside the budget (PRUNED), already measured (answered from storage),
        being measured (waits for that result), or new (joins the pack being filled)."""
        trial = self._next_trial()
        pattern = self.encoding.suggest(trial)
        if pattern is None:
            self.study.tell(trial, state=TrialState.PRUNED)
            self.stats.infeasible += 1
            return
        key = str(pattern)
        if key in self.measured or key in self.running:
            self.streak += 1
            if key in self.measured:
                self._tell_duplicate(trial, self.measured[key])
            else:
                self.waiting.setdefault(key, []).append(trial)
            return
        self.streak = 0
        for name, value in (("pattern", key), ("softmax_layers", pattern.softmax_layers),
                            ("macs", self.table.macs(pattern)), ("params", self.table.params)):
            trial.set_user_attr(name, value)
        trial.set_user_attr("estimator", self.cfg.estimator or "train")  # on every trial: readers tell them apart
        if self.latency is not None:  # on every trial, failed ones too: budgets and fronts read it
            trial.set_user_attr("latency_ms", self.latency.ms(pattern))
        self.pack.append((trial, pattern))
        self.running[key] = trial.number

    def _next_trial(self) -> optuna.Trial:
        """The oldest re-queued trial still waiting, ahead of Optuna's queue; else `study.ask()`."""
        while self.owed:
            trial = ask_waiting(self.study, self.owed.pop(0))
            if trial is not None:
                return trial
        return self.study.ask()

    def ask_ahead(self) -> None:
        """`--ahead 1`: fill a pack for each busy worker with room for one and queue it behind the pack
        that worker is training, so that it goes from one pack straight to the next instead of waiting
        while the driver tells the study, asks for new trials and writes pattern files between them
        (0.77 s of an 18.8 s pack cycle on an H200). Only while a new trial may start, and under
        `--time` only for a pack that would start before the limit (`starts_in_time`): a pack asked
        ahead is never taken back when the time comes."""
        for worker, since in self.pool.room():
            if self.stop_reason() is not None:
                return
            if not starts_in_time(since, self.pack_walls, self.stats.deadline):
                continue
            while len(self.pack) < self.pack_size and self.stop_reason() is None:
                self.ask()
            if self.pack:
                self.dispatch(worker)

    def dispatch(self, worker=None) -> None:
        """Give the pack to an idle worker, or queue it behind `worker`'s running pack (`ask_ahead`).
        Its trials' `trial_started` is logged now, at dispatch, either way (`queued` when it waits)."""
        entries, self.pack = self.pack, []
        keys = [str(p) for _, p in entries]
        faults = {k: self.cfg.faults[k] for k in keys if k in self.cfg.faults}
        self.pool.submit(("trial", entries), keys, self.proxy, faults, self.pool.poll_s, self.seeds,
                         self.cfg.estimator or "train", worker=worker)
        queued = {"queued": True} if worker is not None else {}
        for trial, key in zip((t for t, _ in entries), keys, strict=True):
            self.run_dir.log("trial_started", trial=trial.number, pattern=key, pack=len(entries),
                             baseline=trial.user_attrs.get("baseline"), **queued)

    def poll_progress(self) -> None:
        """Every few seconds ask each busy worker how its pack is going; what comes back goes to the
        event log (`trial_progress`) and the status line, so a long trial is not silent."""
        for ref, (_, entries), info in self.pool.poll():
            if info != self.stats.training.get(ref):
                self.stats.training[ref] = info
                self.run_dir.log("trial_progress", trials=[t.number for t, _ in entries], **info)

    def collect(self, end: Done) -> None:
        """Tell the study what one worker returned for its pack; a dead worker is replaced, and a pack
        queued behind the one it died in is re-queued, as it never ran."""
        _, entries = end.job
        self.stats.training.pop(end.ref, None)
        if not end.started:
            self._requeue_unstarted(entries)
            return
        if end.error is None:
            self.pack_walls.append(end.results[0][0].get("worker_s", end.wall))
        for (trial, pattern), (result, status, reason) in zip(entries, self._outcomes(end), strict=True):
            self._finish(trial, pattern, result, status, reason, end)

    def _requeue_unstarted(self, entries: list) -> None:
        """A pack whose worker died before it came to run it: its trials are failed as interrupted and
        their patterns queued again (`requeue`), asked for before any new proposal; no failure of theirs."""
        stored = self.study.get_trials(deepcopy=False)  # numbered in order: stored[n] is trial n
        for trial, pattern in entries:
            del self.running[str(pattern)]
            requeue(self.study, stored[trial.number], "its worker died before this pack started; re-queued")
            self.run_dir.log("trial_requeued", trial=trial.number, pattern=str(pattern),
                             reason="its worker died before this pack started")
        self.owed += [i for i in owed_trials(self.study) if i not in self.owed]

    def _outcomes(self, end: Done) -> list[tuple[list[dict] | None, str, str]]:
        """(runs, status, reason) for each pattern of a pack that ended (its runs: one per seed). A pack
        whose worker raised or died failed whole; a dead worker is replaced (once: by its running pack)."""
        if end.error is None:
            return [(runs, *_seeds_status(runs)) for runs in end.results]
        if end.worker_died:
            self.pool.start()
        return [(None, *_classify(end.error))] * len(end.job[1])

    def _finish(self, trial: optuna.Trial, pattern, runs: list[dict] | None, status: str, reason: str,
                end: Done) -> None:
        """Tell the study one pattern's result: its seeds' runs (`runs`, one per seed), or a failure, from
        its pack's end (`end`). The first seed's run is the trial's `proxy_result` (the run `--seed` alone
        gives), with the driver's wall from submit; the trial's duration is its pack's own (`pack_wall`)."""
        key = str(pattern)
        del self.running[key]
        wall = pack_wall(end)
        self.stats.trial_seconds.append(wall)
        result = runs[0] if runs else None
        if result is not None:
            queued = {"queued": True} if end.queued else {}
            trial.set_user_attr("proxy_result", {**result, "driver_wall_s": end.wall, **queued})
        if status != "ok":
            self.stats.failed += 1
            self._tell_failed(trial, key, status, reason)
            for dup in self.waiting.pop(key, []):
                self._tell_failed(dup, key, "duplicate", f"duplicate of failed trial {trial.number}")
            return
        measured = [Measured(pattern, r, self.table, self.latency) for r in runs]
        values, spread = over_seeds(self.objectives, measured)
        spread |= over_seeds(companion_scores(self.objectives, runs), measured)[1]  # the other score, per seed
        for name, value in spread.items():
            trial.set_user_attr(name, value)
        if len(runs) > 1:
            trial.set_user_attr("seeds", [r["seed"] for r in runs])
        frozen = self.study.tell(trial, list(values.values()))
        write_trial_file(self.run_dir, self.study, frozen)
        self.measured[key] = frozen
        self._refresh_front()
        self.stats.done += 1
        self.run_dir.log("trial_finished", trial=trial.number, pattern=key, **values, **spread, wall_s=wall,
                         train_s=result.get("train_s"), phases=result.get("phases"),
                         worker=result.get("worker_pid"), pack=result.get("packed", 1),
                         **({"queued": True} if end.queued else {}))
        shown = "  ".join(o.show(v, line=True, se=spread.get(o.se_name))
                          for o, v in zip(self.objectives, values.values(), strict=True))
        self.progress.note(f"trial {trial.number:>3} {key}  {shown}  {wall:.1f}s")
        for dup in self.waiting.pop(key, []):
            self._tell_duplicate(dup, frozen)

    def confirm_front(self, signals: dict) -> None:
        """`--confirm N`, once the trials are done: the front's members not yet separated get more
        seeds (the run's K at a time, at most N each, seeds they were not measured with), in packs
        through the same workers, round by round, until the front separates or the seeds are spent
        (`search/confirm.py`: the rule, where re-measures live). The front is taken afresh from the
        merged values each round. Each finished re-measure is stored at once; a kill loses only
        those still training, and `resume` runs them again."""
        from sola_search.search.confirm import plan_round

        rounds, tied, outcome = 0, [], "separated"
        while True:
            if self.stats.deadline is not None and time.monotonic() >= self.stats.deadline:
                outcome = "time"
                break
            jobs, tied = plan_round(self.study, self.cfg.confirm, self.seeds, self.confirm_failed)
            if not jobs:
                outcome = "spent" if tied else "separated"
                break
            rounds += 1
            self.run_dir.log("confirm_round", round=rounds, unresolved=tied,
                             jobs=[dict(trial=n, pattern=p, seeds=s) for n, p, s in jobs])
            self.progress.note(f"confirming the front, round {rounds}: trial{'s' if len(tied) > 1 else ''} "
                               f"{', '.join(map(str, tied))} not separated (mean ± 2 se); "
                               + ", ".join(f"trial {n} +{len(s)} seed{'s' if len(s) > 1 else ''}" for n, _, s in jobs))
            pending = list(jobs)
            while pending or self.pool.jobs:
                if signals["stop"]:
                    raise KeyboardInterrupt
                while self.pool.idle and pending:
                    pack, pending = pending[:self.pack_size], pending[self.pack_size:]
                    keys = [p for _, p, _ in pack]
                    faults = {k: self.cfg.faults[k] for k in keys if k in self.cfg.faults}
                    self.pool.submit(("confirm", pack), keys, self.proxy, faults, self.pool.poll_s,
                                     [s for _, _, s in pack])
                self.progress.update(self.stats)
                for end in self.pool.wait():
                    if isinstance(end, Warmed):
                        self._warmed(end)
                    else:
                        self._confirmed(end)
        from sola_search.search.confirm import merged_front, outcome_text

        front = merged_front(self.study)["number"].astype(int).tolist() if outcome == "separated" else []
        self.confirmed = outcome_text(outcome, rounds, tied, front, self.objectives[0].short, self.cfg.confirm)
        self.run_dir.log("confirm_finished", outcome=outcome, rounds=rounds, unresolved=tied)

    def _confirmed(self, end: Done) -> None:
        """Store what one worker returned for a pack of re-measures (never a trial of its own): each
        pattern's seeds join its trial's record, and its pattern file is written again merged."""
        from sola_search.search.confirm import merged, record_confirmation
        from sola_search.space import Pattern

        _, pack = end.job
        wall = end.wall
        for (n, key, seeds), (runs, status, reason) in zip(pack, self._outcomes(end), strict=True):
            if status != "ok":
                self.confirm_failed.add(n)
                self.run_dir.log("confirm_failed", trial=n, pattern=key, seeds=seeds, status=status, reason=reason)
                self.progress.note(f"confirm trial {n} {key} failed ({status}): {reason}; not tried again this session")
                continue
            pattern = Pattern.parse(key, self.encoding.variant)
            values = {o.name: [o.compute(Measured(pattern, r, self.table, self.latency)) for r in runs]
                      for o in [*self.objectives, *companion_scores(self.objectives, runs)] if o.seeded}
            record = record_confirmation(self.study, n, key, [r["seed"] for r in runs], values)
            trial = self.measured.get(key) or self.study.get_trials(deepcopy=False)[n]  # numbered in order
            write_trial_file(self.run_dir, self.study, trial)
            told, spread = merged(self.objectives, trial.values, trial.user_attrs, record, self.cfg.seed)
            self.run_dir.log("trial_confirmed", trial=n, pattern=key, seeds=[r["seed"] for r in runs], **values,
                             wall_s=wall, merged=dict(zip((o.name for o in self.objectives), told, strict=True)))
            shown = "  ".join(o.show(v, line=True, se=spread.get(o.se_name))
                              for o, v in zip(self.objectives, told, strict=True))
            self.progress.note(f"confirm trial {n:>3} {key}  {shown}  over {len(spread['seeds'])} seeds "
                               f"({spread['confirm_seeds']} confirmation)  {wall:.1f}s")

    def interrupt(self) -> None:
        """Give the unfinished patterns back to the study so that `resume` measures them."""
        unfinished = [t for kind, entries in self.pool.running() if kind == "trial" for t, _ in entries]
        unfinished += [t for t, _ in self.pack]
        stored = self.study.get_trials(deepcopy=False)  # numbered in order: stored[n] is trial n
        for trial in unfinished:
            requeue(self.study, stored[trial.number], "interrupted (Ctrl-C or kill); re-queued")
        for dups in self.waiting.values():
            for trial in dups:
                self.study.tell(trial, state=TrialState.FAIL)
        self.run_dir.log("run_interrupted", done=self.stats.done, failed=self.stats.failed)

    def _tell_duplicate(self, trial: optuna.Trial, source) -> None:
        trial.set_user_attr("duplicate_of", source.number)
        spread = [name for o in self.objectives if o.seeded for name in (o.se_name, o.seeds_name)]
        for key in ("pattern", "proxy_result", "macs", "params", "softmax_layers", "seeds", "estimator", *spread):
            if key in source.user_attrs:
                trial.set_user_attr(key, source.user_attrs[key])
        self.study.tell(trial, list(source.values))
        self.stats.duplicates += 1

    def _tell_failed(self, trial: optuna.Trial, pattern: str, status: str, reason: str) -> None:
        trial.set_user_attr("status", status)
        trial.set_user_attr("reason", reason)
        self.study.tell(trial, state=TrialState.FAIL)
        self.run_dir.log("trial_failed", trial=trial.number, pattern=pattern, status=status, reason=reason)
        self.progress.note(f"trial {trial.number} {pattern} failed ({status}): {reason}")

    def _refresh_front(self) -> None:
        """The status line's front size and best pattern (by the first objective), from what was measured."""
        import numpy as np

        from sola_search.results.front import pareto_mask

        if self.measured:
            (a, b), patterns = self.objectives, list(self.measured)
            values = np.array([t.values for t in self.measured.values()], float)
            first, second = values[:, 0] * (1 if a.maximize else -1), values[:, 1] * (-1 if b.maximize else 1)
            self.stats.front_size = int(pareto_mask(first, second).sum())
            best = int(np.argmax(first))
            self.stats.best_top1, self.stats.best_pattern = float(values[best, 0]), patterns[best]


def pack_wall(end: Done) -> float:
    """A pack's own duration: the driver's wall from submit (dispatch and results included), except for a
    pack queued behind another on its worker, whose wall from submit counts that wait: its worker's own
    figure (`worker_s`, from when it came to run it) then; a queued pack that failed whole has none."""
    if end.queued and end.results:
        return end.results[0][0].get("worker_s", end.wall)
    return end.wall


def starts_in_time(since: float, walls: list[float], deadline: float | None) -> bool:
    """Whether a pack queued now behind a worker's running one (started at `since`, `time.monotonic`) would
    start before the `--time` deadline, by the median of this session's packs' walls (`walls`, as their
    workers measured them); without a deadline always, without a wall yet never."""
    if deadline is None:
        return True
    return bool(walls) and since + statistics.median(walls) < deadline


def _seeds_status(runs: list[dict]) -> tuple[str, str]:
    """(status, reason) of a pattern's runs with its seeds: `ok` only when every seed's run is; else the
    first failed seed's, named when there are several (a mean over fewer seeds would not be the
    run's K-seed measurement)."""
    bad = next((r for r in runs if r["status"] != "ok"), None)
    if bad is None:
        return "ok", ""
    reason = bad.get("reason", "")
    return bad["status"], (f"seed {bad.get('seed')}: {reason}" if len(runs) > 1 else reason)


def resume_search(path: str | Path, trials: int | None = None, time_limit_s: float | None = None,
                  address: str | None = None, quiet: bool = False, max_failures: int | None = None,
                  confirm: int | None = None) -> RunSummary:
    """Continue a run from its directory after it stopped or was killed (`confirm`: a new
    `--confirm N`, stored for later resumes; None keeps the stored one)."""
    run = RunDir(Path(path).resolve())  # `resume .` names the directory it is in
    stored = SearchConfig.from_dict(run.read_config(), str(run.run_json))
    # Only what is given here; `prepare` takes everything else from the stored configuration.
    cfg = SearchConfig(budget=stored.budget, name=run.name, runs_dir=str(run.path.parent), trials=trials,
                       time_limit_s=time_limit_s, address=address, max_failures=max_failures, confirm=confirm)
    return run_search(cfg, quiet=quiet, stored=stored)

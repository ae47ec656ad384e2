"""The Optuna study of a run — the single source of truth: objectives, attributes, and recovery of
trials that a killed driver left RUNNING."""

from __future__ import annotations

import os
import warnings

import optuna
from optuna.trial import FrozenTrial, TrialState

from sola_search.errors import SolaError, redact_url
from sola_search.objectives import DEFAULT_OBJECTIVES, study_objectives
from sola_search.search.config import IDENTITY


def storage_for(url: str) -> optuna.storages.BaseStorage:
    """An RDB storage for a SQLite or PostgreSQL URL, with a one-line error for a bad one."""
    try:
        return optuna.storages.RDBStorage(url, engine_kwargs={"pool_pre_ping": True})
    except Exception as e:  # SQLAlchemy raises many types for a bad URL or an unreachable server
        raise SolaError(f"cannot open study storage {redact_url(url)}: {str(e).splitlines()[0]}") from None


def sqlite_file(url: str) -> str | None:
    """The database file a SQLite URL names, as written (None for other URLs, an in-memory
    database, or text that is no URL: storage_for names what is wrong with that)."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        u = make_url(url)
    except ArgumentError:
        return None
    return u.database if u.get_backend_name() == "sqlite" and u.database not in (None, "", ":memory:") else None


def absolute_sqlite(url: str) -> str:
    """A SQLite URL with its file made absolute (`sqlite:///runs.db` is relative to the working
    directory); other URLs as given."""
    from sqlalchemy.engine import make_url

    db = sqlite_file(url)
    if db is None or os.path.isabs(db):
        return url
    return make_url(url).set(database=os.path.abspath(db)).render_as_string(hide_password=False)


def open_study(storage: optuna.storages.BaseStorage, name: str, sampler: optuna.samplers.BaseSampler,
               attrs: dict, objectives: tuple[str, ...] = DEFAULT_OBJECTIVES) -> optuna.Study:
    """Create the run's study with its objectives (metric names and directions), or load it and
    check it searches the same space (the run's identity, as far as the study stores it) for the
    same objectives."""
    from sola_search.objectives import get_objectives

    optuna.logging.set_verbosity(optuna.logging.WARNING)  # the run's own log says what happens
    wanted = get_objectives(objectives)
    study = optuna.create_study(study_name=name, storage=storage, sampler=sampler,
                                directions=[o.direction for o in wanted], load_if_exists=True)
    old = study.user_attrs
    if old:
        for key in IDENTITY:
            if key in old and key in attrs and old[key] != attrs[key]:
                raise SolaError(f"study {name} searches {key} {old[key]!r}, not {attrs[key]!r}: "
                                f"use another --name, or resume it as it is")
        if study_objectives(study) != wanted:
            raise SolaError(f"study {name} optimises {', '.join(o.name for o in study_objectives(study))}, not "
                            f"{', '.join(o.name for o in wanted)}: use another --name, or resume it as it is")
    else:
        with warnings.catch_warnings():  # experimental since Optuna 3.2, and what dashboards read
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study.set_metric_names([o.name for o in wanted])
    for key, value in attrs.items():
        if old.get(key) != value:
            study.set_user_attr(key, value)
    return study


def is_counted(t: FrozenTrial) -> bool:
    """Trials that used up part of the requested count: measured patterns and real failures (not
    duplicates answered from storage, proposals outside the budget (PRUNED), or trials cut short by
    an interruption)."""
    if t.state == TrialState.COMPLETE:
        return "duplicate_of" not in t.user_attrs
    return t.state == TrialState.FAIL and t.user_attrs.get("status") in ("nan", "oom", "error")


def measured_patterns(study: optuna.Study) -> dict[str, FrozenTrial]:
    """Pattern text → the completed trial that measured it; a pattern here is never trained again."""
    out: dict[str, FrozenTrial] = {}
    for t in study.get_trials(deepcopy=False, states=[TrialState.COMPLETE]):
        p = t.user_attrs.get("pattern")
        if p and "duplicate_of" not in t.user_attrs and p not in out:
            out[p] = t
    return out


def requeue(study: optuna.Study, t: FrozenTrial, reason: str) -> None:
    """An unfinished trial: FAIL with status 'interrupted', its parameters enqueued again so that its
    pattern is measured after all (a baseline stays a baseline): the suggested ones, or else the
    fixed ones of an enqueued trial stopped before its suggestions. The copy is queued before the
    trial is failed: a second interruption in between leaves a duplicate, never a lost pattern."""
    params = t.params or t.system_attrs.get("fixed_params") or {}
    if params:
        keep = {k: v for k, v in t.user_attrs.items() if k == "baseline"}
        study.enqueue_trial(params, user_attrs={**keep, "retry_of": t.number})
    trial = optuna.Trial(study, t._trial_id)
    trial.set_user_attr("status", "interrupted")
    trial.set_user_attr("reason", reason)
    study.tell(trial, state=TrialState.FAIL)


def owed_trials(study: optuna.Study) -> list[int]:
    """Trial ids of re-queued work still WAITING (`retry_of`: an interrupted trial's copy, a failed
    baseline's retry), oldest first: the run owes these measurements before any new proposal."""
    return [t._trial_id for t in study.get_trials(deepcopy=False, states=[TrialState.WAITING])
            if "retry_of" in t.user_attrs]


def ask_waiting(study: optuna.Study, trial_id: int) -> optuna.Trial | None:
    """Ask for one given WAITING trial, as `study.ask()` asks for the oldest one: Optuna's queue is
    first in, first out, so a re-queued copy would otherwise wait behind every baseline and, with
    `--trials` reached first, never run. None when it is no longer waiting."""
    storage = study._storage  # Optuna has no public way to take a given trial off its queue
    try:
        if not storage.set_trial_state_values(trial_id, state=TrialState.RUNNING):
            return None
    except optuna.exceptions.UpdateFinishedTrialError:
        return None
    study._thread_local.cached_all_trials = None  # as `ask`: the sampler reads the storage afresh
    return optuna.Trial(study, trial_id)


def recover_interrupted(study: optuna.Study) -> list[int]:
    """Trials left RUNNING by a driver that died (kill -9, a lost machine): re-queued. Returns their
    numbers."""
    stale = study.get_trials(deepcopy=False, states=[TrialState.RUNNING])
    for t in stale:
        requeue(study, t, "the driver stopped before this trial finished; re-queued")
    return [t.number for t in stale]

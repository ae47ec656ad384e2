"""Test support for the results package: a real SQLite Optuna study in a run directory, filled with
fake-but-valid trials that follow docs/architecture.md (no search, no training)."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import optuna
import sqlalchemy
from optuna.trial import TrialState, create_trial

from sola_search.objectives import standard_error
from sola_search.search.rundir import sqlite_url
from sola_search.space import Budget, Pattern, baselines, get_variant, model_cost


def fast_sqlite(path: Path) -> optuna.storages.RDBStorage:
    """A SQLite storage that skips fsync (tests only): adding trials is ~10× faster; the file is an
    ordinary study database that `optuna.load_study` and sola-search open as usual."""
    storage = optuna.storages.RDBStorage(sqlite_url(path))
    storage.engine.dispose()
    sqlalchemy.event.listen(storage.engine, "connect", lambda conn, _: conn.execute("PRAGMA synchronous=OFF"))
    return storage


def make_run(root: Path, name: str = "r1", *, variant: str = "micro", budget: str = "4softmax", n: int = 24,
             failed: int = 3, infeasible: int = 2, seed: int = 0, resolution: int = 224,
             events: list[dict] | None = None, proxy: dict | None = None, seeds: int = 1,
             spread: float = 0.01, score: str = "val_top1", latency: bool = False) -> Path:
    """runs/<name>/ with run.json, study.db (study name = run name) and optional events.jsonl.

    Trials: the budget's baselines first, then `n` random feasible patterns (top-1 rising with the
    number of softmax blocks, plus noise), `infeasible` over-budget trials with a violated constraint
    and the best top-1 of all (so they would dominate if counted), `failed` OOM failures, and one
    duplicate of trial 0 (which carries no `pattern` attribute, as the search writes it). With
    `seeds` > 1 each completed trial's top-1 is the mean of that many seeds' values spread ± `spread`
    around it, with their standard error, as `run --seeds` records them. `score="val_loss"` makes a
    `run --score loss` run: each trial's loss is 1.5 - its top-1, minimized. `latency` gives each trial
    but the duplicate a `latency_ms` attribute (10 + its softmax blocks), as a run with `--latency` records them."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    rng = np.random.default_rng(seed)
    v, b = get_variant(variant), Budget.parse(budget)
    run_dir = root / name
    (run_dir / "patterns").mkdir(parents=True)
    (run_dir / "run.json").write_text(json.dumps({"budget": budget, "variant": variant, "name": name, "trials": n}))
    if events is not None:
        (run_dir / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
    study = optuna.create_study(study_name=name, storage=fast_sqlite(run_dir / "study.db"),
                                directions=["maximize" if score == "val_top1" else "minimize", "minimize"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study.set_metric_names([score, "gmacs"])
    for key, value in dict(sola_search_version="0.1.0", variant=variant, budget=str(b), resolution=resolution,
                           preset="quick", proxy=proxy or {"width": 0.25, "resolution": 32, "steps": 10, "seed": seed},
                           encoding="topk", seed=seed, seeds=seeds).items():
        study.set_user_attr(key, value)

    def attrs(p: Pattern, **extra) -> dict:
        c = model_cost(v, p, resolution)
        ms = dict(latency_ms=10.0 + p.softmax_layers) if latency else {}
        return dict(pattern=str(p), softmax_layers=p.softmax_layers, macs=c.macs, params=c.params, **ms, **extra)

    def top1(p: Pattern) -> float:
        return float(np.clip(0.5 + 0.04 * p.softmax_layers + rng.normal(0, 0.03), 0, 1))

    def add(p: Pattern, value: float | None = None, state=TrialState.COMPLETE, constraints=None, **extra) -> None:
        a = attrs(p, **extra)
        if state == TrialState.COMPLETE:
            val = top1(p) if value is None else value
            a["proxy_result"] = {"val_top1": val, "val_loss": 1.5 - val, "seconds": 3.0, "seed": seed}
            if seeds > 1:
                each = [val + spread * (2 * i / (seeds - 1) - 1) for i in range(seeds)]
                val = float(np.mean(each))
                a |= dict(val_top1_seeds=each, val_top1_se=standard_error(each), seeds=list(range(seed, seed + seeds)))
            told = val if score == "val_top1" else 1.5 - val  # what the study is told
            t = create_trial(state=state, values=[told, a["macs"] / 1e9], user_attrs=a,
                             constraints=constraints or {"softmax": float(p.softmax_layers - (b.max_softmax or 99))})
        else:
            t = create_trial(state=state, user_attrs=a)
        study.add_trial(t)

    seen: set[Pattern] = set()
    for bname, p in baselines(v, b, resolution).items():
        add(p, baseline=bname)
        seen.add(p)
    k = b.max_softmax if b.max_softmax is not None else v.num_blocks
    while len(seen) < n + len(baselines(v, b, resolution)):
        bits = np.zeros(v.num_blocks, bool)
        bits[rng.choice(v.num_blocks, size=int(rng.integers(0, k + 1)), replace=False)] = True
        p = Pattern.from_bits(bits, v)
        if p not in seen:
            seen.add(p)
            add(p)
    for _ in range(infeasible):
        p = Pattern.from_bits(rng.permutation([True] * (k + 2) + [False] * (v.num_blocks - k - 2)), v)
        add(p, value=0.99)
    for _ in range(failed):
        p = Pattern.from_bits(rng.permutation([True] * k + [False] * (v.num_blocks - k)), v)
        add(p, state=TrialState.FAIL, status="oom", reason="CUDA out of memory (simulated)")
    # A duplicate answered from storage, as the search records it: the source's values, no pattern.
    first = study.trials[0]
    a = {k: first.user_attrs[k] for k in ("proxy_result", "macs", "params", "softmax_layers", "val_top1_se",
                                          "val_top1_seeds", "seeds") if k in first.user_attrs}
    study.add_trial(create_trial(values=first.values, user_attrs={**a, "duplicate_of": 0},
                                 constraints=first.constraints))
    return run_dir


def test_make_run_builds_a_loadable_study(tmp_path):
    d = make_run(tmp_path, n=5, failed=1, infeasible=1)
    s = optuna.load_study(study_name="r1", storage=f"sqlite:///{d / 'study.db'}")
    assert s.metric_names == ["val_top1", "gmacs"]
    states = [t.state for t in s.trials]
    assert states.count(TrialState.FAIL) == 1

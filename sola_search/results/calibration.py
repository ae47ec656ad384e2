"""What a calibration found (`sola-search calibrate`): per rung of a step ladder, how well the proxy
ranks a stratified pattern set against the top rung, and the cheapest (steps, seeds) that ranks.

Pure analysis of the trainings' records (`analyse`), the printed table (`table_lines`), the PNG
(`plot_calibration`) and reading a calibration file back (`load_calibration`, for `run
--calibration`). The trainings themselves are `search/calibrate.py`'s. Ranking score: validation top-1, or
the validation loss (`score`, as `run --score`)."""

from __future__ import annotations

import itertools
import math
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sola_search.errors import SolaError
from sola_search.objectives import OBJECTIVES, SCORE_OBJECTIVES
from sola_search.results.fidelity import (
    bootstrap_tau,
    cross_r,
    kendall_tau,
    projected_r,
    seed_agreement,
    split_half,
    spread_over_noise,
    tau_of_r,
)

FORMAT, VERSION = "sola-search-calibration", 1
BAR = 0.6  # the tau against the top rung a setting must be expected to reach (issue 13's proxy target)
MAX_SEEDS = 8  # projections stop here: Spearman-Brown far beyond the measured seeds is a guess
MIN_PATTERNS = 6  # fewer: a tau's null standard error is over 0.3 and a bootstrap over patterns means little
SHOWN_SEEDS = (1, 2, 4, 8)  # the seeds counts the table and plot show (the measured count too)


def _finite(x: Any) -> Any:
    """JSON has no nan or inf: a statistic that does not exist (constant scores, no seed noise) is null."""
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {k: _finite(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_finite(v) for v in x]
    return x


def analyse(ladder: Sequence[int], seeds: Sequence[int], patterns: Sequence[str],
            runs: dict[tuple[int, str, int], dict], bar: float = BAR, max_seeds: int = MAX_SEEDS,
            score: str = "val_top1", reference_seeds: Sequence[int] | None = None) -> dict:
    """The per-rung statistics and the recommendation, from `runs[(steps, pattern, seed)]` (a proxy
    result: status, val_top1, train_s, packed). A rung's statistics use the patterns every one of its
    seeds scored (and, against the top rung, the top rung scored too). The top rung is trained with
    `reference_seeds` (default `seeds`; more: a reference that agrees with itself better).

    Per rung: seed-to-seed Kendall tau and r (mean over seed pairs), between-pattern spread over seed
    spread (`spread_over_seed`) and over the seed spread left once each seed's shift common to every
    pattern is set aside (`spread_over_seed_paired`: within a seed the patterns share their start and
    batches, so that shift moves no ranking; the table shows this one), tau of the rung's seed mean
    against the top rung's seed mean with a bootstrap 90 % interval over patterns (the top rung: its
    split-half tau and Spearman-Brown ceiling instead), device-seconds per pattern (all seeds; a pack's
    training time shared by its models), and the expected tau against the top rung's seed mean for
    1..`max_seeds` seeds: r of means projected from single seeds' correlations by Spearman-Brown
    (`projected_r`), tau = (2/pi)·asin r; `basis` says whether that seeds count was measured or is
    projected (`measured_tau`: the measured one)."""
    ladder, top = list(ladder), ladder[-1]
    top_seeds = list(reference_seeds or seeds)
    n_top = len(top_seeds)
    sign = 1 if OBJECTIVES[score].maximize else -1  # the statistics take higher as better

    def seeds_of(steps: int) -> list[int]:
        return top_seeds if steps == top else list(seeds)

    def scored(steps: int) -> tuple[list[str], list[list[float]]]:
        kept, values = [], []
        for p in patterns:
            rs = [runs.get((steps, p, s)) for s in seeds_of(steps)]
            if all(r is not None and r.get("status") == "ok" and r.get(score) is not None for r in rs):
                kept.append(p)
                values.append([sign * r[score] for r in rs])
        return kept, values

    top_p, top_v = scored(top)
    top_by = dict(zip(top_p, top_v, strict=True))
    top_agree = seed_agreement(top_v) if len(top_p) >= 3 else None
    rungs = []
    for steps in ladder:
        kept, values = scored(steps)
        n_seeds = len(seeds_of(steps))
        done = [runs[(steps, p, s)] for p in patterns for s in seeds_of(steps) if (steps, p, s) in runs]
        per_model = [r.get("train_s", 0.0) / max(1, r.get("packed", 1)) for r in done if r.get("status") == "ok"]
        per_seed = statistics.fmean(per_model) if per_model else None
        row: dict[str, Any] = dict(steps=steps, seeds=n_seeds, trainings=len(done), of=len(patterns) * n_seeds,
                                   failed=sum(r.get("status") != "ok" for r in done), patterns_scored=len(kept),
                                   gpu_s_per_seed=per_seed, gpu_s_per_pattern=None if per_seed is None
                                   else per_seed * n_seeds)
        if len(kept) >= 3:
            row |= seed_agreement(values) or {}
            spread = spread_over_noise(values) or {}
            row |= dict(between_sd=spread.get("between_sd"), seed_sd=spread.get("seed_sd"),
                        spread_over_seed=spread.get("ratio"), seed_sd_paired=spread.get("seed_sd_paired"),
                        spread_over_seed_paired=spread.get("ratio_paired"))
        common = [p for p in kept if p in top_by]
        if len(common) >= 3 and top_agree is not None:
            mine = [values[kept.index(p)] for p in common]
            ref = [top_by[p] for p in common]
            ref_mean = [statistics.fmean(v) for v in ref]
            if steps == top:
                half = split_half(mine) or {}
                row |= dict(split_half_tau=half.get("split_half_tau"), reliability=half.get("reliability"),
                            tau_ceiling=half.get("tau_ceiling"))
                cross = top_agree["seed_r"]  # the top rung's other seeds: a seed against another seed
            else:
                a = [statistics.fmean(v) for v in mine]
                lo, hi = bootstrap_tau(a, ref_mean)
                row |= dict(tau_vs_top=kendall_tau(a, ref_mean), tau_vs_top_90=[lo, hi])
                cross = cross_r(mine, ref)
            row["r_vs_top_single"] = cross
            expected = []
            for k in range(1, max_seeds + 1):
                tau = tau_of_r(projected_r(cross, row["seed_r"], k, top_agree["seed_r"], n_top))
                entry = dict(seeds=k, tau=tau, basis="measured" if k <= n_seeds else "projected")
                if k <= n_seeds and steps != top:  # the mean of every k of the measured seeds, against the top
                    entry["measured_tau"] = statistics.fmean(
                        kendall_tau([statistics.fmean(v[i] for i in subset) for v in mine], ref_mean)
                        for subset in itertools.combinations(range(n_seeds), k))
                expected.append(entry)
            row["expected"] = expected
        rungs.append(row)
    report = dict(bar=bar, max_seeds=max_seeds, score=score, rungs=rungs,
                  recommendation=recommend(rungs, bar))
    return _finite(report)


def recommend(rungs: list[dict], bar: float = BAR) -> dict:
    """The cheapest (steps, seeds), cost steps x seeds, whose expected tau against the top rung is at
    least `bar` (a tie in cost goes to the higher tau); or why this data cannot rank placements within
    the ladder: the top rung does not reproduce itself (its split-half tau, with two seeds its
    seed-to-seed tau, below the bar), or no rung reaches the bar."""
    top = rungs[-1]
    half = top.get("split_half_tau")
    if half is None or not math.isfinite(half) or half < bar:
        agree = "cannot be measured (its scores do not vary)" if half is None or not math.isfinite(half) \
            else f"is tau {half:.2f} between halves of its seeds"
        return dict(ranks=False, reason=(
            f"this data cannot rank placements within the ladder: the top rung ({top['steps']} steps) does not "
            f"reproduce itself (its seeds' agreement {agree}, below {bar:g}); try a longer ladder or other data"))
    options = [(r["steps"] * e["seeds"], -e["tau"], r, e) for r in rungs for e in r.get("expected", [])
               if e["tau"] is not None and e["tau"] >= bar]
    if not options:
        best = max(((e["tau"], r["steps"], e["seeds"]) for r in rungs for e in r.get("expected", [])
                    if e["tau"] is not None), default=None)
        what = f" (the best: tau {best[0]:.2f} at {best[1]} steps x {best[2]} seeds)" if best else ""
        return dict(ranks=False, reason=(
            f"this data cannot rank placements within the ladder: no rung is expected to reach tau {bar:g} against "
            f"the top rung with up to {max(len(r.get('expected', [])) for r in rungs)} seeds{what}"))
    cost, _, r, e = min(options, key=lambda o: o[:2])
    return dict(ranks=True, steps=r["steps"], seeds=e["seeds"], expected_tau=e["tau"], basis=e["basis"],
                cost=cost, gpu_s_per_pattern=None if r.get("gpu_s_per_seed") is None
                else r["gpu_s_per_seed"] * e["seeds"])


def _f(x: Any, fmt: str = ".2f") -> str:
    return "-" if x is None else format(x, fmt)


def table_lines(calibration: dict) -> list[str]:
    """The printed table: one line per rung, then the recommendation."""
    rungs = calibration["rungs"]
    n, n_top = len(calibration["seeds"]), len(reference_seeds(calibration))
    shown = sorted({*SHOWN_SEEDS, n, n_top} & set(range(1, calibration["max_seeds"] + 1)))
    head = ["steps", "scored", "seed tau", "spread/noise", "tau vs top [90 %]", "device-s/pattern",
            *[f"{k} seed{'s' if k > 1 else ''}" for k in shown]]
    rows = []
    for r in rungs:
        if "split_half_tau" in r:
            vs = f"split-half {_f(r['split_half_tau'])} (ceiling {_f(r.get('tau_ceiling'))})"
        elif "tau_vs_top" in r:
            lo, hi = r["tau_vs_top_90"]
            vs = f"{_f(r['tau_vs_top'])} [{_f(lo)}, {_f(hi)}]"
        else:
            vs = "-"
        exp = {e["seeds"]: _f(e["tau"]) + ("*" if e["basis"] == "projected" else "") for e in r.get("expected", [])}
        rows.append([str(r["steps"]), f"{r['patterns_scored']}/{len(calibration['patterns'])}", _f(r.get("seed_tau")),
                     _f(r.get("spread_over_seed_paired"), ".1f"), vs, _f(r.get("gpu_s_per_pattern"), ".1f"),
                     *[exp.get(k, "-") for k in shown]])
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(head)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip() for line in [head, *rows]]
    by = "" if calibration.get("score", "val_top1") == "val_top1" else f"patterns ranked by {calibration['score']}; "
    seeds = f"{n} seeds" if n == n_top else f"{n} seeds, the top rung's {n_top}"
    lines.append(f"{by}expected tau against the top rung's {n_top}-seed mean for each seeds count (* projected by "
                 f"Spearman-Brown from the measured {seeds}); device-s/pattern: all {seeds}; spread/noise: "
                 "the patterns' sd over the seeds' once each seed's shift common to all patterns is set aside")
    rec = calibration["recommendation"]
    if rec["ranks"]:
        lines.append(f"recommendation: --steps {rec['steps']} --seeds {rec['seeds']} (expected tau "
                     f"{rec['expected_tau']:.2f} >= {calibration['bar']:g}, {rec['basis']}; "
                     f"{_f(rec.get('gpu_s_per_pattern'), '.1f')} device-s per pattern)")
    else:
        lines.append(f"recommendation: none; {rec['reason']}")
    return lines


def reference_seeds(calibration: dict) -> list[int]:
    """The top rung's seeds: `reference_seeds` where the calibration had more there, else `seeds`."""
    return calibration.get("reference_seeds") or calibration["seeds"]


def plot_calibration(calibration: dict, path: str | Path) -> Path:
    """Tau against the top rung vs device-seconds per pattern: one line per seeds count (filled
    markers measured, hollow ones projected), each rung's measured tau with its 90 % interval, and
    the bar."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    from sola_search.results.report import PLOT_DPI

    path = Path(path)
    n = len(calibration["seeds"])
    shown = sorted({*SHOWN_SEEDS, n} & set(range(1, calibration["max_seeds"] + 1)))
    rungs = [r for r in calibration["rungs"] if r.get("expected") and r.get("gpu_s_per_seed")]
    fig, ax = plt.subplots(figsize=(7.5, 4.8), dpi=PLOT_DPI, layout="constrained")
    try:
        for i, k in enumerate(shown):
            xs = [r["gpu_s_per_seed"] * k for r in rungs]
            ys = [r["expected"][k - 1]["tau"] for r in rungs]
            ax.plot(xs, ys, color=f"C{i}", lw=1.2, label=f"{k} seed{'s' if k > 1 else ''}"
                    f"{' (projected)' if k > n else ''}")
            ax.scatter(xs, ys, color=f"C{i}" if k <= n else "none", edgecolors=f"C{i}", s=28, zorder=3)
        measured = [r for r in rungs if r.get("tau_vs_top") is not None]
        if measured:
            x = [r["gpu_s_per_pattern"] for r in measured]
            y = [r["tau_vs_top"] for r in measured]
            lo = [max(0.0, t - (r["tau_vs_top_90"][0] if r["tau_vs_top_90"][0] is not None else t))
                  for t, r in zip(y, measured, strict=True)]
            hi = [max(0.0, (r["tau_vs_top_90"][1] if r["tau_vs_top_90"][1] is not None else t) - t)
                  for t, r in zip(y, measured, strict=True)]
            ax.errorbar(x, y, yerr=[lo, hi], fmt="D", color="black", ms=5, capsize=3, zorder=4,
                        label=f"measured, {n} seeds (90 % interval)")
        for r in rungs:
            ax.annotate(f"{r['steps']}", (r["gpu_s_per_seed"], r["expected"][0]["tau"]), fontsize=7,
                        xytext=(3, -9), textcoords="offset points")
        ax.axhline(calibration["bar"], color="red", ls="--", lw=1, label=f"bar tau {calibration['bar']:g}")
        if rungs and all(r["gpu_s_per_seed"] > 0 for r in rungs):
            ax.set_xscale("log")
        ax.set_xlabel("device-seconds per pattern (all its seeds)")
        ax.set_ylabel("Kendall tau against the top rung's seed mean")
        ident = calibration["identity"]
        ax.set_title(f"calibration: {ident['data']}\n{ident['variant']}, {ident['budget']}, ladder "
                     f"{','.join(map(str, calibration['ladder']))} steps (labels: steps)", fontsize=8, wrap=True)
        ax.set_ylim(min(-0.1, ax.get_ylim()[0]), 1.05)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1), borderaxespad=0)
        fig.savefig(path, dpi=PLOT_DPI)
    finally:
        plt.close(fig)
    return path


def is_calibration(record: object) -> bool:
    return isinstance(record, dict) and record.get("format") == FORMAT


def load_calibration(path: str | Path) -> dict:
    """A calibration file (`sola-search calibrate --out`), checked; raises only `SolaError`: not a
    calibration, another version, a field missing, or a value a run cannot take (named)."""
    from sola_search.files import read_json

    record = read_json(path, str(path))
    if not is_calibration(record):
        raise SolaError(f"{path} is not a calibration (sola-search calibrate writes one: a JSON object with "
                        f"\"format\": \"{FORMAT}\")")
    if record.get("version") != VERSION:
        raise SolaError(f"{path}: calibration version {record.get('version')!r}, expected {VERSION}")
    ident, rec = record.get("identity"), record.get("recommendation")
    if not isinstance(ident, dict) or not all(isinstance(ident.get(k), str) for k in ("data", "variant", "budget",
                                                                                      "preset")):
        raise SolaError(f"{path}: a calibration without its identity (data, variant, budget, preset)")
    if not isinstance(rec, dict) or not isinstance(rec.get("ranks"), bool):
        raise SolaError(f"{path}: a calibration without a readable recommendation")
    from sola_search.search.config import MAX_PACK

    # What `run --calibration` takes from the file, checked here so that a hand-edited value fails in
    # one line naming the file and field: not as a traceback, a flag never given, or a run.json that
    # cannot be resumed. The identity's numbers may be absent (a file from before them: the preset's).
    whole, number = (int,), (int, float)
    _check_field(path, "identity", ident, "data_path", (str,), bool, "a data spec", optional=True)
    _check_field(path, "identity", ident, "batch_size", whole, lambda v: v >= 1, "a whole number >= 1", optional=True)
    _check_field(path, "identity", ident, "lr", number, lambda v: 0 < v < 1, "a number above 0 and below 1",
                 optional=True)
    if rec["ranks"]:
        _check_field(path, "recommendation", rec, "steps", whole, lambda v: v >= 1, "a whole number >= 1")
        _check_field(path, "recommendation", rec, "seeds", whole, lambda v: 1 <= v <= MAX_PACK, f"1 to {MAX_PACK}")
        _check_field(path, "recommendation", rec, "expected_tau", number, lambda v: -1 <= v <= 1, "a tau from -1 to 1")
    if record.get("score", "val_top1") not in SCORE_OBJECTIVES.values():
        raise SolaError(f"calibration {path}: score {record.get('score')!r}, expected "
                        f"{' or '.join(SCORE_OBJECTIVES.values())}")
    return record


def _check_field(path: str | Path, part: str, d: dict, key: str, types: tuple, ok, expected: str,
                 optional: bool = False) -> None:
    """One value of a calibration's `part`: of `types` (a bool is no number) and `ok`, else one line."""
    value = d.get(key)
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, types) or not ok(value):
        found = "missing" if key not in d else repr(value)
        raise SolaError(f"calibration {path}: {part} {key} {found}, expected {expected}")

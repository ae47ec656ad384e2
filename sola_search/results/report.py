"""Reports on what a run found: the front as a table, CSV or JSON, plots (PNG and self-contained
HTML), the comparison of several runs, and the one-line summary of each run in a runs directory."""

from __future__ import annotations

import csv
import errno
import io
import json
import math
import os
import shlex
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from sola_search.errors import SolaError, ascii_float
from sola_search.files import output_parents
from sola_search.objectives import DEFAULT_OBJECTIVES, Objective, get_objectives
from sola_search.results.front import (
    TIE_SE,
    best_first,
    frame_objectives,
    front_hypervolume,
    knee,
    pareto_front,
    reference_point,
    seeded,
    tie_phrase,
    ties,
    trials_frame,
)
from sola_search.results.runs import Run, run_state
from sola_search.space.pattern import LINEAR_MARK

FORMATS = ("table", "csv", "json")
PLOT_SIZE = (8.0, 5.0)  # inches; at PLOT_DPI this is the PNG's size in pixels (800 × 500)
PLOT_DPI = 100


@dataclass
class FrontReport:
    """A run's trials, its Pareto front and knee, and the hypervolume at a stated reference point."""

    run: Run
    frame: pd.DataFrame
    front: pd.DataFrame
    knee: int | None
    ref: tuple[float, float]
    hypervolume: float

    @property
    def _stale_rows(self) -> pd.Series:
        """The rows of trials a driver that is gone left RUNNING (marked by `_mark_stale`)."""
        return (self.frame["state"] == "RUNNING") & (self.frame["status"] == "interrupted")

    @property
    def stale(self) -> list[int]:
        """Those trials' numbers."""
        return self.frame.loc[self._stale_rows, "number"].astype(int).tolist()

    @property
    def objectives(self) -> tuple[Objective, Objective]:
        return frame_objectives(self.frame)

    @property
    def seeded(self) -> list[Objective]:
        """The objectives measured with several seeds (`run --seeds K`): shown with `± se`."""
        return seeded(self.frame)

    def se(self, objective: Objective, row: Any) -> float | None:
        """A row's standard error of `objective` (None: the run has no seeds, or the row no value)."""
        if objective not in self.seeded:
            return None
        value = row[objective.se_name] if isinstance(row, dict) else getattr(row, objective.se_name)
        return _num(value)

    def ties(self, number: int | None) -> list[int]:
        """The front's trials statistically tied with trial `number` (`front.ties`)."""
        rows = self.frame[self.frame["number"] == number]
        return [] if number is None or rows.empty else ties(self.front, rows.iloc[0])

    @property
    def counts(self) -> dict[str, int]:
        from sola_search.search.study import is_counted  # what a run's --trials counts: the search's own test

        s = self.frame["state"]
        f = self.frame
        interrupted = (s == "FAIL") & (f["status"] == "interrupted")
        stale = self._stale_rows
        counted = sum(is_counted(t) for t in self.run.study.get_trials(deepcopy=False))
        return dict(trials=len(self.frame), complete=int((s == "COMPLETE").sum()),
                    failed=int(((s == "FAIL") & ~interrupted).sum()), interrupted=int(interrupted.sum()),
                    running=int(((s == "RUNNING") & ~stale).sum()), stale=int(stale.sum()),
                    pruned=int((s == "PRUNED").sum()),
                    infeasible=int(((s == "COMPLETE") & ~f["feasible"]).sum()), counted=counted,
                    front=len(self.front))


def front_report(run: Run, ref: tuple[float, float] | None = None) -> FrontReport:
    """Compute the front, knee and hypervolume of a run (at `ref`, default `reference_point`)."""
    frame = trials_frame(run.study)
    front = pareto_front(frame)
    k = knee(front)
    ref = ref if ref is not None else reference_point(run.study, frame)
    _mark_stale(run, frame)
    return FrontReport(run, frame, front, None if k is None else int(k["number"]), ref, front_hypervolume(front, ref))


STALE_REASON = "the run stopped before this trial finished; resume measures it again"


def _mark_stale(run: Run, frame: pd.DataFrame) -> None:
    """The trials a driver that is gone (kill -9, a lost machine) left RUNNING: nothing measures them,
    and `resume` re-queues them (`search.study.recover_interrupted`). Their rows say so (status
    `interrupted`, in the report only: the study is not changed). Read after the trials, so that a
    driver that dies in between still counts as gone; with no run directory (a study by URL) nothing
    tells, and RUNNING trials stay `running`."""
    running = frame["state"] == "RUNNING"
    if running.any() and run.driver_alive() is False:
        frame.loc[running, "status"] = "interrupted"
        frame.loc[running, "reason"] = STALE_REASON


def check_comparable(reports: Sequence[FrontReport]) -> None:
    """Fronts compare only on one pair of axes: the same objectives and, for latency, milliseconds
    from the same table (another machine's or resolution's table prices the same pattern otherwise)."""
    objectives = {tuple(o.name for o in r.objectives) for r in reports}
    if len(objectives) > 1:
        raise SolaError(f"these runs optimise different objectives ({'; '.join(', '.join(o) for o in objectives)}): "
                        "their fronts do not compare")
    tables = {r.run.config.get("latency_digest") for r in reports if "latency_ms" in next(iter(objectives))}
    if len(tables) > 1:
        names = "; ".join(str(r.run.config.get("latency")) for r in reports)
        raise SolaError(f"these runs' latencies come from different tables ({names}): their fronts do not compare")


def common_reference(reports: Sequence[FrontReport]) -> tuple[float, float]:
    """One reference point for comparing runs of the same objectives (`check_comparable`): each
    objective's worst reference (the lowest top-1 reference and the largest cost one)."""
    refs = [reference_point(r.run.study, r.frame) for r in reports]
    worst = [min if o.maximize else max for o in reports[0].objectives]
    return worst[0](r[0] for r in refs), worst[1](r[1] for r in refs)


def parse_ref(text: str | None, objectives: Sequence[str] = DEFAULT_OBJECTIVES) -> tuple[float, float] | None:
    """`--ref TOP1,GMACS` (e.g. 0,5.5) as a reference point: one value per objective."""
    if text is None:
        return None
    try:
        a, b = (ascii_float(x) for x in text.split(","))
    except ValueError:
        names = ",".join(o.key.upper() for o in get_objectives(objectives))
        raise SolaError(f"--ref {text!r}: expected {names}, e.g. 0,5.5") from None
    if not (math.isfinite(a) and math.isfinite(b)):
        raise SolaError(f"--ref {text!r}: expected finite numbers")
    for o, value in zip(get_objectives(objectives), (a, b), strict=True):
        if o.name == "val_top1" and not 0 <= value <= 1:  # 50 meant 50 %: a silent hypervolume of 0 otherwise
            raise SolaError(f"--ref {text!r}: top-1 {value:g} is outside 0 to 1; top-1 is a fraction, e.g. 0.5 "
                            "for 50 %")
    return a, b


def ref_warning(report: FrontReport) -> str | None:
    """Why a hypervolume is 0 although the front has points: none of them is better than the
    reference on both objectives (a --ref top-1 above the best, say), which a bare 0.0000 hides."""
    if report.front.empty or report.hypervolume > 0:
        return None
    a, b = report.objectives
    return (f"no point of the front is better than the reference {ref_text(report.ref, _names(report))} on both "
            f"{a.short} and {b.short}, so the hypervolume is 0; a {'lower' if a.maximize else 'higher'} {a.short} "
            f"or {'lower' if b.maximize else 'higher'} {b.short} reference measures the front")


def stale_line(report: FrontReport) -> str:
    """What the summary says of trials a driver that is gone left RUNNING, and what measures them."""
    n = report.stale
    them = "it" if len(n) == 1 else "them"
    where = shlex.quote(str(report.run.dir))
    return (f"trial{'s' if len(n) > 1 else ''} {', '.join(map(str, n))} {'was' if len(n) == 1 else 'were'} left "
            f"running when the run stopped (no driver is measuring {them}): sola-search resume {where} measures "
            f"{them} again")


def draw_pattern(text: Any) -> str:
    """A pattern drawn per stage, linear blocks as · and softmax as S: `·· ·S ··S··S SS`."""
    if not isinstance(text, str):
        return "?"
    return " ".join(s.upper().replace("L", LINEAR_MARK) for s in text.split("-"))


def _num(x: Any) -> Any:
    """A JSON-friendly scalar: None for NaN/NA, plain int/float otherwise."""
    if x is None or x is pd.NA or (isinstance(x, float) and math.isnan(x)):
        return None
    if hasattr(x, "item"):
        x = x.item()
    return x


def rows(report: FrontReport, all_trials: bool = False) -> list[dict[str, Any]]:
    """The report's rows, sorted by cost: the front, or with `all_trials` every trial (failed last)."""
    on_front = set(report.front["number"])
    data = report.frame if all_trials else report.front
    by, ascending = best_first(report.objectives, ["number"], cost_first=True)
    data = data.sort_values(by, ascending=ascending, na_position="last")
    out = []
    spread = report.seeded
    confirmed = bool((report.frame["confirm_seeds"] > 0).any())  # `run --confirm` re-measured some
    for r in data.itertuples(index=False):
        values = {}
        for o in report.objectives:
            values[o.name] = _num(getattr(r, o.name))
            if o in spread:
                values[o.se_name] = _num(getattr(r, o.se_name))
        if confirmed:
            values["confirm_seeds"] = _num(r.confirm_seeds)
        row = dict(trial=int(r.number), pattern=r.pattern if isinstance(r.pattern, str) else None, **values,
                   macs=_num(r.macs), params=_num(r.params), softmax_layers=_num(r.softmax_layers),
                   baseline=r.baseline if isinstance(r.baseline, str) else None, knee=int(r.number) == report.knee,
                   duplicate_of=_num(r.duplicate_of), estimator=r.estimator if isinstance(r.estimator, str) else None)
        if all_trials:
            row.update(on_front=int(r.number) in on_front, state=r.state, feasible=bool(r.feasible),
                       status=r.status if isinstance(r.status, str) else None,
                       reason=r.reason if isinstance(r.reason, str) else None)
        out.append(row)
    return out


ROW_FIELDS = ["trial", "pattern", *DEFAULT_OBJECTIVES, "macs", "params", "softmax_layers", "baseline", "knee",
              "duplicate_of", "estimator"]


def to_csv(rows_: list[dict[str, Any]], fields: list[str] | None = None) -> str:
    """CSV with a header (also when there are no rows); empty cells for missing values."""
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(rows_[0]) if rows_ else (fields or ROW_FIELDS), lineterminator="\n")
    w.writeheader()
    w.writerows({k: "" if v is None else v for k, v in r.items()} for r in rows_)
    return buf.getvalue()


def to_json(rows_: list[dict[str, Any]]) -> str:
    return json.dumps(rows_, indent=2, allow_nan=False)  # NaN is not JSON: a missing value is null


def ref_text(ref: tuple[float, float], objectives: Sequence[str] = DEFAULT_OBJECTIVES) -> str:
    a, b = get_objectives(objectives)
    return f"({a.ref_text.format(ref[0])}, {b.ref_text.format(ref[1])})"


def _names(report: FrontReport) -> list[str]:
    return [o.name for o in report.objectives]


def summary_lines(report: FrontReport) -> list[str]:
    """What the table's caption says: counts, knee, hypervolume and its reference point."""
    c, a = report.counts, report.run.study.user_attrs
    head = f"run {report.run.name}"
    for key, label in (("variant", "variant"), ("budget", "budget"), ("resolution", "px")):
        if key in a:
            head += f", {a[key]}px" if label == "px" else f", {label} {a[key]}"
    lines = [head,
             f"front: {c['front']} of {c['complete']} completed trials ({c['infeasible']} infeasible, "
             f"{c['failed']} failed, "
             + (f"{c['stale']} interrupted)" if c["stale"] else f"{c['running']} running)")
             + (f"; {c['pruned']} proposals outside the budget skipped" if c["pruned"] else "")]
    if report.stale:
        lines.append(stale_line(report))
    if (driver := report.run.driver()) is not None and driver.remote:
        lines.append(f"driver: {driver.unchecked}")
    for o in report.seeded:
        k = report.run.study.user_attrs.get("seeds")  # None: the run's one seed
        confirmed = int((report.frame["confirm_seeds"] > 0).sum())
        tied = f"trials whose mean ± {TIE_SE:g} se overlap are tied"
        if confirmed:
            lines += [f"{o.short}: the mean of a trial's seeds ± its standard error; {tied}",
                      f"seeds: {k or 1} a trial in the search, more for the {confirmed} trial(s) --confirm "
                      "measured again"]
        else:
            lines.append(f"{o.short}: the mean of {k if isinstance(k, int) and k > 1 else 'several'} seeds ± its "
                         f"standard error; {tied}")
    if (gap := one_seed_gap(report)) is not None:
        o = report.objectives[0]
        how = (f"sola-search resume {report.run.dir} --confirm 3 gives them more seeds"
               if report.run.dir is not None else "a run with --seeds 2 measures each pattern's spread")
        lines += [f"{o.short}: one seed each, no error bars; neighbours on the front differ by "
                  f"{gap * o.scale:.{o.digits}f}{' points' if o.name == 'val_top1' else ''} at the least,",
                  f"which the seed alone may move: {how}"]
    if "supernet" in set(report.frame["estimator"].dropna()):
        lines.append(f"{report.objectives[0].short}: scores with the run's weight-sharing supernet (estimator "
                     "supernet), not stand-alone proxy trainings")
    if report.knee is not None:
        best = "most accurate" if report.objectives[0].name == "val_top1" else f"best {report.objectives[0].short}"
        lines.append(f"knee: trial {report.knee} (farthest above the chord from cheapest to {best}, "
                     "normalized)" + tie_text(report.ties(report.knee), report))
    a, b = report.objectives
    lines.append(f"hypervolume {report.hypervolume:.4f} ({a.short} × {b.short}) at reference "
                 f"{ref_text(report.ref, _names(report))}")
    return lines


def one_seed_gap(report: FrontReport) -> float | None:
    """The smallest difference in the first objective between neighbours on the front, for a run whose
    proxy value is one seed's (None: it has seeds, the value is not the proxy's, or the front has one
    member). A seed alone can move a proxy's top-1 more than placement does (docs/performance.md)."""
    o = report.objectives[0]
    if not o.seeded or report.seeded or len(report.front) < 2:
        return None
    values = report.front.sort_values(report.objectives[1].name)[o.name].to_numpy()
    return float(np.abs(np.diff(values)).min())


def tie_text(tied: list[int], report: FrontReport) -> str:
    """`; statistically tied on top-1 with trials 3, 7 …` (nothing when no trial is tied)."""
    return f"; {tie_phrase(tied, report.seeded)}" if tied else ""


def _console() -> Any:
    """A rich Console on stdout that hands a reader's going away (`| head`) to the CLI as the
    BrokenPipeError it is; rich's own default ends the process with status 1, as if it had failed."""
    from rich.console import Console

    class StdoutConsole(Console):
        def on_broken_pipe(self) -> None:
            self.quiet = True
            raise BrokenPipeError(errno.EPIPE, os.strerror(errno.EPIPE))

    return StdoutConsole()


def render_table(report: FrontReport, all_trials: bool = False, console: Any = None) -> None:
    """Print the front (or every trial) as a rich table sorted by cost, with the summary below."""
    from rich.measure import Measurement
    from rich.table import Table

    console = console or _console()
    table = Table(title=f"Pareto front of {report.run.name}" if not all_trials else f"trials of {report.run.name}",
                  title_justify="left")
    # Numbers and patterns keep their width; on a narrow terminal the notes (a failure's reason can be
    # long) wrap instead.
    a, b = report.objectives
    spread = report.seeded
    heads = [f"{o.column} ± se" if o in spread else o.column for o in (a, b)]
    for name, just in (("trial", "right"), (heads[0], "right"), (heads[1], "right"), ("params M", "right"),
                       ("softmax", "right"), ("pattern", "left")):
        table.add_column(name, justify=just, no_wrap=True)
    table.add_column("", justify="left", overflow="fold")
    on_front, stale = set(report.front["number"]), set(report.stale)
    for r in rows(report, all_trials):
        notes = []
        if all_trials and r["trial"] in on_front:
            notes.append("front")
        if r["knee"]:
            notes.append("◆ knee")
        if r["baseline"]:
            notes.append(f"baseline {r['baseline']}")
        if r["duplicate_of"] is not None:
            notes.append(f"= trial {r['duplicate_of']}")
        if all_trials and r["trial"] in stale:
            notes.append(f"interrupted: {r['reason']}")
        elif all_trials and r["state"] != "COMPLETE":
            notes.append(r["state"].lower() + (f": {r['reason']}" if r["reason"] else ""))
        elif all_trials and not r["feasible"]:
            notes.append("infeasible")
        table.add_row(str(r["trial"]), a.cell(r[a.name], r.get(a.se_name)), b.cell(r[b.name], r.get(b.se_name)),
                      "—" if r["params"] is None else f"{r['params'] / 1e6:.2f}",
                      "—" if r["softmax_layers"] is None else str(r["softmax_layers"]),
                      draw_pattern(r["pattern"]), ", ".join(notes))
    if not console.is_terminal:  # a file or a pipe has no width to keep to: one line per trial, for grep
        console.width = max(console.width, Measurement.get(console, console.options.update_width(10**5),
                                                           table).maximum)
    console.print(table)
    for line in summary_lines(report):  # a pipe gets each line whole (wrapped at the table's width, grep missed it)
        console.print(line, highlight=False, markup=False, soft_wrap=not console.is_terminal)


def write_reports(report: FrontReport) -> list[Path]:
    """Write reports/pareto.csv and reports/pareto.json (every trial, with its front/knee marks) into
    the run directory. Returns the paths written (none when the run has no directory). A directory
    that cannot be written (a read-only copy of a run) gets no reports and one warning: the front is
    still shown."""
    if report.run.reports_dir is None:
        return []
    d = report.run.reports_dir
    every = rows(report, all_trials=True)
    out = []
    try:
        d.mkdir(parents=True, exist_ok=True)
        for name, text in (("pareto.csv", to_csv(every)),
                           ("pareto.json", json.dumps(dict(summary=summary_lines(report), ref=list(report.ref),
                                                           hypervolume=report.hypervolume, knee=report.knee,
                                                           trials=every), indent=2, allow_nan=False))):
            tmp = d / f".{name}.tmp"
            tmp.write_text(text + ("" if text.endswith("\n") else "\n"), encoding="utf-8")
            tmp.replace(d / name)
            out.append(d / name)
    except OSError as e:
        print(f"sola-search: warning: no reports written to {d}: {e.strerror or e} (--no-reports skips them)",
              file=sys.stderr)
    return out


# --- plots -------------------------------------------------------------------------------------
# A plot is a list of layers, drawn by matplotlib (`_plot_static`) or plotly (`_plot_html`): what each
# layer shows is decided once, here; each backend only says how a layer of its kind looks.
@dataclass
class Layer:
    kind: str  # 'completed', 'infeasible', 'failed' (a rug on the x axis), 'front', 'knee', 'baseline'
    label: str
    x: list[float]  # the second objective (cost)
    y: list[float]  # the first objective (top-1), as a table shows it (× its scale); none for a rug
    hover: list[str]
    err: list[float] | None  # a run with seeds: each point's error bar, ± TIE_SE se (× the scale); else None
    run: int  # which run: its colour
    single: bool  # one run drawn: failed ticks in red, infeasible trials and baselines shown
    index: int = 0  # a baseline's marker


def _groups(report: FrontReport) -> dict[str, pd.DataFrame]:
    """The trials a plot draws. Failed ones (nan, oom, error) have a cost but no top-1: they are drawn
    as ticks on the cost axis, never as points at an invented top-1. Interrupted ones (Ctrl-C, a
    killed driver) did not fail and are re-queued on resume: they are not drawn."""
    f = report.frame
    cost = report.objectives[1].name
    done = f["state"] == "COMPLETE"
    failed = (f["state"] == "FAIL") & (f["status"] != "interrupted") & f[cost].notna()
    return dict(feasible=f[done & f["feasible"]], infeasible=f[done & ~f["feasible"]], failed=f[failed])


def failed_label(objectives: Sequence[Objective]) -> str:
    return f"failed, no {objectives[0].short} (ticks at their {objectives[1].short})"


FAILED_LABEL = failed_label(get_objectives())


def _hover(df: pd.DataFrame, name: str, report: FrontReport) -> list[str]:
    a, b = report.objectives
    out = []
    for r in df.itertuples():
        text = (f"{name} trial {r.number}<br>{r.pattern}<br>{a.show(getattr(r, a.name), se=report.se(a, r))}, "
                f"{b.show(getattr(r, b.name), se=report.se(b, r))}")
        if isinstance(r.baseline, str):
            text += f"<br>baseline {r.baseline}"
        if isinstance(r.reason, str):
            text += f"<br>{r.state.lower()}: {r.reason}"
        out.append(text)
    return out


def _layers(reports: Sequence[FrontReport]) -> list[Layer]:
    """What a plot of these runs draws, run after run."""
    return [layer for i, r in enumerate(reports) for layer in _run_layers(r, i, len(reports) == 1)]


def _run_layers(r: FrontReport, i: int, single: bool) -> list[Layer]:
    """One run's layers: its completed trials, (one run) its infeasible ones, failed ones as a rug,
    the front as a step line, the knee, and (one run) each completed baseline with its own marker and
    legend entry, not a label by its point: baselines crowd near all-linear, where labels piled up."""
    a, b = r.objectives
    prefix = "" if single else f"{r.run.name} "
    g = _groups(r)

    def layer(kind: str, label: str, df: pd.DataFrame, index: int = 0) -> Layer:
        err = (TIE_SE * a.scale * df[a.se_name]).fillna(0.0).tolist() if a in r.seeded else None
        return Layer(kind, label, df[b.name].tolist(), (a.scale * df[a.name]).tolist(),
                     _hover(df, r.run.name, r), err, i, single, index)

    out = [layer("completed", f"{prefix}completed", g["feasible"])]
    if single and len(g["infeasible"]):
        out.append(layer("infeasible", "infeasible", g["infeasible"]))
    if len(g["failed"]):
        out.append(layer("failed", prefix + failed_label(r.objectives), g["failed"]))
    if len(r.front):
        out.append(layer("front", f"{prefix}front (HV {r.hypervolume:.3f})", r.front.sort_values([b.name, a.name])))
    if r.knee is not None:
        out.append(layer("knee", f"{prefix}knee (trial {r.knee})", r.frame[r.frame["number"] == r.knee]))
    if single:
        f = g["feasible"]
        for j, base in enumerate(f[f["baseline"].notna()].sort_values([b.name, "number"]).itertuples()):
            out.append(layer("baseline", f"baseline {base.baseline}", r.frame[r.frame["number"] == base.number], j))
    return out


BASELINE_MARKERS = ("D", "s", "^", "v", "P", "X", "h", "<", ">", "p")
BASELINE_SYMBOLS = ("diamond-open", "square-open", "triangle-up-open", "triangle-down-open", "cross-open",
                    "x-open", "hexagon-open", "triangle-left-open", "triangle-right-open", "pentagon-open")
STATIC_PLOTS = (".png", ".svg", ".pdf")  # matplotlib writes these with no extra dependency


def plot(reports: Sequence[FrontReport], path: str | Path) -> Path:
    """Plot one run (every trial, completed / infeasible / failed told apart, the front as a step line,
    baselines by marker and legend, the knee marked) or several (fronts overlaid). `.png`, and `.svg`
    or `.pdf` for a paper's vector figures, through matplotlib; `.html` through plotly (self-contained,
    plotly.js inlined)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (*STATIC_PLOTS, ".html", ".htm"):
        raise SolaError(f"--plot {path}: expected a file name ending in .png, .svg, .pdf or .html")
    try:
        with output_parents(path, "--plot"):  # missing folders made, as export and latency --out make theirs
            (_plot_static if suffix in STATIC_PLOTS else _plot_html)(list(reports), path)
    except OSError as e:  # a directory of that name, no permission, a full disk
        raise SolaError(f"--plot {path}: cannot write it ({e.strerror or e})") from None
    return path


def _title(reports: Sequence[FrontReport]) -> str:
    names = _names(reports[0])
    if len(reports) == 1:
        r = reports[0]
        a = r.run.study.user_attrs
        extra = ", ".join(str(a[k]) for k in ("variant", "budget") if k in a)
        return (f"{r.run.name}" + (f" ({extra})" if extra else "")
                + f" — HV {r.hypervolume:.4f} at {ref_text(r.ref, names)}")
    return "fronts at reference " + ref_text(reports[0].ref, names)


def _axis(reports: Sequence[FrontReport]) -> str:
    """The first objective's axis label; with seeds, what its error bars are."""
    a = reports[0].objectives[0]
    return f"{a.axis}, mean ± {TIE_SE:g} se over seeds" if any(a in r.seeded for r in reports) else a.axis


def _plot_static(reports: list[FrontReport], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=PLOT_SIZE, dpi=PLOT_DPI, layout="constrained")
    try:
        for layer in _layers(reports):
            color, single = f"C{layer.run}", layer.single
            if layer.kind == "completed":
                ax.scatter(layer.x, layer.y, s=18, color=color, alpha=0.45 if single else 0.25, label=layer.label)
                if layer.err is not None and layer.x:
                    ax.errorbar(layer.x, layer.y, yerr=layer.err, fmt="none", ecolor=color, elinewidth=0.8,
                                capsize=2, alpha=0.6 if single else 0.35)
            elif layer.kind == "infeasible":
                ax.scatter(layer.x, layer.y, s=22, facecolors="none", edgecolors="grey", label=layer.label)
            elif layer.kind == "failed":  # a rug on the x axis: x in data, y in axes coordinates
                ax.plot(layer.x, [0.015] * len(layer.x), linestyle="none", marker="|", markersize=12,
                        markeredgewidth=1.5, color="red" if single else color, clip_on=False,
                        transform=ax.get_xaxis_transform(), label=layer.label)
            elif layer.kind == "front":
                ax.step(layer.x, layer.y, where="post", color=color, lw=1.8, label=layer.label)
                ax.scatter(layer.x, layer.y, s=34, color=color, zorder=3)
            elif layer.kind == "knee":
                ax.scatter(layer.x, layer.y, marker="*", s=220, color=color, edgecolors="black", zorder=4,
                           label=layer.label)
            elif layer.kind == "baseline":
                ax.scatter(layer.x, layer.y, marker=BASELINE_MARKERS[layer.index % len(BASELINE_MARKERS)], s=64,
                           facecolors="none", edgecolors="black", linewidths=1, zorder=5, label=layer.label)
        a, b = reports[0].objectives
        ax.set_xlabel(b.axis)
        ax.set_ylabel(_axis(reports))
        ax.set_title(_title(reports), fontsize=9)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1), borderaxespad=0)  # beside the points
        fig.savefig(path, dpi=PLOT_DPI)
    finally:
        plt.close(fig)


def _plot_html(reports: list[FrontReport], path: Path) -> None:
    import plotly.graph_objects as go

    palette = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"]
    fig = go.Figure()
    for layer in _layers(reports):
        color, single = palette[layer.run % len(palette)], layer.single
        common = dict(name=layer.label, text=layer.hover, hoverinfo="text")
        if layer.kind in ("completed", "infeasible") and layer.x:
            marker = (dict(color=color, opacity=0.5 if single else 0.3, size=7) if layer.kind == "completed"
                      else dict(color="grey", symbol="circle-open", size=8))
            bars = (dict(error_y=dict(type="data", array=layer.err, visible=True, thickness=1, width=3, color=color))
                    if layer.kind == "completed" and layer.err is not None else {})
            fig.add_trace(go.Scatter(x=layer.x, y=layer.y, mode="markers", marker=marker, **bars, **common))
        elif layer.kind == "failed":  # a rug on the x axis (y2 spans the plot, 0 to 1): no invented top-1
            fig.add_trace(go.Scatter(x=layer.x, y=[0.015] * len(layer.x), yaxis="y2", mode="markers", **common,
                                     marker=dict(color="red" if single else color, symbol="line-ns-open", size=14,
                                                 line_width=2)))
        elif layer.kind == "front":
            fig.add_trace(go.Scatter(x=layer.x, y=layer.y, mode="lines+markers", line_shape="hv",
                                     line=dict(color=color, width=2), **common))
        elif layer.kind == "knee":
            fig.add_trace(go.Scatter(x=layer.x, y=layer.y, mode="markers", **common,
                                     marker=dict(symbol="star", size=16, color=color, line=dict(width=1))))
        elif layer.kind == "baseline":
            fig.add_trace(go.Scatter(x=layer.x, y=layer.y, mode="markers", **common,
                                     marker=dict(symbol=BASELINE_SYMBOLS[layer.index % len(BASELINE_SYMBOLS)],
                                                 size=11, color="black", line=dict(width=1))))
    a, b = reports[0].objectives
    fig.update_layout(title=_title(reports), xaxis_title=b.axis, yaxis_title=_axis(reports),
                      yaxis2=dict(overlaying="y", range=[0, 1], visible=False, fixedrange=True),
                      template="plotly_white")
    fig.write_html(path, include_plotlyjs=True, full_html=True)


# --- several runs ------------------------------------------------------------------------------
def _best(report: FrontReport) -> dict[str, Any]:
    """The front's best trial by the first objective's mean (ties to the better second): best_<key>
    of each; in a run with seeds also best_<key>_se and the front's trials statistically tied with it
    (`best_ties`)."""
    by, ascending = best_first(report.objectives)
    best = report.front.sort_values(by, ascending=ascending).head(1)
    out = {}
    for o in report.objectives:
        out[f"best_{o.key}"] = _num(best[o.name].iloc[0]) if len(best) else None
        if o in report.seeded:
            out[f"best_{o.key}_se"] = _num(best[o.se_name].iloc[0]) if len(best) else None
    out["best_trial"] = int(best["number"].iloc[0]) if len(best) else None
    if report.seeded:
        out["best_ties"] = report.ties(out["best_trial"])
    return out


def compare_rows(reports: Sequence[FrontReport]) -> list[dict[str, Any]]:
    """One row per run: its front size, best top-1, knee, and hypervolume at the common reference."""
    out = []
    for r in reports:
        a, c, best = r.run.study.user_attrs, r.counts, _best(r)
        best.pop("best_trial")
        best.pop("best_ties", None)
        out.append(dict(run=r.run.name, variant=a.get("variant"), budget=a.get("budget"),
                        resolution=a.get("resolution"), complete=c["complete"], failed=c["failed"], front=c["front"],
                        **best, knee=r.knee, hypervolume=r.hypervolume,
                        **{f"ref_{o.key}": v for o, v in zip(r.objectives, r.ref, strict=True)}))
    keys = dict.fromkeys(k for row in out for k in row)  # a run without seeds: None where another has an se
    return [{k: row.get(k) for k in keys} for row in out]


# Proxy settings that change how a run executes, not what its top-1 measures.
_EXECUTION = {"seed", "device", "amp", "channels_last", "cuda_graphs", "compile",
              "eval_every", "eval_batch_size", "log_points", "test"}
_FIRST = ("variant", "data", "estimator")  # what a user most often compares by mistake: named first


def proxy_differences(reports: Sequence[FrontReport]) -> list[str]:
    """What the runs' top-1 values were measured differently in, as 'steps (100, 20)': the variant
    (another proxy model), the data, the estimator (trained, or scored by a supernet) and the proxy
    settings. Their top-1 values are then not comparable (their fronts and GMACs still are)."""
    from sola_search.proxies.config import is_retired

    configs = [{**{k: v for k, v in (r.run.study.user_attrs.get("proxy") or {}).items() if not is_retired(k, v)},
                "variant": r.run.study.user_attrs.get("variant"),
                "estimator": r.run.config.get("estimator") or "train"} for r in reports]
    measured = {k for c in configs for k in c} - _EXECUTION
    keys = [k for k in _FIRST if k in measured] + sorted(measured - set(_FIRST))
    return [f"{k} ({', '.join(str(c.get(k)) for c in configs)})" for k in keys
            if len({json.dumps(c.get(k), sort_keys=True) for c in configs}) > 1]


def run_summary(run: Run) -> dict[str, Any]:
    """One line about a run for `sola-search runs`: state, trials, front size, best within its budget."""
    rep = front_report(run)
    c, a = rep.counts, run.study.user_attrs
    target = run.config.get("trials") if isinstance(run.config.get("trials"), int) else None
    return dict(run=run.name, state=run_state(run, c["running"] + c["stale"]), variant=a.get("variant"),
                budget=a.get("budget"), complete=c["complete"], counted=c["counted"], failed=c["failed"],
                running=c["running"], left_running=c["stale"], target=target,
                front=c["front"], objectives=[o.name for o in rep.objectives], **_best(rep))

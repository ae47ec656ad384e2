"""Reports on what a run found: the front as a table, CSV or JSON, plots (PNG and self-contained
HTML), the comparison of several runs, and the one-line summary of each run in a runs directory."""

from __future__ import annotations

import csv
import errno
import io
import json
import math
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from sola_search.errors import SolaError
from sola_search.results.front import front_hypervolume, knee, pareto_front, reference_point, trials_frame
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
    def counts(self) -> dict[str, int]:
        s = self.frame["state"]
        f = self.frame
        interrupted = (s == "FAIL") & (f["status"] == "interrupted")
        # What a run's --trials counts (as the search does): measured patterns and real failures.
        counted = ((s == "COMPLETE") & f["duplicate_of"].isna() & f["feasible"]) | (
            (s == "FAIL") & f["status"].isin(["nan", "oom", "error"]))
        return dict(trials=len(self.frame), complete=int((s == "COMPLETE").sum()),
                    failed=int(((s == "FAIL") & ~interrupted).sum()), interrupted=int(interrupted.sum()),
                    running=int((s == "RUNNING").sum()), pruned=int((s == "PRUNED").sum()),
                    infeasible=int(((s == "COMPLETE") & ~f["feasible"]).sum()), counted=int(counted.sum()),
                    front=len(self.front))


def front_report(run: Run, ref: tuple[float, float] | None = None) -> FrontReport:
    """Compute the front, knee and hypervolume of a run (at `ref`, default `reference_point`)."""
    frame = trials_frame(run.study)
    front = pareto_front(frame)
    k = knee(front)
    ref = ref if ref is not None else reference_point(run.study, frame)
    return FrontReport(run, frame, front, None if k is None else int(k["number"]), ref, front_hypervolume(front, ref))


def common_reference(reports: Sequence[FrontReport]) -> tuple[float, float]:
    """One reference point for comparing runs: the lowest top-1 reference and the largest cost one."""
    refs = [reference_point(r.run.study, r.frame) for r in reports]
    return min(r[0] for r in refs), max(r[1] for r in refs)


def parse_ref(text: str | None) -> tuple[float, float] | None:
    """`--ref TOP1,GMACS` (e.g. 0,5.5) as a reference point."""
    if text is None:
        return None
    try:
        a, b = (float(x) for x in text.split(","))
    except ValueError:
        raise SolaError(f"--ref {text!r}: expected TOP1,GMACS, e.g. 0,5.5") from None
    if not (math.isfinite(a) and math.isfinite(b)):
        raise SolaError(f"--ref {text!r}: expected finite numbers")
    return a, b


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
    data = data.sort_values(["gmacs", "val_top1", "number"], ascending=[True, False, True], na_position="last")
    out = []
    for r in data.itertuples(index=False):
        row = dict(trial=int(r.number), pattern=r.pattern if isinstance(r.pattern, str) else None,
                   val_top1=_num(r.val_top1), gmacs=_num(r.gmacs),
                   macs=_num(r.macs), params=_num(r.params), softmax_layers=_num(r.softmax_layers),
                   baseline=r.baseline if isinstance(r.baseline, str) else None, knee=int(r.number) == report.knee,
                   duplicate_of=_num(r.duplicate_of))
        if all_trials:
            row.update(on_front=int(r.number) in on_front, state=r.state, feasible=bool(r.feasible),
                       status=r.status if isinstance(r.status, str) else None,
                       reason=r.reason if isinstance(r.reason, str) else None)
        out.append(row)
    return out


ROW_FIELDS = ["trial", "pattern", "val_top1", "gmacs", "macs", "params", "softmax_layers", "baseline", "knee",
              "duplicate_of"]


def to_csv(rows_: list[dict[str, Any]], fields: list[str] | None = None) -> str:
    """CSV with a header (also when there are no rows); empty cells for missing values."""
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(rows_[0]) if rows_ else (fields or ROW_FIELDS), lineterminator="\n")
    w.writeheader()
    w.writerows({k: "" if v is None else v for k, v in r.items()} for r in rows_)
    return buf.getvalue()


def to_json(rows_: list[dict[str, Any]]) -> str:
    return json.dumps(rows_, indent=2, allow_nan=False)  # NaN is not JSON: a missing value is null


def ref_text(ref: tuple[float, float]) -> str:
    return f"(top-1 {ref[0]:g}, {ref[1]:.3f} GMACs)"


def summary_lines(report: FrontReport) -> list[str]:
    """What the table's caption says: counts, knee, hypervolume and its reference point."""
    c, a = report.counts, report.run.study.user_attrs
    head = f"run {report.run.name}"
    for key, label in (("variant", "variant"), ("budget", "budget"), ("resolution", "px")):
        if key in a:
            head += f", {a[key]}px" if label == "px" else f", {label} {a[key]}"
    lines = [head,
             f"front: {c['front']} of {c['complete']} completed trials ({c['infeasible']} infeasible, "
             f"{c['failed']} failed, {c['running']} running)"
             + (f"; {c['pruned']} proposals outside the budget skipped" if c["pruned"] else "")]
    if report.knee is not None:
        lines.append(f"knee: trial {report.knee} (farthest above the chord from cheapest to most accurate, "
                     "normalized)")
    lines.append(f"hypervolume {report.hypervolume:.4f} (top-1 × GMACs) at reference {ref_text(report.ref)}")
    return lines


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
    for name, just in (("trial", "right"), ("top-1 %", "right"), ("GMACs", "right"), ("params M", "right"),
                       ("softmax", "right"), ("pattern", "left")):
        table.add_column(name, justify=just, no_wrap=True)
    table.add_column("", justify="left", overflow="fold")
    on_front = set(report.front["number"])
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
        if all_trials and r["state"] != "COMPLETE":
            notes.append(r["state"].lower() + (f": {r['reason']}" if r["reason"] else ""))
        elif all_trials and not r["feasible"]:
            notes.append("infeasible")
        table.add_row(str(r["trial"]), "—" if r["val_top1"] is None else f"{100 * r['val_top1']:.2f}",
                      "—" if r["gmacs"] is None else f"{r['gmacs']:.3f}",
                      "—" if r["params"] is None else f"{r['params'] / 1e6:.2f}",
                      "—" if r["softmax_layers"] is None else str(r["softmax_layers"]),
                      draw_pattern(r["pattern"]), ", ".join(notes))
    if not console.is_terminal:  # a file or a pipe has no width to keep to: one line per trial, for grep
        console.width = max(console.width, Measurement.get(console, console.options.update_width(10**5),
                                                           table).maximum)
    console.print(table)
    for line in summary_lines(report):
        console.print(line, highlight=False, markup=False)


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
def _groups(report: FrontReport) -> dict[str, pd.DataFrame]:
    """The trials a plot draws. Failed ones (nan, oom, error) have a cost but no top-1: they are drawn
    as ticks on the GMACs axis, never as points at an invented top-1. Interrupted ones (Ctrl-C, a
    killed driver) did not fail and are re-queued on resume: they are not drawn."""
    f = report.frame
    done = f["state"] == "COMPLETE"
    failed = (f["state"] == "FAIL") & (f["status"] != "interrupted") & f["gmacs"].notna()
    return dict(feasible=f[done & f["feasible"]], infeasible=f[done & ~f["feasible"]], failed=f[failed])


FAILED_LABEL = "failed, no top-1 (ticks at their GMACs)"


def _step(front: pd.DataFrame) -> tuple[list[float], list[float]]:
    f = front.sort_values(["gmacs", "val_top1"])
    return f["gmacs"].tolist(), f["val_top1"].tolist()


def _baselines(groups: dict[str, pd.DataFrame]) -> list:
    """The completed baselines, by cost. Each gets its own marker and a legend entry, not a label by
    its point: baselines crowd near all-linear, where labels piled up unreadably."""
    f = groups["feasible"]
    return list(f[f["baseline"].notna()].sort_values(["gmacs", "number"]).itertuples())


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
    if not path.parent.is_dir():
        raise SolaError(f"--plot {path}: directory {path.parent} does not exist")
    try:
        (_plot_static if suffix in STATIC_PLOTS else _plot_html)(list(reports), path)
    except OSError as e:  # a directory of that name, no permission, a full disk
        raise SolaError(f"--plot {path}: cannot write it ({e.strerror or e})") from None
    return path


def _title(reports: Sequence[FrontReport]) -> str:
    if len(reports) == 1:
        r = reports[0]
        a = r.run.study.user_attrs
        extra = ", ".join(str(a[k]) for k in ("variant", "budget") if k in a)
        return f"{r.run.name}" + (f" ({extra})" if extra else "") + f" — HV {r.hypervolume:.4f} at {ref_text(r.ref)}"
    return "fronts at reference " + ref_text(reports[0].ref)


def _plot_static(reports: list[FrontReport], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    single = len(reports) == 1
    fig, ax = plt.subplots(figsize=PLOT_SIZE, dpi=PLOT_DPI, layout="constrained")
    try:
        for i, r in enumerate(reports):
            color = f"C{i}"
            g = _groups(r)
            label = "" if single else f"{r.run.name} "
            ax.scatter(g["feasible"]["gmacs"], 100 * g["feasible"]["val_top1"], s=18, color=color,
                       alpha=0.45 if single else 0.25, label=f"{label}completed")
            if single and len(g["infeasible"]):
                ax.scatter(g["infeasible"]["gmacs"], 100 * g["infeasible"]["val_top1"], s=22, facecolors="none",
                           edgecolors="grey", label="infeasible")
            if len(g["failed"]):  # a rug on the x axis: x in data, y in axes coordinates
                ax.plot(g["failed"]["gmacs"], [0.015] * len(g["failed"]), linestyle="none", marker="|",
                        markersize=12, markeredgewidth=1.5, color="red" if single else color, clip_on=False,
                        transform=ax.get_xaxis_transform(), label=f"{label}{FAILED_LABEL}")
            if len(r.front):
                x, y = _step(r.front)
                ax.step(x, [100 * v for v in y], where="post", color=color, lw=1.8,
                        label=f"{label}front (HV {r.hypervolume:.3f})")
                ax.scatter(x, [100 * v for v in y], s=34, color=color, zorder=3)
            if r.knee is not None:
                k = r.frame[r.frame["number"] == r.knee].iloc[0]
                ax.scatter([k["gmacs"]], [100 * k["val_top1"]], marker="*", s=220, color=color, edgecolors="black",
                           zorder=4, label=f"{label}knee (trial {r.knee})")
            for j, b in enumerate(_baselines(g) if single else []):
                ax.scatter([b.gmacs], [100 * b.val_top1], marker=BASELINE_MARKERS[j % len(BASELINE_MARKERS)], s=64,
                           facecolors="none", edgecolors="black", linewidths=1, zorder=5,
                           label=f"baseline {b.baseline}")
        ax.set_xlabel("GMACs (full model)")
        ax.set_ylabel("proxy val top-1 (%)")
        ax.set_title(_title(reports), fontsize=9)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1), borderaxespad=0)  # beside the points
        fig.savefig(path, dpi=PLOT_DPI)
    finally:
        plt.close(fig)


def _hover(df: pd.DataFrame, name: str) -> list[str]:
    out = []
    for r in df.itertuples():
        top = "—" if r.val_top1 != r.val_top1 else f"{100 * r.val_top1:.2f}%"
        text = f"{name} trial {r.number}<br>{r.pattern}<br>top-1 {top}, {r.gmacs:.3f} GMACs"
        if isinstance(r.baseline, str):
            text += f"<br>baseline {r.baseline}"
        if isinstance(r.reason, str):
            text += f"<br>{r.state.lower()}: {r.reason}"
        out.append(text)
    return out


def _plot_html(reports: list[FrontReport], path: Path) -> None:
    import plotly.graph_objects as go

    single = len(reports) == 1
    palette = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"]
    fig = go.Figure()
    for i, r in enumerate(reports):
        color, name = palette[i % len(palette)], r.run.name
        prefix = "" if single else f"{name} "
        g = _groups(r)
        traces = [("completed", g["feasible"], dict(color=color, opacity=0.5 if single else 0.3, size=7))]
        if single:
            traces.append(("infeasible", g["infeasible"], dict(color="grey", symbol="circle-open", size=8)))
        for label, df, marker in traces:
            if len(df):
                fig.add_trace(go.Scatter(x=df["gmacs"].tolist(), y=(100 * df["val_top1"]).tolist(), mode="markers",
                                         name=prefix + label, marker=marker, text=_hover(df, name), hoverinfo="text"))
        if len(g["failed"]):  # a rug on the x axis (y2 spans the plot, 0 to 1): no invented top-1
            fig.add_trace(go.Scatter(x=g["failed"]["gmacs"].tolist(), y=[0.015] * len(g["failed"]), yaxis="y2",
                                     mode="markers", name=prefix + FAILED_LABEL, text=_hover(g["failed"], name),
                                     hoverinfo="text", marker=dict(color="red" if single else color,
                                                                   symbol="line-ns-open", size=14, line_width=2)))
        if len(r.front):
            x, y = _step(r.front)
            fig.add_trace(go.Scatter(x=x, y=[100 * v for v in y], mode="lines+markers", line_shape="hv",
                                     line=dict(color=color, width=2), name=f"{prefix}front (HV {r.hypervolume:.3f})",
                                     text=_hover(r.front.sort_values(["gmacs", "val_top1"]), name), hoverinfo="text"))
        if r.knee is not None:
            k = r.frame[r.frame["number"] == r.knee]
            fig.add_trace(go.Scatter(x=k["gmacs"].tolist(), y=(100 * k["val_top1"]).tolist(), mode="markers",
                                     name=f"{prefix}knee (trial {r.knee})", text=_hover(k, name), hoverinfo="text",
                                     marker=dict(symbol="star", size=16, color=color, line=dict(width=1))))
        for j, b in enumerate(_baselines(g) if single else []):
            fig.add_trace(go.Scatter(x=[b.gmacs], y=[100 * b.val_top1], mode="markers", name=f"baseline {b.baseline}",
                                     text=_hover(r.frame[r.frame["number"] == b.number], name), hoverinfo="text",
                                     marker=dict(symbol=BASELINE_SYMBOLS[j % len(BASELINE_SYMBOLS)], size=11,
                                                 color="black", line=dict(width=1))))
    fig.update_layout(title=_title(reports), xaxis_title="GMACs (full model)", yaxis_title="proxy val top-1 (%)",
                      yaxis2=dict(overlaying="y", range=[0, 1], visible=False, fixedrange=True),
                      template="plotly_white")
    fig.write_html(path, include_plotlyjs=True, full_html=True)


# --- several runs ------------------------------------------------------------------------------
def compare_rows(reports: Sequence[FrontReport]) -> list[dict[str, Any]]:
    """One row per run: its front size, best top-1, knee, and hypervolume at the common reference."""
    out = []
    for r in reports:
        a, c = r.run.study.user_attrs, r.counts
        best = r.front.sort_values(["val_top1", "gmacs"], ascending=[False, True]).head(1)
        out.append(dict(run=r.run.name, variant=a.get("variant"), budget=a.get("budget"),
                        resolution=a.get("resolution"), complete=c["complete"], failed=c["failed"], front=c["front"],
                        best_top1=_num(best["val_top1"].iloc[0]) if len(best) else None,
                        best_gmacs=_num(best["gmacs"].iloc[0]) if len(best) else None, knee=r.knee,
                        hypervolume=r.hypervolume, ref_top1=r.ref[0], ref_gmacs=r.ref[1]))
    return out


# Proxy settings that change how a run executes, not what its top-1 measures.
_EXECUTION = {"seed", "device", "amp", "channels_last", "cuda_graphs", "build_on_device", "compile",
              "eval_every", "eval_batch_size", "log_points", "test"}
_FIRST = ("variant", "data")  # what a user most often compares by mistake: named first


def proxy_differences(reports: Sequence[FrontReport]) -> list[str]:
    """What the runs' top-1 values were measured differently in, as 'steps (100, 20)': the variant
    (another proxy model), the data and the proxy settings. Their top-1
    values are then not comparable (their fronts and GMACs still are)."""
    configs = [{**(r.run.study.user_attrs.get("proxy") or {}), "variant": r.run.study.user_attrs.get("variant")}
               for r in reports]
    measured = {k for c in configs for k in c} - _EXECUTION
    keys = [k for k in _FIRST if k in measured] + sorted(measured - set(_FIRST))
    return [f"{k} ({', '.join(str(c.get(k)) for c in configs)})" for k in keys
            if len({json.dumps(c.get(k), sort_keys=True) for c in configs}) > 1]


def run_summary(run: Run) -> dict[str, Any]:
    """One line about a run for `sola-search runs`: state, trials, front size, best within its budget."""
    rep = front_report(run)
    c, a = rep.counts, run.study.user_attrs
    best = rep.front.sort_values(["val_top1", "gmacs"], ascending=[False, True]).head(1)
    target = run.config.get("trials") if isinstance(run.config.get("trials"), int) else None
    return dict(run=run.name, state=run_state(run, c["running"]), variant=a.get("variant"), budget=a.get("budget"),
                complete=c["complete"], counted=c["counted"], failed=c["failed"], running=c["running"], target=target,
                front=c["front"],
                best_top1=_num(best["val_top1"].iloc[0]) if len(best) else None,
                best_gmacs=_num(best["gmacs"].iloc[0]) if len(best) else None,
                best_trial=int(best["number"].iloc[0]) if len(best) else None)

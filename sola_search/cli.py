"""The `sola-search` command: argument parsing and printing only; each command calls into one package.

Bad input (a `SolaError`, or an argparse error) is one line on stderr and exit status 2; a state of
the machine the user must fix (`StateError`: a read-only or full disk) one line and exit status 1."""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import sys
from pathlib import Path

from sola_search.errors import SolaError, StateError, ascii_float, ascii_int
from sola_search.space.pattern import LINEAR_MARK, SOFTMAX_MARK


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:
        """One line, exit 2 (argparse prints usage too), worded as the commands' own errors are:
        "sola-search: error: --seeds 0: expected a whole number >= 1 (see sola-search run --help)"."""
        message = re.sub(r"^argument command: invalid choice: ", "no command ", message)
        option = re.fullmatch(r"argument (-[^/: ]+)(?:/[^: ]+)?: (.*)", message, re.S)
        if option:
            flag, rest = option.groups()
            message = f"{flag} {rest}" if re.match(r"('[^']*'|[^\s:']+): ", rest) else f"{flag}: {rest}"
        self.exit(2, f"{self.prog.split()[0]}: error: {message} (see {self.prog} --help)\n")


def _resolution(text: str) -> int:
    try:
        value = ascii_int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"resolution {text!r}: expected a whole number of pixels, e.g. 224") from None
    from sola_search.space.cost import check_resolution

    try:
        return check_resolution(value, f"resolution {value}: ")
    except SolaError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _whole(minimum: int):
    """An argparse type: a whole number >= `minimum`, else one line naming what was given."""

    def parse(text: str) -> int:
        try:
            value = ascii_int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r}: expected a whole number >= {minimum}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{value}: expected a whole number >= {minimum}")
        return value

    return parse


_positive_int, _count = _whole(1), _whole(0)


def _int(text: str) -> int:
    """argparse's `type=int` in ASCII digits only (the command checks the range)."""
    return ascii_int(text)


def _float(text: str) -> float:
    """argparse's `type=float` in ASCII digits only (the command checks the range)."""
    return ascii_float(text)


_int.__name__, _float.__name__ = "int", "float"  # argparse's own one line: "invalid int value: '８'"


def _learning_rate(text: str) -> float:
    try:
        value = ascii_float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a learning rate such as 1e-3") from None
    if not 0 < value < 1:  # NaN fails too
        raise argparse.ArgumentTypeError(f"{text}: expected a learning rate above 0 and below 1, such as 1e-3")
    return value


_LR_HELP = "peak AdamW learning rate of the proxy training (default: the preset's, 2e-3)"
_CONFIRM_HELP = ("once the trials are done, give the front's patterns up to N (at most 64) extra seeds each, round "
                 "by round, until their top-1 intervals (mean ± 2 se) separate (default 0: off; a --time limit that "
                 "ends the search leaves it to resume)")


def _print_json(obj) -> None:
    print(json.dumps(obj, indent=2))


# --- space ------------------------------------------------------------------------------------
def cmd_show(args: argparse.Namespace) -> int:
    from sola_search.space import get_variant, model_cost, pattern_file_defaults, resolve_pattern

    from_file = pattern_file_defaults(args.pattern)
    table = None
    if args.latency:  # its variant and resolution are the defaults after the options' and the file's
        from sola_search.space.latency import LatencyTable

        table = LatencyTable.load(args.latency)
        from_file = {"variant": table.variant.name, "resolution": table.resolution, **from_file}
    v = get_variant(args.variant or from_file.get("variant", "small"))  # the variant run and proxy default to
    args.resolution = args.resolution or from_file.get("resolution", 224)
    p = resolve_pattern(args.pattern, v)
    cost = model_cost(v, p, args.resolution)
    info = dict(pattern=str(p), variant=v.name, resolution=args.resolution, macs=cost.macs,
                gmacs=round(cost.gmacs, 4), gflops=round(cost.gflops, 4), params=cost.params,
                softmax_layers=p.softmax_layers, blocks=v.num_blocks, layer_types=p.layer_types)
    if table is not None:
        table.check(v, args.resolution)
        info |= dict(latency_ms=round(table.ms(p), 4), latency_table=args.latency, latency_batch=table.batch,
                     latency_device=table.machine.get("device_name"), latency_dtype=table.dtype)
    if args.json:
        _print_json(info)
        return 0
    print(f"{p}   variant {v.name}, {args.resolution}px")
    side = args.resolution
    for i, (stage, dim, heads) in enumerate(zip(p.stages, v.dims, v.heads, strict=True)):
        side = (side - 1) // 2 + 1 if i else (((side - 1) // 2 + 1) - 1) // 2 + 1
        marks = " ".join(SOFTMAX_MARK if c == "S" else LINEAR_MARK for c in stage)
        print(f"  stage {i + 1}  {marks:<{2 * max(v.depths)}}  {dim} ch, {heads} heads, {side}×{side} tokens")
    print(f"  ({LINEAR_MARK} linear, {SOFTMAX_MARK} softmax)")
    print(f"softmax layers  {p.softmax_layers} of {v.num_blocks}")
    print(f"MACs            {cost.gmacs:.3f} G   ({cost.gflops:.3f} GFLOPs)")
    if table is not None:
        print(f"latency         {table.ms(p):.3f} ms per batch of {table.batch}   (predicted: {table.dtype} on "
              f"{table.machine.get('device_name', '?')}, {args.latency})")
    print(f"params          {cost.mparams:.2f} M")
    return 0


def cmd_space(args: argparse.Namespace) -> int:
    from sola_search.space import VARIANTS, Budget, FeasibleSet, baselines, get_variant
    from sola_search.space.feasible import unlimited_warning

    budget = Budget.parse(args.budget) if args.budget else None
    names = [get_variant(args.variant).name] if args.variant else list(VARIANTS)
    rows = []
    for name in names:
        v = VARIANTS[name]
        row = dict(variant=name, dims=list(v.dims), depths=list(v.depths), heads=list(v.heads),
                   blocks=v.num_blocks, patterns=2**v.num_blocks)
        if budget is not None:
            row["budget"] = str(budget)
            row["feasible"] = FeasibleSet(v, budget, args.resolution).count()
            row["baselines"] = {n: str(p) for n, p in baselines(v, budget, args.resolution).items()}
        rows.append(row)
    unlimited = [r["variant"] for r in rows if budget is not None and r["feasible"] == r["patterns"]]
    if unlimited:
        print(unlimited_warning(budget, unlimited, args.resolution), file=sys.stderr)
    if args.json:
        _print_json(rows)
        return 0
    for r in rows:
        dims, depths = "-".join(map(str, r["dims"])), "-".join(map(str, r["depths"]))
        line = (f"{r['variant']:<6} dims {dims:<16} depths {depths:<9}"
                f" heads {'-'.join(map(str, r['heads'])):<8} {r['blocks']:>2} blocks  {r['patterns']:,} patterns")
        if budget is not None:
            line += f"  {r['feasible']:,} within {r['budget']} at {args.resolution}px"
        print(line)
        if budget is not None and args.variant:
            for n, p in r["baselines"].items():
                print(f"    baseline {n:<14} {p}")
    return 0


def cmd_latency(args: argparse.Namespace) -> int:
    from sola_search.space import baseline, get_variant
    from sola_search.space.budget import Budget
    from sola_search.space.latency import check_options, measure_latency, refuse_overwrite

    v = get_variant(args.variant)
    device = args.device or _default_device()
    dtype = args.dtype or ("bf16" if device == "cuda" else "fp32")
    budget = Budget.parse(args.budget) if args.budget else None
    check_options(device, dtype, args.batch)
    out = Path(args.out or f"latency-{v.name}-{args.resolution}px-b{args.batch}-{dtype}-{device}.json")
    refuse_overwrite(out)  # before minutes of measuring, not after
    with _progress(f"timing {v.name} at {args.resolution}px, batch {args.batch}, {dtype} on {device}") as progress:
        table = measure_latency(v, args.resolution, args.batch, device, dtype, warmup=args.warmup, reps=args.reps,
                                patterns=args.patterns, budget=budget, seed=args.seed, threads=args.threads,
                                eager=args.eager, progress=progress)
    table.save(out)
    print(f"latency of {v.name} at {args.resolution}px, batch {args.batch}, {dtype} on "
          f"{table.machine['device_name']} ({device}, {table.settings['timing']}): median of "
          f"{table.settings['block_reps']} runs per block, {args.reps} per whole model")
    print(f"{'stage':<6} {'blocks':>6} {'linear ms':>10} {'softmax ms':>11} {'softmax/linear':>15}")
    at = 0
    for i, depth in enumerate(v.depths):
        lin, soft = table.linear_ms[at], table.softmax_ms[at]
        print(f"{i + 1:<6} {depth:>6} {lin:>10.3f} {soft:>11.3f} {soft / lin if lin else float('nan'):>14.2f}x")
        at += depth
    parts = table.fixed_ms - table.gap_ms
    print(f"rest {table.fixed_ms:.3f} ms: stem, downsampling, head {parts:.3f} ms timed alone, "
          f"{table.gap_ms:+.3f} ms the whole all-linear model's gap to its parts")
    named = "   ".join(f"{n} {table.ms(baseline(n, v)):.2f} ms" for n in ("all-linear", "late-stages", "all-softmax"))
    print(f"predicted per batch: {named}")
    val = table.validation
    if val["patterns"]:
        print(f"validation: {val['patterns']} random patterns ({val['budget']}), predicted vs whole model timed end "
              f"to end: median error {val['median_rel_error']:.1%}, worst {val['max_rel_error']:.1%} "
              f"(parts alone, without the gap: {val['parts_median_rel_error']:.1%}, "
              f"{val['parts_max_rel_error']:.1%})")
    if warning := table.warning():
        print(f"sola-search: warning: {warning}", file=sys.stderr)
    print(f"wrote {out}")
    return 0


def _default_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


class _progress:
    """A rich progress bar on stderr for `measure_latency`'s progress callback (nothing when stderr
    is not a terminal)."""

    def __init__(self, title: str):
        self.title = title

    def __enter__(self):
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.bar = None
        console = Console(stderr=True)
        if not console.is_terminal:  # piped or captured: a transient bar would leave an empty line there
            return lambda done, total, what: None
        self.bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                            TimeElapsedColumn(), console=console, transient=True)
        self.bar.__enter__()
        self.task = self.bar.add_task(self.title, total=None)
        return self.update

    def update(self, done: int, total: int, what: str) -> None:
        self.bar.update(self.task, completed=done, total=total, description=f"{self.title}: {what}")

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.__exit__(*exc)


_COMPILE_HELP = ("on a GPU, torch.compile each backbone block before the step's CUDA graph is captured: off or "
                 "blocks (default: the preset's; the CPU never compiles)")


# --- proxies ----------------------------------------------------------------------------------
def cmd_proxy(args: argparse.Namespace) -> int:
    from sola_search.proxies import check_data, check_fit, get_preset, train_proxy, training_advice
    from sola_search.space import pattern_file_defaults, resolve_pattern

    if args.supernet:
        return _proxy_supernet(args)
    preset = args.preset
    if preset is None:
        import torch

        preset = "default" if torch.cuda.is_available() and args.device != "cpu" else "quick"
    cfg = get_preset(preset, variant=args.variant or pattern_file_defaults(args.pattern).get("variant"), data=args.data,
                     seed=args.seed, steps=args.steps, batch_size=args.batch_size, lr=args.lr, device=args.device,
                     test=args.test or None, compile=args.compile)
    pattern = resolve_pattern(args.pattern, cfg.variant)
    for note in check_fit(cfg, check_data(cfg.data)) + training_advice(cfg):  # bad data: its one line, no warnings
        print(f"warning: {note}", file=sys.stderr)
    result = train_proxy(pattern, cfg)
    if args.json:
        _print_json(dict(result.to_dict(), preset=preset, config=cfg.to_dict()))
        return 0 if result.ok else 1
    top1 = "-" if result.val_top1 is None else f"{100 * result.val_top1:.2f}%"
    print(f"{result.pattern}   variant {cfg.variant} x{cfg.width}, {cfg.resolution}px, preset {preset}, {cfg.data}")
    print(f"status          {result.status}{f' ({result.reason})' if result.reason else ''}")
    print(f"val top-1       {top1}   (loss {result.val_loss})")
    if result.test_top1 is not None:
        print(f"test top-1      {100 * result.test_top1:.2f}%")
    print(f"steps           {result.steps} x {cfg.batch_size}   train {result.train_s:.1f}s, wall {result.wall_s:.1f}s")
    print(f"throughput      {result.images_per_s:,.0f} images/s on {result.device} ({result.mode})")
    print(f"peak memory     {result.peak_mem_mb:,.0f} MB")
    return 0 if result.ok else 1


def _proxy_supernet(args: argparse.Namespace) -> int:
    """`proxy PATTERN --supernet RUN`: the pattern's score with the run's supernet (no training)."""
    from sola_search.proxies.supernet import load_supernet
    from sola_search.space import resolve_pattern

    given = [f"--{k.replace('_', '-')}" for k in ("preset", "data", "seed", "steps", "batch_size", "lr", "compile")
             if getattr(args, k) is not None] + (["--test"] if args.test else [])
    if given:
        raise SolaError(f"{', '.join(given)} with --supernet: the run's supernet was made with its own settings")
    expected = {"variant": args.variant} if args.variant else None
    supernet = load_supernet(args.supernet, expected, device=args.device)
    pattern = resolve_pattern(args.pattern, supernet.variant)
    result = supernet.score([pattern])[0]
    cfg = supernet.cfg
    if args.json:
        _print_json(dict(result.to_dict(), estimator="supernet", supernet=str(args.supernet),
                         supernet_sha256=supernet.sha256, config=cfg.to_dict()))
        return 0 if result.ok else 1
    top1 = "-" if result.val_top1 is None else f"{100 * result.val_top1:.2f}%"
    print(f"{result.pattern}   variant {cfg.variant} x{cfg.width}, {cfg.resolution}px, supernet of {args.supernet}, "
          f"{cfg.data}")
    print(f"status          {result.status}{f' ({result.reason})' if result.reason else ''}")
    print(f"val top-1       {top1}   (loss {result.val_loss}; supernet score, shared weights)")
    print(f"supernet        {supernet.steps} steps, sha256 {supernet.sha256[:12]}…")
    print(f"scored in       {result.wall_s:.2f}s on {result.device} ({result.mode})")
    return 0 if result.ok else 1


# --- results ----------------------------------------------------------------------------------
def _open_run(args: argparse.Namespace):
    from sola_search.results.runs import open_run

    if args.storage is None and args.study is not None:
        raise SolaError("--study needs --storage URL (a run directory already names its study)")
    return open_run(args.run, storage=args.storage, study=args.study)


def cmd_pareto(args: argparse.Namespace) -> int:
    from sola_search.objectives import study_objectives
    from sola_search.results import report as rp

    run = _open_run(args)
    rep = rp.front_report(run, rp.parse_ref(args.ref, [o.name for o in study_objectives(run.study)]))
    if note := rp.ref_warning(rep):
        print(f"warning: {note}", file=sys.stderr)
    if args.plot:
        rp.plot([rep], args.plot)
    written = rp.write_reports(rep) if not args.no_reports else []
    rows = rp.rows(rep, all_trials=args.all)
    if args.format == "csv":
        sys.stdout.write(rp.to_csv(rows))
    elif args.format == "json":
        print(rp.to_json(rows))
    else:
        rp.render_table(rep, all_trials=args.all)
        for path in written:
            print(f"wrote {path}")
        if args.plot:
            print(f"wrote {args.plot}")
    return 0


def _width(rows: list[dict], key: str, least: int) -> int:
    """A text column's width: its longest value, at least `least`."""
    return max([least, *(len(str(r.get(key) or "?")) for r in rows)])


def cmd_compare(args: argparse.Namespace) -> int:
    from sola_search.results import report as rp
    from sola_search.results.runs import open_run

    runs = [open_run(r) for r in args.runs]
    reports = [rp.front_report(r) for r in runs]
    rp.check_comparable(reports)
    ref = rp.parse_ref(args.ref, [o.name for o in reports[0].objectives]) or rp.common_reference(reports)
    reports = [rp.front_report(r, ref) for r in runs]
    for r in reports:
        if note := rp.ref_warning(r):
            print(f"warning: run {r.run.name}: {note}", file=sys.stderr)
    if differ := rp.proxy_differences(reports):
        print(f"warning: these runs differ in {'; '.join(differ)}: their top-1 values are not comparable",
              file=sys.stderr)
    if args.plot:
        rp.plot(reports, args.plot)
    rows = rp.compare_rows(reports)
    if args.format == "csv":
        sys.stdout.write(rp.to_csv(rows))
        return 0
    if args.format == "json":
        print(rp.to_json(rows))
        return 0
    a, b = reports[0].objectives
    w, wb = _width(rows, "run", 20), _width(rows, "budget", 12)
    wt = 17 if any(r.get(f"best_{a.key}_se") is not None for r in rows) else 10  # room for ± se
    print(f"{'run':<{w}} {'variant':<7} {'budget':<{wb}} {'done':>5} {'failed':>6} {'front':>5} "
          f"{'best ' + a.short:>{wt}} {'at ' + b.short:>10} {'knee':>5} {'hypervolume':>11}")
    for r in rows:
        best = _bare(a, r[f"best_{a.key}"], r.get(f"best_{a.key}_se"))
        at = b.cell(r.get(f"best_{b.key}"))
        print(f"{r['run']:<{w}} {r['variant'] or '?':<7} {r['budget'] or '?':<{wb}} {r['complete']:>5} {r['failed']:>6}"
              f" {r['front']:>5} {best:>{wt}} {at:>10} {'—' if r['knee'] is None else r['knee']:>5}"
              f" {r['hypervolume']:>11.4f}")
    print(f"hypervolume ({a.short} × {b.short}) of every run at one reference "
          f"{rp.ref_text(ref, [a.name, b.name])}")
    if args.plot:
        print(f"wrote {args.plot}")
    return 0


def cmd_runs(args: argparse.Namespace) -> int:
    from sola_search.objectives import OBJECTIVES
    from sola_search.results.report import run_summary
    from sola_search.results.runs import find_runs, open_run

    rows = []
    for d in find_runs(args.runs_dir):
        try:
            rows.append(run_summary(open_run(d)))
        except SolaError as e:  # one unreadable run does not hide the others
            rows.append(dict(run=d.name, state="unreadable", error=str(e)))
    if args.json:
        _print_json(rows)
        return 0
    if not rows:
        print(f"no runs in {args.runs_dir}")
        return 0
    # Default run names are longer than 20, and states such as 'finished (exhausted)' than 12.
    w, ws, wb = _width(rows, "run", 20), _width(rows, "state", 12), _width(rows, "budget", 12)
    print(f"{'run':<{w}} {'state':<{ws}} {'variant':<7} {'budget':<{wb}} {'done':>7} {'failed':>6} {'front':>5}"
          f"  best within budget")
    for r in rows:
        if "error" in r:
            print(f"{r['run']:<{w}} {r['state']:<{ws}} {r['error']}")
            continue
        done = f"{r['counted']}/{r['target']}" if r["target"] else str(r["counted"])
        tied = f"; tied with {', '.join(map(str, r['best_ties']))}" if r.get("best_ties") else ""
        a, b = (OBJECTIVES[n] for n in r["objectives"])
        best = ("—" if r[f"best_{a.key}"] is None else
                f"{a.show(r[f'best_{a.key}'], se=r.get(f'best_{a.key}_se'))} at {b.show(r[f'best_{b.key}'])} "
                f"(trial {r['best_trial']}{tied})")
        print(f"{r['run']:<{w}} {r['state']:<{ws}} {r['variant'] or '?':<7} {r['budget'] or '?':<{wb}} {done:>7}"
              f" {r['failed']:>6} {r['front']:>5}  {best}")
    return 0


def _bare(objective, value: float | None, se: float | None = None) -> str:
    """A value in the objectives table's form without its name: `70.30%`, with seeds `70.30% ± 0.50%`."""
    return objective.show(value, se=se).removeprefix(objective.text.split("{")[0])


def cmd_export(args: argparse.Namespace) -> int:
    from sola_search.objectives import OBJECTIVES, study_objectives
    from sola_search.results.export import export_pattern, tie_note

    run = _open_run(args)
    path, rec = export_pattern(run.study, args.pick, args.out, name=run.name)
    m = rec["metrics"]
    first = study_objectives(run.study)[0]
    score = OBJECTIVES["val_top1"].show(m["val_top1"], se=m.get("val_top1_se"))
    if first.name != "val_top1":  # the score the run ranked by first, then its top-1
        score = f"{first.show(m.get(first.name), se=m.get(first.se_name))} ({score})"
    estimator = rec["proxy"].get("estimator", "train")
    scored = " (supernet score)" if estimator == "supernet" else ""
    print(f"{path}: trial {rec['provenance']['trial']} ({args.pick}) {rec['pattern']}  {rec['variant']}, "
          f"{score}{scored}, {m['gmacs']:.3f} GMACs, {m['params'] / 1e6:.2f} M params, "
          f"{rec['softmax_layers']} softmax")
    print(f"  build it: sola_search.load_backbone({str(path)!r}, num_classes=...)  or  "
          f"timm.create_model('sola_vision_{rec['variant']}', pattern={str(path)!r})")
    if note := tie_note(run.study, rec["provenance"]["trial"]):
        print(f"  {note}")
    return 0


# --- search -----------------------------------------------------------------------------------
def _print_run_end(summary) -> None:
    from sola_search.results import report as rp
    from sola_search.results.runs import open_run

    why = {"done": "reached its trial count", "time": "reached its time limit",
           "exhausted": "measured every feasible pattern"}.get(summary.stopped, summary.stopped)
    print(f"run {summary.name} {why}: {summary.completed} measured, {summary.failed} failed"
          f"{f', {summary.duplicates} answered from storage' if summary.duplicates else ''}"
          f" in {summary.elapsed_s:.0f}s")
    if summary.confirmed:
        print(summary.confirmed)
    rp.render_table(rp.front_report(open_run(summary.path)))
    path = shlex.quote(str(summary.path))  # a path with spaces still pastes as one argument
    print(f"next: sola-search pareto {path} --plot front.png   |   sola-search export {path} --pick knee")


def _search(start, run_path) -> int:
    """Run a search to its end and print the front; exit 1 when --max-failures stopped it and 130
    when it was interrupted (with the command that continues it)."""
    from sola_search.search.runner import MaxFailures

    try:
        summary = start()
    except MaxFailures as e:
        print(f"sola-search: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        path = run_path()
        if path and (Path(path) / "run.json").is_file():
            print(f"sola-search: interrupted; continue with: sola-search resume {path}", file=sys.stderr)
        else:
            print("sola-search: interrupted before the run started; nothing was stored", file=sys.stderr)
        return 130
    _print_run_end(summary)
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from sola_search.objectives import COST_OBJECTIVES, SCORE_OBJECTIVES
    from sola_search.search import SearchConfig, parse_duration, run_search

    cfg = SearchConfig(
        budget=args.budget, variant=args.variant, trials=args.trials,
        time_limit_s=parse_duration(args.time) if args.time else None, encoding=args.sampler,
        preset=args.preset, data=args.data, resolution=args.resolution, gpus_per_trial=args.gpus_per_trial,
        workers=args.workers, pack=args.pack, ahead=args.ahead, address=args.address, storage=args.storage,
        name=args.name, runs_dir=args.runs_dir, seed=args.seed, seeds=args.seeds, max_failures=args.max_failures,
        steps=args.steps, batch_size=args.batch_size, lr=args.lr, baselines=False if args.no_baselines else None,
        latency=args.latency,
        objectives=None if args.objective is None and args.score is None
        else [SCORE_OBJECTIVES[args.score or "top1"], COST_OBJECTIVES[args.objective or "gmacs"]],
        compile=args.compile, confirm=args.confirm, estimator=args.estimator, supernet_steps=args.supernet_steps)
    if args.calibration:
        from sola_search.search.calibrate import apply_calibration

        cfg, notes = apply_calibration(cfg, args.calibration)
        for note in notes:
            print(note, file=sys.stderr, flush=True)
    cfg = cfg.named()
    return _search(lambda: run_search(cfg, quiet=args.quiet), lambda: f"{cfg.runs_dir}/{cfg.name}")


def cmd_calibrate(args: argparse.Namespace) -> int:
    from sola_search.objectives import SCORE_OBJECTIVES
    from sola_search.results.calibration import table_lines
    from sola_search.search.calibrate import CalibrationConfig, calibrate, parse_ladder

    cfg = CalibrationConfig(data=args.data, variant=args.variant, budget=args.budget, ladder=parse_ladder(args.ladder),
                            seeds=args.seeds, reference_seeds=args.reference_seeds, patterns=args.patterns,
                            preset=args.preset, seed=args.seed,
                            resolution=args.resolution, batch_size=args.batch_size, lr=args.lr, compile=args.compile,
                            out=args.out, pack=args.pack, workers=args.workers, address=args.address,
                            score=SCORE_OBJECTIVES[args.score])
    try:
        result = calibrate(cfg, quiet=args.quiet)
    except KeyboardInterrupt:
        print("sola-search: interrupted; every finished training is in the records: run the same command again "
              "to train only the rest", file=sys.stderr)
        return 130
    for line in table_lines(result.calibration):
        print(line)
    failed = f", {result.failed} failed (run again to retry them)" if result.failed else ""
    print(f"{result.trained} trained, {result.reused} from the records{failed}; wrote {result.out}, {result.plot} "
          f"(records {result.records})")
    if result.calibration["recommendation"]["ranks"]:
        print(f"next: sola-search run --budget {cfg.budget} --calibration {shlex.quote(str(result.out))}")
    return 0


def cmd_resume(args: argparse.Namespace) -> int:
    from sola_search.search import parse_duration, resume_search

    time_limit = parse_duration(args.time) if args.time else None
    return _search(lambda: resume_search(args.run, trials=args.trials, address=args.address, quiet=args.quiet,
                                         time_limit_s=time_limit, max_failures=args.max_failures,
                                         confirm=args.confirm), lambda: args.run)


DESCRIPTION = ("Search where a vision backbone places global softmax attention among linear-attention blocks:\n"
               "a multi-objective search (proxy top-1 up, GMACs down) under a budget, its Pareto front, and\n"
               "the chosen pattern exported as a timm-style backbone.")
EPILOG = """a first search, its front and its knee exported:
  sola-search run --budget 8softmax --name first
  sola-search pareto runs/first --plot front.png
  sola-search export runs/first --pick knee

each command's own --help says more."""


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="sola-search", description=DESCRIPTION, epilog=EPILOG,
                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    def command(name: str, help: str) -> argparse.ArgumentParser:
        """A subcommand whose one-line help is also what its own --help opens with."""
        return sub.add_parser(name, help=help, description=help[0].upper() + help[1:] + ".")

    p = command("show", "draw a pattern with its MACs, GFLOPs, params, softmax count (and latency)")
    p.add_argument("pattern", help="text form (LL-LS-LLSLLS-SS), a baseline name (late-stages) or a pattern file")
    p.add_argument("--variant", help="micro, tiny, small or base (default: a pattern file's, else small)")
    p.add_argument("--resolution", type=_resolution, help="input size in pixels (default: a pattern file's, else 224)")
    p.add_argument("--latency", metavar="FILE", help="also its predicted latency from a table (sola-search latency)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=cmd_show)

    p = command("space", "variants, blocks per stage and the number of feasible patterns")
    p.add_argument("--variant", help="one variant (default: all)")
    p.add_argument("--budget", help="e.g. 8softmax or 8softmax,2.5gmacs")
    p.add_argument("--resolution", type=_resolution, default=224, help="input size in pixels (default 224)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_space)

    p = command("latency", "measure on this machine each block's forward time as linear and as softmax: a table "
                "that prices any pattern's latency")
    p.add_argument("--variant", default="small", help="micro, tiny, small or base (default small)")
    p.add_argument("--resolution", type=_resolution, default=224, help="input size in pixels (default 224)")
    p.add_argument("--batch", type=_positive_int, default=64, help="images per forward pass (default 64)")
    p.add_argument("--device", help="cuda or cpu (default: cuda where there is one)")
    p.add_argument("--dtype", help="bf16 or fp32 (default: bf16 on cuda, fp32 on the cpu)")
    p.add_argument("--reps", type=_positive_int, default=10,
                   help="timed runs of each whole model; each block and part gets 3x as many (default 10)")
    p.add_argument("--warmup", type=_count, default=3, help="untimed runs before each timing (default 3)")
    p.add_argument("--patterns", type=_count, default=50,
                   help="random patterns timed end to end to validate the table (default 50)")
    p.add_argument("--budget", help="draw the validation patterns within this budget (default: any pattern)")
    p.add_argument("--seed", type=_int, default=0, help="seed of the validation patterns (default 0)")
    p.add_argument("--threads", type=_positive_int, help="torch's CPU threads while measuring (default: torch's)")
    p.add_argument("--eager", action="store_true",
                   help="on a GPU, time eager calls (kernel launches included) instead of CUDA-graph replays")
    p.add_argument("--out", help="the table's JSON file (default latency-VARIANT-Rpx-bBATCH-DTYPE-DEVICE.json: "
                   "tables of other settings do not replace each other); an existing table is never replaced")
    p.set_defaults(func=cmd_latency)

    p = command("proxy", "train one pattern's proxy and print its validation top-1 and speed")
    p.add_argument("pattern", help="text form (LL-LS-LLSLLS-SS), a baseline name (late-stages) or a pattern file")
    p.add_argument("--variant", help="micro, tiny, small or base (default: a pattern file's, else the preset's, small)")
    p.add_argument("--preset", help="quick (CPU), default (GPU) or long (default: default on a GPU, else quick)")
    p.add_argument("--data", help="fashion-mnist (default), fashion-mnist:DIR, npz:PATH, imagefolder:PATH or "
                   "recall[:pairs=LO-HI,...]")
    p.add_argument("--seed", type=_int, help="model init and batch order (default 0)")
    p.add_argument("--steps", type=_positive_int, help="training steps (default: the preset's)")
    p.add_argument("--batch-size", type=_positive_int, help="training batch size (default: the preset's)")
    p.add_argument("--lr", type=_learning_rate, help=_LR_HELP)
    p.add_argument("--device", help="auto (default), cpu, cuda or cuda:N")
    p.add_argument("--test", action="store_true", help="also report top-1 on the test split")
    p.add_argument("--json", action="store_true", help="print one JSON object (the result and its config)")
    p.add_argument("--compile", help=_COMPILE_HELP)
    p.add_argument("--supernet", metavar="RUN", help="score the pattern with RUN's supernet (a run made with "
                   "--estimator supernet) instead of training it")
    p.set_defaults(func=cmd_proxy)

    p = command("run", "search for the best softmax placements under a budget")
    p.add_argument("--budget", required=True, help="e.g. 8softmax, 2.5gmacs, 5gflops, 20mparams, 12ms (with "
                   "--latency), comma-joined")
    p.add_argument("--objective", choices=("gmacs", "latency"),
                   help="the cost traded against top-1: gmacs (default) or latency (the --latency table's ms)")
    p.add_argument("--score", choices=("top1", "loss"),
                   help="what ranks the patterns: the proxy's validation top-1 (default) or its validation loss "
                   "(lower is better; on Fashion-MNIST it agreed between seeds more than top-1 did)")
    p.add_argument("--latency", metavar="FILE", help="a latency table (sola-search latency) for --objective latency "
                   "and ms budgets; each trial records its predicted latency")
    p.add_argument("--variant", help="micro, tiny, small or base (default small)")
    p.add_argument("--trials", type=_int, help="patterns to measure (default: 8 on a CPU, 64 on GPUs; 2000 with "
                   "--estimator supernet)")
    p.add_argument("--estimator", help="how a trial's top-1 is obtained: train (default: each pattern's own proxy "
                   "training) or supernet (one weight-sharing supernet trained first, then each pattern scored "
                   "with its shared weights: thousands of trials)")
    p.add_argument("--supernet-steps", type=_positive_int, help="the supernet's training steps (default 10x the "
                   "proxy's)")
    p.add_argument("--time", help="stop starting trials after this long, e.g. 30m or 2h")
    p.add_argument("--sampler", help="budget-aware encoding and sampler: evolution (default, the measured best), "
                   "blocks, keys or random")
    p.add_argument("--preset", help="proxy preset: quick (CPU), default (GPU), long")
    p.add_argument("--data", help="fashion-mnist (default), fashion-mnist:DIR, npz:PATH, imagefolder:PATH or "
                   "recall[:pairs=LO-HI,...]")
    p.add_argument("--steps", type=_int, help="proxy training steps (default: the preset's)")
    p.add_argument("--batch-size", type=_positive_int, help="proxy training batch size (default: the preset's)")
    p.add_argument("--lr", type=_learning_rate, help=_LR_HELP)
    p.add_argument("--compile", help=_COMPILE_HELP)
    p.add_argument("--resolution", type=_resolution, help="resolution the cost is counted at (default 224)")
    p.add_argument("--gpus-per-trial", type=_float, help="GPU fraction per trial; a worker takes this times "
                   "--pack (default 1/8: a pack of 8 per GPU)")
    p.add_argument("--workers", type=_int, help="worker processes (default: fill the GPUs; on CPUs one a core, "
                   "as many as memory holds at 2 GiB each and the trials need)")
    p.add_argument("--pack", type=_int, help="models a worker trains together (default 8 on GPUs, 1 on a CPU); "
                   "with --seeds K a pattern's K seeds are K of them, always in one pack")
    p.add_argument("--ahead", type=_int, metavar="{0,1}", help="packs queued behind each busy worker's running one; "
                   "1: built and captured on a second thread while that one trains, the driver's results and asks "
                   "between packs hidden too (see README); with --time only a pack expected to start before the "
                   "limit; 0: a worker gets a pack when it has none (default 1 on GPUs, 0 on a CPU)")
    p.add_argument("--address", help="join a running Ray cluster (ray start --head) instead of starting one")
    p.add_argument("--storage", help="study storage URL (default sqlite in the run directory)")
    p.add_argument("--name", help="run name (default: variant, budget and time); an existing run is resumed")
    p.add_argument("--runs-dir", default="runs", help="where runs live (default runs)")
    p.add_argument("--seed", type=_int, help="seed of the sampler and the proxy trainings (default 0)")
    p.add_argument("--seeds", type=_positive_int, help="train each pattern with K seeds (--seed, --seed + 1, …; "
                   "each its own initial weights and batches): top-1 is their mean, with its standard error "
                   "(default 1)")
    p.add_argument("--confirm", type=_count, metavar="N", help=_CONFIRM_HELP)
    p.add_argument("--calibration", metavar="FILE", help="take --steps and --seeds (and the data, variant, preset, "
                   "batch size, learning rate and score when not given) from a calibration's recommendation "
                   "(sola-search calibrate); explicit ones win")
    p.add_argument("--max-failures", type=_int, help="stop after this many failed trials (default: a quarter)")
    p.add_argument("--no-baselines", action="store_true",
                   help="skip the named baseline patterns the search measures first (kept by a resume)")
    p.add_argument("--quiet", action="store_true", help="no live progress (the event log is still written)")
    p.set_defaults(func=cmd_run)

    p = command("calibrate", "measure whether, and with how many steps and seeds, a short proxy ranks placements on "
                "this data: a stratified pattern set trained at each rung of a step ladder with several seeds, "
                "each rung ranked against the top one; a table, a JSON file and a PNG, and a recommendation for "
                "run --calibration")
    p.add_argument("--data", required=True, help="fashion-mnist, fashion-mnist:DIR, npz:PATH, imagefolder:PATH or "
                   "recall[:pairs=LO-HI,...]")
    p.add_argument("--variant", required=True, help="micro, tiny, small or base")
    p.add_argument("--budget", required=True, help="the run's budget, e.g. 8softmax: the patterns are drawn under it")
    p.add_argument("--preset", help="proxy preset: quick (CPU), default (GPU), long (default: default on GPUs, "
                   "else quick); each rung is its proxy trained that many steps")
    p.add_argument("--ladder", default="150,300,600,1200,2400",
                   help="increasing training steps, comma-separated; the last is the reference (default "
                   "150,300,600,1200,2400)")
    p.add_argument("--seeds", type=_count, default=2, help="seeds per pattern and rung, at least 2 (default 2)")
    p.add_argument("--reference-seeds", type=_count, help="seeds per pattern of the top rung, the reference every "
                   "rung is ranked against (default: --seeds); more make it agree with itself better, and the "
                   "first --seeds of them are reused when it grows")
    p.add_argument("--patterns", type=_count, default=24, help="stratified patterns: baselines, softmax in each "
                   "stage alone, samples over the softmax counts (default 24, at least 6)")
    p.add_argument("--seed", type=_count, default=0, help="seed of the pattern sample and the first training seed "
                   "(default 0)")
    p.add_argument("--resolution", type=_resolution, default=224, help="where a GMACs budget is counted (default 224)")
    p.add_argument("--batch-size", type=_positive_int, help="proxy training batch size (default: the preset's)")
    p.add_argument("--lr", type=_learning_rate, help=_LR_HELP)
    p.add_argument("--compile", help=_COMPILE_HELP)
    p.add_argument("--pack", type=_int, help="models a worker trains together (default 8 on GPUs, 1 on a CPU; a "
                   "pattern's seeds always in one pack)")
    p.add_argument("--workers", type=_int, help="worker processes (default: fill the GPUs; on CPUs one a core, "
                   "as many as memory holds at 2 GiB each and the trials need)")
    p.add_argument("--address", help="join a running Ray cluster (ray start --head) instead of starting one")
    p.add_argument("--score", choices=("top1", "loss"), default="top1",
                   help="what ranks the patterns, as `run --score` (default top1); the trainings are the same, so a "
                   "rerun with the other score reuses every one")
    p.add_argument("--out", help="the calibration's JSON (default calibrations/DATA-VARIANT-BUDGET.json); the PNG "
                   "and the records of finished trainings (.records.jsonl, what a rerun reuses) beside it")
    p.add_argument("--quiet", action="store_true", help="no live progress")
    p.set_defaults(func=cmd_calibrate)

    p = command("resume", "continue a run that stopped or was killed")
    p.add_argument("run", help="run directory, runs/<name>")
    p.add_argument("--trials", type=_int, help="a new total trial count")
    p.add_argument("--time", help="a new time limit, e.g. 30m")
    p.add_argument("--address", help="join a running Ray cluster")
    p.add_argument("--max-failures", type=_int, help="stop after this many trials fail in this session")
    p.add_argument("--confirm", type=_count, metavar="N", help=_CONFIRM_HELP + "; kept for later resumes")
    p.add_argument("--quiet", action="store_true", help="no live progress")
    p.set_defaults(func=cmd_resume)
    def run_args(p: argparse.ArgumentParser) -> None:
        p.add_argument("run", nargs="?", help="run directory, runs/<name>")
        p.add_argument("--storage", help="a storage URL instead of a run directory (e.g. postgresql://...)")
        p.add_argument("--study", help="the study name in --storage (default: its only study)")

    p = command("pareto", "the accuracy-vs-GMACs Pareto front of a run: table, CSV, JSON, plot")
    run_args(p)
    p.add_argument("--format", choices=("table", "csv", "json"), default="table", help="output (default table)")
    p.add_argument("--plot", help="also draw every trial and the front to FILE.png, .svg, .pdf or .html")
    p.add_argument("--all", action="store_true", help="list every trial, not only the front")
    p.add_argument("--ref", help="hypervolume reference point TOP1,GMACS, top-1 a fraction, e.g. 0.5,5.5 (default: 0 "
                   "and 1.1 x the costliest pattern)")
    p.add_argument("--no-reports", action="store_true", help="do not write runs/<name>/reports/pareto.{csv,json}")
    p.set_defaults(func=cmd_pareto)

    p = command("compare", "several runs' fronts on one plot, hypervolumes at one reference point")
    p.add_argument("runs", nargs="+", help="run directories")
    p.add_argument("--plot", help="draw the fronts to FILE.png, .svg, .pdf or .html")
    p.add_argument("--format", choices=("table", "csv", "json"), default="table", help="output (default table)")
    p.add_argument("--ref", help="common reference point TOP1,GMACS, top-1 a fraction (default: the loosest of the "
                   "runs' own)")
    p.set_defaults(func=cmd_compare)

    p = command("runs", "each run's state, trials done/failed, front size, best within budget")
    p.add_argument("--runs-dir", default="runs", help="where runs live (default runs)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_runs)

    p = command("export", "write one trial of a run as a self-contained pattern file")
    run_args(p)
    p.add_argument("--pick", default="knee", help="knee (default), best, trial:N or under:BUDGET (under:2.5gmacs)")
    p.add_argument("--out", help="pattern file, or directory, to write (default <run>-trial<N>.json here)")
    p.set_defaults(func=cmd_export)
    return parser


def _version() -> str:
    from sola_search import __version__

    return __version__


# The status a coreutils tool leaves when its reader goes away (killed by SIGPIPE: 128 + 13), so that
# `sola-search runs --json | head -3` reads under `set -o pipefail` as `cat file | head -3` does.
READER_GONE = 141


def _reader_gone() -> int:
    """stdout's reader went away (`| head`): say nothing more. stdout points at devnull from here, so
    the flush at interpreter exit cannot raise again (the Python docs' recipe for SIGPIPE)."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # stdout is not a file (a test's capture): nothing to flush at exit
        pass
    return READER_GONE


def _closed_streams_to_devnull() -> None:
    """A standard stream the caller closed (`>&-`, `2>&-`) is opened on /dev/null. Left closed, its
    descriptor goes to the next file opened (the study's database, a pattern file) and whatever then
    writes to stdout or stderr (a warning, a Ray process inheriting it) writes into that file; and
    Python's `sys.stdout` is None, on which the flush below raised."""
    for fd, name in ((0, "stdin"), (1, "stdout"), (2, "stderr")):
        try:
            os.fstat(fd)
        except OSError:  # closed: /dev/null takes its number (the lowest free one, dup2 if not)
            null = os.open(os.devnull, os.O_RDONLY if fd == 0 else os.O_WRONLY)
            if null != fd:
                os.dup2(null, fd)
                os.close(null)
        if getattr(sys, name) is None:
            setattr(sys, name, open(fd, "r" if fd == 0 else "w", closefd=False))  # noqa: SIM115 — for the process


def main(argv: list[str] | None = None) -> int:
    _closed_streams_to_devnull()
    try:
        return _main(argv)
    except BrokenPipeError:
        return _reader_gone()


def _main(argv: list[str] | None) -> int:
    args = build_parser().parse_args(argv)
    try:
        code = args.func(args) or 0
        sys.stdout.flush()  # a reader that left shows here, not in the flush at interpreter exit
        return code
    except StateError as e:  # not the user's typo: a state of the machine to fix (exit 1)
        print(f"sola-search: error: {e}", file=sys.stderr)
        return 1
    except SolaError as e:
        print(f"sola-search: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("sola-search: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

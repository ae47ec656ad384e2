"""Fidelity of a proxy: does it rank patterns as a reference that reproduces itself does?

The protocol (issue 13). A stratified set of >= 24 patterns of one variant under one budget: every
baseline the budget admits, softmax confined to each single stage (as much of the stage as the
budget allows), softmax in stages 1-2, then uniform samples spread evenly over the softmax counts.
A reference (the `long` preset, or --ref-steps) trained with >= 4 seeds; one or more proxies
(--proxy NAME:KEY=VALUE,...) with their own seeds. Reported:
- the reference against itself: split-half Kendall tau and Pearson r (mean of half the seeds against
  the mean of the other half, averaged over the splits), the Spearman-Brown reliability of the
  all-seed mean, and the ceiling that reliability sets on any proxy's tau against that mean
  (tau = (2/pi)·arcsin r, r = sqrt(reliability));
- between-pattern spread of the reference mean over its seed spread (the pooled within-pattern sd);
- the reference's paired single-seed reliability (`icc`: the pattern's share of the variance once each
  seed's shift common to all patterns is set aside) and the seeds per half a split-half tau of 0.7
  would take (`results.fidelity.variance_components`; `bench/reference_anatomy.py` takes it further);
- per proxy: tau of its seed mean against the reference mean with a bootstrap 90 % interval over
  patterns, its own seed-to-seed tau, top-5 overlap, and its compute per pattern (all its seeds) as
  a fraction of one reference run, in GPU-seconds and in training samples.
Each table is given three times, ranking patterns by validation top-1, by validation loss (lower
is better), and by the area under the validation top-1 curve (its mean over the `eval_every`
evaluations and the end), where runs recorded one.

Runs spread over every visible GPU in packs (`train_proxies`: a pack's patterns train together on
the same batches, as a search worker trains them), longest first.

    python bench/proxy_fidelity.py --data recall --ref-steps 2000 --ref-seeds 4 \\
        --proxy p250:steps=250 --proxy w25:steps=400,width=0.25 --proxy-seeds 2
    python bench/proxy_fidelity.py --smoke        # a minute, on the CPU

A benchmark longer than one job's time limit runs in parts and is merged afterwards:

    python bench/proxy_fidelity.py ... --part 1/2 --out a.json   # same options in every part
    python bench/proxy_fidelity.py ... --part 2/2 --out b.json
    python bench/proxy_fidelity.py ... --merge a.json b.json     # the tables, from both parts' runs
"""

from __future__ import annotations

import argparse
import ast
import json
import statistics
import sys
import time
from pathlib import Path
from typing import NoReturn

from proxy_common import common_args, devices, env_info, overrides, preset, run_pool, table, write_json

from sola_search.proxies import ProxyConfig
from sola_search.proxies.config import is_retired
from sola_search.results.fidelity import (
    bootstrap_tau,
    kendall_tau,
    split_half,
    spread_over_noise,
    top_k_overlap,
    variance_components,
)
from sola_search.space import Budget
from sola_search.space.feasible import stratified_patterns


def fail(msg: str) -> NoReturn:
    print(msg, file=sys.stderr)
    raise SystemExit(2)


# --- the pattern set ------------------------------------------------------------------------------
def patterns(variant: str, budget: str, count: int, seed: int) -> list[tuple[str, str]]:
    """(name, pattern text): the package's stratified set (`space.feasible.stratified_patterns`)."""
    return [(name, str(p)) for name, p in stratified_patterns(variant, Budget.parse(budget), count, seed)]


# --- parts and merging ----------------------------------------------------------------------------
def job_cost(j: dict) -> int:
    c = j["config"]
    return c["steps"] * c["batch_size"] * len(j["patterns"])


def part(jobs: list[dict], spec: str) -> list[dict]:
    """The K-th of N parts of `jobs`: each job (longest first) goes to the part with the least
    training so far, so the parts take about equally long."""
    try:
        k, n = (int(x) for x in spec.split("/"))
        assert 1 <= k <= n
    except (ValueError, AssertionError):
        fail(f"--part {spec!r}: expected K/N with 1 <= K <= N")
    load, mine = [0] * n, []
    for j in sorted(jobs, key=job_cost, reverse=True):
        i = load.index(min(load))
        load[i] += job_cost(j)
        if i == k - 1:
            mine.append(j)
    return mine


# Config fields that do not change what a run trains: parts may differ in them and still merge
# (evaluation reads the weights and draws nothing from the training batches' generator).
UNTRAINED = ("device", "eval_every")


def untrained(jobs: list[dict], have: set[tuple[str, str]], pack: int) -> list[dict]:
    """The jobs' runs that `have` lacks, each label's regrouped into full packs (seeds kept with their patterns)."""
    out: list[dict] = []
    for label in dict.fromkeys(j["label"] for j in jobs):
        mine = [j for j in jobs if j["label"] == label]
        left = [(p, j["seeds"][i] if "seeds" in j else None) for j in mine for i, p in enumerate(j["patterns"])
                if (label, p) not in have]
        for i in range(0, len(left), pack):
            part = left[i : i + pack]
            out.append(mine[0] | dict(patterns=[p for p, _ in part])
                       | ({"seeds": [s for _, s in part]} if "seeds" in mine[0] else {}))
    return out


def merged(paths: list[str], jobs: list[dict], flag: str = "--merge") -> list[dict]:
    """The runs of earlier parts, checked against this invocation's jobs (same patterns and configs)."""
    want = {(j["label"], p): j["config"] for j in jobs for p in j["patterns"]}
    same = lambda c: {k: v for k, v in c.items() if k not in UNTRAINED and not is_retired(k, v)}  # noqa: E731
    done = {}
    for path in paths:
        try:
            runs = json.loads(Path(path).read_text())["runs"]
        except (OSError, ValueError, KeyError) as e:
            fail(f"{flag} {path}: not a proxy_fidelity record ({type(e).__name__}: {e})")
        for d in runs:
            key = (d["label"], d["pattern"])
            if key not in want or same(d["config"]) != same(want[key]):
                fail(f"{flag} {path}: run {key} is not one of this benchmark's (options differ?)")
            done[key] = d
    missing = len(want) - len(done)
    if flag == "--merge":
        print(f"merged {len(done)} runs from {len(paths)} record(s); {missing} of this benchmark's runs missing")
    return list(done.values())


# --- main -----------------------------------------------------------------------------------------
def parse_proxy(text: str) -> tuple[str, dict]:
    """NAME[:KEY=VALUE,...] → (name, overrides of the default preset)."""
    name, _, rest = text.partition(":")
    fields = set(ProxyConfig.__dataclass_fields__)
    items: list[str] = []
    for tok in filter(None, rest.split(",")):  # a value may hold commas: data=recall:pairs=2-24,curriculum=500
        if items and tok.partition("=")[0] not in fields:
            items[-1] += "," + tok
        else:
            items.append(tok)
    over = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            fail(f"--proxy {text!r}: expected NAME:KEY=VALUE,...")
        try:
            over[key] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            over[key] = value
    if not name or "/" in name or name == "ref":
        fail(f"--proxy {text!r}: a name (not 'ref', no '/') first")
    return name, over


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    common_args(ap, "proxy_fidelity")
    ap.add_argument("--variant", default="small")
    ap.add_argument("--budget", default="8softmax")
    ap.add_argument("--patterns", type=int, default=24, help="how many patterns (>= 24 for a result)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the pattern sample")
    ap.add_argument("--ref-preset", default="long", help="preset of the reference (default long)")
    ap.add_argument("--ref", default="", metavar="KEY=VALUE,...", help="reference overrides, e.g. steps=2000")
    ap.add_argument("--ref-seeds", type=int, default=4, help="seeds of the reference (>= 4)")
    ap.add_argument("--proxy", action="append", metavar="NAME[:KEY=VALUE,...]",
                    help="a proxy: the default preset with these overrides (repeatable; default: 'default')")
    ap.add_argument("--proxy-seeds", type=int, default=2, help="seeds of each proxy (0: the reference alone)")
    ap.add_argument("--names", nargs="+", metavar="NAME",
                    help="only these patterns of the stratified set (a screen, e.g. all-linear stage-1-only)")
    ap.add_argument("--independent", action="store_true",
                    help="every (pattern, seed) its own initial weights and batches (seed 1000*(s+1)+i for the "
                         "i-th pattern): without it a pack's patterns of seed s share both, so a shared start "
                         "that decides learning (recall) is counted as agreement")
    ap.add_argument("--pack", type=int, default=8, help="patterns trained together in one process (default 8)")
    ap.add_argument("--per-gpu", type=int, default=1, help="processes per GPU (default 1)")
    ap.add_argument("--gpus", help="comma-separated GPU indices (default: all visible)")
    ap.add_argument("--only", nargs="+", metavar="LABEL", help="run only these runs, e.g. ref/s2 p250/s0")
    ap.add_argument("--part", help="K/N: run only the K-th of N parts (jobs balanced by training samples)")
    ap.add_argument("--skip", nargs="+", metavar="JSON",
                    help="train only the runs these earlier parts' records lack (merge them all afterwards)")
    ap.add_argument("--merge", nargs="+", metavar="JSON", help="no training: the tables from these parts' records")
    args = ap.parse_args()

    over = overrides(args) | dict(variant=args.variant)
    if args.smoke:
        over["variant"] = args.variant = "micro"
        args.per_gpu = 2
    _, ref_over = parse_proxy("ref-x:" + args.ref)
    cfg_ref = preset(args.ref_preset, over, **ref_over)
    if args.smoke and not args.ref:
        cfg_ref = cfg_ref.replace(steps=8)
    proxies = dict(parse_proxy(p) for p in (args.proxy or ["default"])) if args.proxy_seeds else {}
    cfg_proxies = {name: preset("default", over, **o) for name, o in proxies.items()}
    pats = patterns(args.variant, args.budget, args.patterns, args.seed)
    if args.names:
        unknown = set(args.names) - {n for n, _ in pats}
        if unknown:
            fail(f"--names: {', '.join(sorted(unknown))} not in the set ({', '.join(n for n, _ in pats)})")
        pats = [(n, p) for n, p in pats if n in args.names]
    print(f"{len(pats)} patterns of {args.variant} under {args.budget}; reference {cfg_ref.steps} steps x "
          f"{args.ref_seeds} seeds; proxies " + ", ".join(f"{n} {c.steps} steps x {args.proxy_seeds}"
                                                        for n, c in cfg_proxies.items()))

    names = {p: n for n, p in pats}
    packs = [[p for _, p in pats[i : i + args.pack]] for i in range(0, len(pats), args.pack)]
    runs = [(f"ref/s{s}", cfg_ref.replace(seed=s)) for s in range(args.ref_seeds)] + [
        (f"{n}/s{s}", c.replace(seed=s)) for n, c in cfg_proxies.items() for s in range(args.proxy_seeds)]
    index = {p: i for i, (_, p) in enumerate(pats)}
    jobs = [dict(label=label, patterns=pack, seed=cfg.seed, config=cfg.to_dict(),
                 **({"seeds": [1000 * (cfg.seed + 1) + index[p] for p in pack]} if args.independent else {}))
            for label, cfg in runs for pack in packs]
    every = jobs
    jobs = [j for j in jobs if not args.only or j["label"] in args.only]
    if args.skip:
        have = {(d["label"], d["pattern"]) for d in merged(args.skip, every, "--skip")}
        jobs = untrained(jobs, have, args.pack)
        print(f"--skip: {len(have)} runs already recorded; {sum(len(j['patterns']) for j in jobs)} to train")
    devs = devices(args.smoke, args.gpus)
    t0 = time.time()
    if args.merge:
        done = merged(args.merge, jobs)
    else:
        def save(runs: list[dict]) -> None:  # a run cut short by a time limit keeps what it finished
            write_json(args.out, dict(bench="proxy_fidelity", partial=True, env=env_info(), runs=runs), quiet=True)

        done = run_pool(part(jobs, args.part) if args.part else jobs, devs, args.per_gpu, on_result=save)
    wall = time.time() - t0
    report(args, pats, names, done, cfg_ref, cfg_proxies, wall, devs)


def score_of(r: dict, score: str) -> float | None:
    """A run's score, higher better: top-1, minus the loss, or the mean of its top-1 curve and end."""
    if r.get("status") != "ok":
        return None
    if score == "auc":
        return statistics.fmean([a for _, a in r["val_curve"]] + [r["val_top1"]]) if r.get("val_curve") else None
    return r.get("val_top1") if score == "top1" else -r["val_loss"]


def report(args, pats, names, done, cfg_ref, cfg_proxies, wall, devs) -> None:
    for d in done:
        d["name"] = names[d["pattern"]]
    by = {(d["label"], d["pattern"]): d["result"] for d in done}
    ref_labels = [f"ref/s{s}" for s in range(args.ref_seeds)]
    groups = {"ref": ref_labels} | {n: [f"{n}/s{s}" for s in range(args.proxy_seeds)] for n in cfg_proxies}
    summary: dict[str, dict] = {}
    rows = []
    for name, p in pats:
        row = dict(name=name, pattern=p, softmax=p.count("S"))
        for g, labels in groups.items():
            vals = [by.get((lb, p), {}).get("val_top1") for lb in labels]
            vals = [v for v in vals if v is not None]
            row[f"{g} top1"] = statistics.fmean(vals) if vals else None
        rows.append(row)

    for score in ("top1", "loss", "auc"):
        def values(labels: list[str], score: str = score) -> tuple[list[str], list[list[float]]]:
            """The patterns every run of `labels` scored, and their scores per run."""
            kept, out = [], []
            for _, p in pats:
                v = [score_of(by.get((lb, p), {}), score) for lb in labels]
                if all(x is not None for x in v):
                    kept.append(p)
                    out.append(v)
            return kept, out

        s: dict = {}
        ref_p, ref_v = values(ref_labels)
        if len(ref_p) >= 3:
            s["ref"] = dict(patterns=len(ref_p), **(split_half(ref_v) or {}), **(spread_over_noise(ref_v) or {}))
            if anova := variance_components(ref_v):  # the paired reliability, and the seeds a target would take
                s["ref"] |= dict(icc=anova["icc"], seeds_per_half_tau_07=anova["seeds_per_half_tau_0.7"])
            ref_mean = dict(zip(ref_p, (statistics.fmean(v) for v in ref_v), strict=True))
            best = max(ref_mean, key=ref_mean.get)
            linear = next((p for n, p in pats if n == "all-linear"), None)
            if linear in ref_mean and score == "top1":
                s["ref"]["best_minus_all_linear_points"] = 100 * (ref_mean[best] - ref_mean[linear])
                s["ref"]["best"] = names[best]
        for n in cfg_proxies:
            pp, pv = values(groups[n])
            common = [p for p in pp if len(ref_p) >= 3 and p in ref_mean]
            if len(common) < 3:
                continue
            pm = {p: statistics.fmean(v) for p, v in zip(pp, pv, strict=True)}
            a, b = [pm[p] for p in common], [ref_mean[p] for p in common]
            lo, hi = bootstrap_tau(a, b)
            s[n] = dict(patterns=len(common), tau_vs_ref_mean=kendall_tau(a, b), tau_90=[lo, hi],
                        top5_overlap=top_k_overlap(a, b), **(split_half(pv) or {}))
        summary[score] = s

    # compute: GPU-seconds per pattern (a pack's train time shared by its patterns) and samples
    def cost(labels: list[str], cfg) -> dict:
        secs = [by[(lb, p)].get("train_s", 0) / max(1, by[(lb, p)].get("packed", 1))
                for lb in labels for _, p in pats if (lb, p) in by]
        n_pat = len({p for lb in labels for _, p in pats if (lb, p) in by}) or 1
        return dict(gpu_s_per_pattern=sum(secs) / n_pat, samples_per_pattern=cfg.steps * cfg.batch_size * len(labels),
                    width=cfg.width)

    ref_cost = cost(ref_labels[:1], cfg_ref)
    costs = {"ref (one run)": ref_cost} | {n: cost(groups[n], c) for n, c in cfg_proxies.items()}
    for c in costs.values():
        c["vs_one_ref_run_gpu_s"] = c["gpu_s_per_pattern"] / ref_cost["gpu_s_per_pattern"] \
            if ref_cost["gpu_s_per_pattern"] else None
        c["vs_one_ref_run_samples"] = c["samples_per_pattern"] / ref_cost["samples_per_pattern"]

    rows.sort(key=lambda r: -(r.get("ref top1") or 0))
    table(rows, ["name", "pattern", "softmax", *[f"{g} top1" for g in groups]])
    per_group = _per_group_table(by, pats, ref_labels)
    if per_group:
        print("reference mean top-1 by difficulty (recall: pairs):")
        table(per_group[0], per_group[1])
    for score, s in summary.items():
        print(f"--- ranked by val {score}")
        for who, d in s.items():
            print(f"{who:<10} " + "  ".join(f"{k} {_fmt(v)}" for k, v in d.items()))
    print("--- compute per pattern")
    for who, c in costs.items():
        print(f"{who:<14} " + "  ".join(f"{k} {_fmt(v)}" for k, v in c.items()))
    failed = [d for d in done if d["result"].get("status") != "ok"]
    print(f"{len(done)} runs in packs of {args.pack} on {len(devs)} device(s) x {args.per_gpu} in {wall:.0f}s; "
          f"{len(failed)} failed. Targets: split-half tau >= 0.7, spread/seed >= 3, proxy tau >= 0.6 at <= 1/8 "
          f"of a reference run")
    write_json(args.out, dict(bench="proxy_fidelity", env=env_info(), wall_s=round(wall, 1), devices=devs,
                              per_device=args.per_gpu, pack=args.pack, variant=args.variant, budget=args.budget,
                              summary=summary, costs=costs, rows=rows, ref_config=cfg_ref.to_dict(),
                              proxy_configs={n: c.to_dict() for n, c in cfg_proxies.items()}, runs=done))


def _per_group_table(by, pats, ref_labels) -> tuple[list[dict], list[str]] | None:
    """Reference seed-mean top-1 per difficulty group for each pattern (a few columns)."""
    rows = []
    keys: list[str] = []
    for name, p in pats:
        gs = [by.get((lb, p), {}).get("val_by_group") for lb in ref_labels]
        gs = [g for g in gs if g]
        if not gs:
            continue
        keys = sorted(gs[0], key=int)
        rows.append(dict(name=name, **{k: statistics.fmean(g[k] for g in gs) for k in keys}))
    if not rows:
        return None
    shown = keys if len(keys) <= 8 else [keys[round(i * (len(keys) - 1) / 7)] for i in range(8)]
    return rows, ["name", *shown]


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.3f}"
    if isinstance(v, list):
        return "[" + ", ".join(_fmt(x) for x in v) + "]"
    return str(v)


if __name__ == "__main__":
    main()

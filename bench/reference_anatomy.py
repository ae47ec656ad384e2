"""Where a fidelity reference's placement signal lies, and whether more seeds can reach it (issue 13).

Reads a `bench/proxy_fidelity.py` record with a reference of several seeds (`ref/s*` runs; another group
of seeds with `--group`), or a `sola-search calibrate` records file (`*.records.jsonl`, one rung:
`--steps`); CPU only, no training. Splits each score's variance over (pattern, seed) into the pattern's
share, the seed's common share (within a seed every pattern starts from the same weights and sees the
same batches: it moves no ranking) and the residual (two-way ANOVA without replication). From them: the
paired single-seed reliability (ICC: pattern variance over pattern plus residual), the split-half tau it
implies for halves of k seeds (Spearman-Brown, tau = (2/pi)·arcsin r) and the seeds per half that a
split-half tau of 0.6 or 0.7 would take. Scores: final top-1, validation loss, the area under the top-1
curve (as proxy_fidelity), and two of learning speed: the step at which the validation top-1 first
passes halfway from the runs' mean first value to their best last value (`val_jump`) and the step at
which the training loss first falls halfway from the runs' mean first logged value to their lowest
(`loss_jump`, 48-step resolution at 2,400 steps); one target for every run, so a run that never learns
never passes it and counts as passing at its last step (censored). The speed scores are negated, so
higher is better for all.

Then the binary features "a softmax block in stage k": each one's tau against the reference mean, and
every score's ICC within the two groups of the strongest one. A score whose pattern variance vanishes
within those groups carries that one feature and nothing else: no count of seeds ranks further.

    python bench/reference_anatomy.py docs/measurements/2026-12-01-s12/ref24x4.json \\
        --out docs/measurements/2026-12-01-s12/ref24x4-anatomy.json
    python bench/reference_anatomy.py docs/measurements/2026-11-30-s9/calib-fmnist.records.jsonl --steps 300
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

from proxy_fidelity import score_of

from sola_search.results.fidelity import (
    bootstrap_tau,
    kendall_tau,
    split_half,
    tau_of_r,
    top_k_overlap,
    variance_components,
)


def _crossing(curve: list[list[float]], target: float, falling: bool) -> float | None:
    """The first step (linearly interpolated between logged points) at which `curve` passes `target`."""
    for (s0, v0), (s1, v1) in zip(curve, curve[1:], strict=False):
        if (v1 <= target if falling else v1 >= target) and v1 != v0:
            return s0 + (target - v0) / (v1 - v0) * (s1 - s0)
    return None


def targets(results: list[dict]) -> dict[str, float]:
    """The halfway marks of the speed scores, one for every run of the record."""
    ok = [r for r in results if r.get("status") == "ok"]
    val = [r for r in ok if len(r.get("val_curve") or []) >= 2]
    train = [r for r in ok if len(r.get("train_curve") or []) >= 2]
    out = {}
    if val:
        out["val_jump"] = (statistics.fmean(r["val_curve"][0][1] for r in val) + max(r["val_top1"] for r in val)) / 2
    if train:
        out["loss_jump"] = (statistics.fmean(r["train_curve"][0][1] for r in train)
                            + min(v for r in train for _, v in r["train_curve"])) / 2
    return out


def score(result: dict, name: str, marks: dict[str, float]) -> float | None:
    """A run's score, higher better; None where the run has none (failed, or no curve)."""
    if name in ("top1", "loss", "auc"):
        return score_of(result, name)  # as proxy_fidelity ranks them
    if result.get("status") != "ok":
        return None
    if name in ("val_jump", "loss_jump"):
        curve = result.get("val_curve" if name == "val_jump" else "train_curve") or []
        if len(curve) < 2 or name not in marks:
            return None
        step = _crossing(curve, marks[name], falling=name == "loss_jump")
        return -(curve[-1][0] if step is None else step)
    raise ValueError(name)


SCORES = ("top1", "loss", "auc", "val_jump", "loss_jump")


def components(values: list[list[float]]) -> dict | None:
    """`variance_components`, and the split-half tau its ICC projects for halves of k seeds."""
    out = variance_components(values)
    if out is None:
        return None
    icc = out["icc"]
    out |= dict(patterns=len(values), seeds=len(values[0]))
    for m in (len(values[0]) // 2, 8, 32):
        out[f"tau_halves_of_{m}"] = tau_of_r(icc * m / (1 + (m - 1) * icc)) if icc > 0 else 0.0
    return out


def reference_runs(path: str, steps: int | None, group: str = "ref") -> list[dict]:
    """The reference's runs as proxy_fidelity records them: label (`ref/sSEED`), pattern, result. A
    `bench/supernet_fidelity.py` record reads as one run per pattern (label `supernet`)."""
    if not path.endswith(".jsonl"):
        record = json.loads(Path(path).read_text())
        if record.get("bench") == "supernet_fidelity":
            return [dict(label="supernet", pattern=p, result=dict(r, status="ok"))
                    for p, r in record["scores"].items()]
        return [r for r in record["runs"] if r["label"] == group or r["label"].startswith(f"{group}/")]
    recs = [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]
    rungs = sorted({r["steps"] for r in recs})
    if steps not in rungs:
        sys.exit(f"{path}: give --steps, one of the rungs {', '.join(map(str, rungs))}")
    return [dict(label=f"ref/s{r['seed']}", pattern=r["pattern"], result=r) for r in recs if r["steps"] == steps]


def against(runs: list[dict], other: list[dict]) -> dict[str, dict]:
    """Kendall tau between two references' seed means over the patterns both scored, by top-1 and by
    loss: whether two settings (steps, geometry), or a proxy and a reference, rank the patterns alike.
    Per score: tau, its bootstrap 90 % interval over patterns, top-5 overlap, patterns."""
    def means(rs: list[dict], name: str) -> dict[str, float]:
        by: dict[str, list[float]] = {}
        for r in rs:
            if (v := score_of(r["result"], name)) is not None:
                by.setdefault(r["pattern"], []).append(v)
        return {p: statistics.fmean(v) for p, v in by.items()}

    out = {}
    for name in ("top1", "loss"):
        a, b = means(runs, name), means(other, name)
        common = sorted(set(a) & set(b))
        x, y = [a[p] for p in common], [b[p] for p in common]
        out[name] = dict(tau=kendall_tau(x, y), tau_90=list(bootstrap_tau(x, y)), top5_overlap=top_k_overlap(x, y),
                         patterns=len(common))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("record", help="a proxy_fidelity record with a reference of 2+ seeds, or calibration records")
    ap.add_argument("--steps", type=int, help="the rung of a calibration records file")
    ap.add_argument("--group", default="ref", help="the runs of a proxy_fidelity record to read (default ref)")
    ap.add_argument("--against", metavar="RECORD", help="another reference of the same patterns (its own "
                    "--against-group or --against-steps), or a supernet_fidelity record: tau between the two "
                    "seed means, by top-1 and by loss, with a bootstrap 90%% interval and top-5 overlap")
    ap.add_argument("--against-group", default="ref", help="the runs of --against to read (default ref)")
    ap.add_argument("--against-steps", type=int, help="the rung of --against when it is calibration records")
    ap.add_argument("--out", help="write the figures as JSON here")
    args = ap.parse_args()
    runs = reference_runs(args.record, args.steps, args.group)
    labels = sorted({r["label"] for r in runs})
    by = {(r["label"], r["pattern"]): r["result"] for r in runs}
    pats = sorted({r["pattern"] for r in runs})
    marks = targets([r["result"] for r in runs])
    print(f"{args.record}: {len(pats)} patterns x {len(labels)} reference seeds")

    def table(name: str, keep: list[str]) -> tuple[list[str], list[list[float]]]:
        rows = [(p, [score(by.get((lb, p), {}), name, marks) for lb in labels]) for p in keep]
        rows = [(p, v) for p, v in rows if all(x is not None for x in v)]
        return [p for p, _ in rows], [v for _, v in rows]

    report: dict = dict(record=args.record, patterns=len(pats), seeds=len(labels), marks=marks, scores={},
                        features={})
    print("halfway marks: " + ", ".join(f"{k} {v:.3f}" for k, v in marks.items()))
    print(f"{'score':<10} {'patterns':>8} {'pattern sd':>11} {'seed sd':>9} {'resid sd':>9} {'ICC':>5} "
          f"{'split-half':>10} {'tau 8+8':>7} {'tau 32+32':>9} {'seeds/half tau .6':>17} {'.7':>5}")
    for name in SCORES:
        kept, values = table(name, pats)
        c = components(values)
        if c is None:
            continue
        c["split_half_tau"] = (split_half(values) or {}).get("split_half_tau")
        report["scores"][name] = c
        print(f"{name:<10} {c['patterns']:>8} {c['pattern_sd']:>11.4g} {c['seed_sd']:>9.4g} {c['residual_sd']:>9.4g} "
              f"{c['icc']:>5.2f} {c['split_half_tau'] or float('nan'):>10.2f} {c['tau_halves_of_8']:>7.2f} "
              f"{c['tau_halves_of_32']:>9.2f} {c['seeds_per_half_tau_0.6'] or '-':>17} "
              f"{c['seeds_per_half_tau_0.7'] or '-':>5}")

    kept, values = table("top1", pats)
    means = {p: statistics.fmean(v) for p, v in zip(kept, values, strict=True)}
    stages = len(pats[0].split("-"))
    feats = {}
    for k in range(stages):
        has = [float("S" in p.split("-")[k]) for p in kept]
        if 0 < sum(has) < len(has):
            feats[k + 1] = kendall_tau(has, [means[p] for p in kept])
    report["features"] = {f"softmax_in_stage_{k}": t for k, t in feats.items()}
    print("tau of 'a softmax block in stage k' against the reference's mean top-1: "
          + ", ".join(f"stage {k} {t:+.2f}" for k, t in feats.items()))
    if feats:
        best = max(feats, key=lambda k: abs(feats[k]))
        within = {}
        for has in (True, False):
            group = [p for p in pats if ("S" in p.split("-")[best - 1]) == has]
            for name in SCORES:
                c = components(table(name, group)[1])
                if c is not None:
                    within.setdefault(name, {})["with" if has else "without"] = c
        report["within_groups"] = dict(stage=best, scores=within)
        print(f"within the two groups of stage {best} (with a softmax block / without): ICC, pattern sd")
        for name, parts in within.items():
            print(f"  {name:<10} " + "   ".join(f"{g}: ICC {c['icc']:.2f}, pattern sd {c['pattern_sd']:.4g} "
                                             f"({c['patterns']} patterns)" for g, c in parts.items()))
    if args.against:
        report["against"] = dict(record=args.against, taus=against(runs, reference_runs(
            args.against, args.against_steps, args.against_group)))
        print(f"tau of seed means against {args.against}: " + ", ".join(
            f"{k} {t['tau']:+.2f} (90% {t['tau_90'][0]:+.2f} to {t['tau_90'][1]:+.2f}; top-5 overlap "
            f"{t['top5_overlap']}; {t['patterns']} patterns)" for k, t in report["against"]["taus"].items()))
    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=1) + "\n")
        print(f"wrote {args.out}")


if __name__ == "__main__":
    sys.exit(main())

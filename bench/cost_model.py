"""How fast the analytic cost model prices patterns, and the params/GMACs table of every variant.

    .venv/bin/python bench/cost_model.py [--patterns 100000] [--loop-sample 2000] [--out bench/out/cost_model.json]

Two ways to cost the same random patterns, in one run: `cost_table(...).macs_many` on a (P, blocks)
0/1 matrix (one matrix-vector product), and, as the peer, a Python loop of `CostTable.macs(pattern)`
over a sample of them (Pattern objects built beforehand, so only costing is timed). Both must agree.
Then the table the issue's closing note asks for: params and GMACs of every variant with all-linear,
late-stages and all-softmax at 224² and 512². CPU only; no torch model is built.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from datetime import date
from pathlib import Path

import numpy as np

from sola_search.space import VARIANTS, Pattern, baseline, cost_table, model_cost

LAYOUTS = ("all-linear", "late-stages", "all-softmax")
RESOLUTIONS = (224, 512)


def best_of(fn, repeats: int) -> float:
    """The fastest of `repeats` timed calls, in seconds (the least disturbed by other processes)."""
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def bench_variant(variant: str, resolution: int, n: int, loop_sample: int, repeats: int, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    v = VARIANTS[variant]
    bits = rng.integers(0, 2, (n, v.num_blocks), dtype=np.int8)
    t0 = time.perf_counter()
    cost_table.cache_clear()
    table = cost_table(variant, resolution)
    table_s = time.perf_counter() - t0

    vec_s = best_of(lambda: table.macs_many(bits), repeats)
    macs = table.macs_many(bits)

    sample = [Pattern.from_bits(b, v) for b in bits[:loop_sample]]
    loop_s = best_of(lambda: [table.macs(p) for p in sample], max(1, repeats // 2))
    looped = [table.macs(p) for p in sample]
    if looped != macs[:loop_sample].tolist():
        raise SystemExit(f"{variant}: macs_many and per-pattern macs disagree")

    vec_rate, loop_rate = n / vec_s, loop_sample / loop_s
    return dict(variant=variant, resolution=resolution, blocks=v.num_blocks, patterns=n, table_build_s=table_s,
                macs_many_s=vec_s, macs_many_patterns_per_s=vec_rate, loop_sample=loop_sample, loop_s=loop_s,
                loop_patterns_per_s=loop_rate, speedup=vec_rate / loop_rate,
                loop_projected_s_for_all=n / loop_rate)


def variant_table() -> list[dict]:
    rows = []
    for variant in VARIANTS:
        for resolution in RESOLUTIONS:
            for layout in LAYOUTS:
                p = baseline(layout, variant)
                c = model_cost(variant, p, resolution)
                rows.append(dict(variant=variant, resolution=resolution, layout=layout, pattern=str(p),
                                 softmax_layers=p.softmax_layers, params=c.params, macs=c.macs,
                                 mparams=round(c.mparams, 2), gmacs=round(c.gmacs, 3)))
    return rows


def machine() -> dict:
    import torch

    return dict(python=platform.python_version(), numpy=np.__version__, torch=torch.__version__,
                cpu_count=os.cpu_count(), processor=platform.processor() or platform.machine(),
                platform=platform.platform(), loadavg_1m=os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
                date=date.today().isoformat())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--patterns", type=int, default=100_000, help="random patterns per variant (default 100000)")
    ap.add_argument("--loop-sample", type=int, default=2_000, help="patterns costed one at a time (default 2000)")
    ap.add_argument("--resolution", type=int, default=224)
    ap.add_argument("--repeats", type=int, default=7, help="timed repeats; the fastest is reported")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=Path("bench/out/cost_model.json"))
    args = ap.parse_args(argv)

    speed = [bench_variant(v, args.resolution, args.patterns, args.loop_sample, args.repeats, args.seed)
             for v in ("small", "base")]
    table = variant_table()
    env = machine()

    print(f"cost model speed at {args.resolution}px   (python {env['python']}, torch {env['torch']}, numpy "
          f"{env['numpy']}, {env['cpu_count']} CPUs, load {env['loadavg_1m']:.1f})")
    print(f"{'variant':<8}{'blocks':>7}{'patterns':>10}{'macs_many':>12}{'patterns/s':>14}"
          f"{'loop (n)':>14}{'patterns/s':>13}{'ratio':>8}")
    for r in speed:
        print(f"{r['variant']:<8}{r['blocks']:>7}{r['patterns']:>10,}{r['macs_many_s'] * 1e3:>10.2f}ms"
              f"{r['macs_many_patterns_per_s']:>14,.0f}{r['loop_s'] * 1e3:>9.1f}ms ({r['loop_sample']})"
              f"{r['loop_patterns_per_s']:>10,.0f}{r['speedup']:>7,.0f}x")
    print()
    print("params and GMACs (MACs = FlopCounterMode/2), full models")
    header = "".join(f"{f'{lay} {res}²':>20}" for res in RESOLUTIONS for lay in LAYOUTS)
    print(f"{'variant':<8}{'params':>9}{header}")
    for variant in VARIANTS:
        rows = [r for r in table if r["variant"] == variant]
        cells = "".join(f"{r['gmacs']:>20.3f}" for res in RESOLUTIONS for r in rows if r["resolution"] == res)
        print(f"{variant:<8}{rows[0]['mparams']:>8.2f}M{cells}")

    args.out.parent.mkdir(parents=True, exist_ok=True)
    result = dict(command=" ".join([Path(sys.executable).name, *sys.argv]), machine=env, speed=speed,
                  variant_table=table)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

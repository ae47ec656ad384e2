"""Does a proxy task (a data source: `recall`, a dataset) separate token-mixer placements at all? A
few hand-picked patterns (all linear, all softmax, softmax early, softmax late) trained together on
it (one pack: the same batches) with validation top-1 along the way.
Cheap enough for a CPU at micro scale; a screen before spending device time on the fidelity benchmark.

    python bench/task_probe.py --data recall --set variant=micro width=0.5 resolution=48 batch_size=128 \
        steps=1500 warmup_steps=100 device=cpu eval_every=500
    python bench/task_probe.py --smoke

(Its `--task` option, the mosaic tasks `pointer`, `sum` and `match` that docs/performance.md's
earlier probes ran, left with them; `--task classify` was the dataset itself, now the default.)
"""

from __future__ import annotations

import argparse

from proxy_common import common_args, env_info, overrides, preset, table, write_json

from sola_search.proxies import train_proxies
from sola_search.space import get_variant


def placements(variant: str) -> dict[str, str]:
    """all-linear, all-softmax, softmax in stages 1-2 only, softmax in stages 3-4 only."""
    depths = get_variant(variant).depths

    def pattern(softmax_stages: set[int]) -> str:
        return "-".join(("S" if i in softmax_stages else "L") * d for i, d in enumerate(depths))

    return {"all-linear": pattern(set()), "all-softmax": pattern({0, 1, 2, 3}),
            "early (stages 1-2)": pattern({0, 1}), "late (stages 3-4)": pattern({2, 3})}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    common_args(ap, "task_probe")
    args = ap.parse_args()
    cfg = preset("default", overrides(args))
    rows = []
    chosen = placements(cfg.variant)
    for (name, p), r in zip(chosen.items(), train_proxies(list(chosen.values()), cfg), strict=True):
        rows.append(dict(placement=name, pattern=p, status=r.status, val_top1=r.val_top1, val_loss=r.val_loss,
                         curve=r.val_curve, train_s=r.train_s))
        print(f"{name}: {r.status} top-1 {r.val_top1} curve {r.val_curve}", flush=True)
    table(rows, ["placement", "pattern", "val_top1", "val_loss", "train_s"])
    write_json(args.out, dict(bench="task_probe", env=env_info(), config=cfg.to_dict(), rows=rows))


if __name__ == "__main__":
    main()

"""One pattern, one seed, each execution mode of `train_proxy` in turn in one process: does the
whole-step CUDA graph train exactly what eager does, how fast, and what do the phases cost once
the process is warm (the second graph run) — plus the same run without augmentation.

    python bench/proxy_modes.py --data fashion-mnist:DIR [--pattern last-8]
    python bench/proxy_modes.py --smoke
"""

from __future__ import annotations

import argparse

from proxy_common import common_args, env_info, overrides, preset, table, write_json

from sola_search.proxies import load_proxy_data, train_proxy


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    common_args(ap, "proxy_modes")
    ap.add_argument("--pattern", default="last-8")
    args = ap.parse_args()
    cfg = preset("default", overrides(args))
    data = load_proxy_data(cfg)
    runs = [("graphs (first in process)", cfg), ("eager", cfg.replace(cuda_graphs=False)),
            ("graphs (warm process)", cfg), ("graphs, no augmentation", cfg.replace(augment=False))]
    rows = []
    for name, c in runs:
        r = train_proxy(args.pattern, c, data)
        rows.append(dict(run=name, mode=r.mode, status=r.status, val_top1=r.val_top1, val_loss=r.val_loss,
                         images_per_s=r.images_per_s, train_s=r.train_s, wall_s=r.wall_s, **r.phases,
                         notes=r.notes or r.reason))
        print(f"{name}: {r.status} {r.mode} top-1 {r.val_top1} {r.images_per_s} img/s", flush=True)
    table(rows, ["run", "mode", "val_top1", "val_loss", "images_per_s", "train_s", "wall_s", "build", "capture",
                 "eval", "cleanup"])
    same = rows[0]["val_top1"] == rows[1]["val_top1"] and rows[0]["val_loss"] == rows[1]["val_loss"]
    print(f"graphs and eager give the same validation top-1 and loss: {same}")
    write_json(args.out, dict(bench="proxy_modes", env=env_info(), config=cfg.to_dict(), pattern=args.pattern,
                              rows=rows, graphs_equal_eager=same))


if __name__ == "__main__":
    main()

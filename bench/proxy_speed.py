"""Speed of the proxy: `train_proxy` against the plain PyTorch loop a user would write.

Same model, same GPU, same steps, same batch size, one after the other in one process:
  proxy          train_proxy as the search runs it (uint8 data on the GPU, augmentation there, bf16,
                 channels_last, CUDA graphs, fused AdamW, no per-step host sync)
  proxy-eager    the same without CUDA graphs (what the graphs buy)
  plain          DataLoader over CPU float tensors (shuffle, pinned, workers), fp32, eager,
                 AdamW, loss.item() every step; no augmentation (which only favours it)
Images/s of each loop and the ratio to plain (target >= 3x); achieved TFLOP/s from
FlopCounterMode (MATH SDPA backend) with forward+backward = 3x forward, against 790 TFLOP/s
(H200 bf16 dense).

    python bench/proxy_speed.py --data fashion-mnist:DIR [--steps 300] [--pattern last-8]
    python bench/proxy_speed.py --smoke
"""

from __future__ import annotations

import argparse
import math
import time

import torch
from proxy_common import common_args, env_info, overrides, plain_train, preset, table, write_json
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.data import DataLoader, TensorDataset
from torch.utils.flop_counter import FlopCounterMode

from sola_search.proxies import ProxyConfig, load_data, train_proxy
from sola_search.space import build_backbone, cost_table, get_variant, resolve_pattern

PEAK_TFLOPS = 790.0  # H200 bf16 dense, the figure the issue quotes (8192³ matmul measured 791)


def forward_flops_per_image(cfg: ProxyConfig, pattern, num_classes: int, channels: int) -> tuple[float, float]:
    """(FlopCounterMode forward FLOPs per image under the MATH SDPA backend, analytic 2×MACs)."""
    model = build_backbone(cfg.variant, pattern, width=cfg.width, num_classes=num_classes, in_chans=channels)
    x = torch.zeros(2, channels, cfg.resolution, cfg.resolution)
    with sdpa_kernel([SDPBackend.MATH]), FlopCounterMode(display=False) as fc, torch.no_grad():
        model(x)
    v = get_variant(cfg.variant).scaled(cfg.width)
    analytic = 2 * cost_table(v, cfg.resolution, num_classes, channels).macs(pattern)
    return fc.get_total_flops() / 2, float(analytic)


def plain_loop(pattern, cfg: ProxyConfig, data, workers: int) -> dict:
    """The loop a user would write first: CPU tensors through a DataLoader, fp32, eager."""
    dev = data.device
    xs = data.train_x.cpu().float().div_(255)
    mean = torch.tensor(data.mean).view(1, -1, 1, 1)
    std = torch.tensor(data.std).view(1, -1, 1, 1)
    ds = TensorDataset((xs - mean) / std, data.train_y.cpu())
    loader = DataLoader(ds, batch_size=cfg.batch_size, shuffle=True, drop_last=True, num_workers=workers,
                        pin_memory=dev.type == "cuda", persistent_workers=workers > 0)
    t_setup = time.perf_counter()
    _, losses, step, train_s = plain_train(pattern, cfg, loader, data.num_classes, data.channels, dev)
    return dict(status="ok" if math.isfinite(losses[-1]) else "nan", train_s=round(train_s, 3),
                wall_s=round(time.perf_counter() - t_setup, 3), steps=step,
                images_per_s=round(step * cfg.batch_size / train_s, 1), final_loss=losses[-1], mode="plain fp32 eager")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    common_args(ap, "proxy_speed")
    ap.add_argument("--preset", default="default")
    ap.add_argument("--pattern", default="last-8", help="pattern or baseline name (default last-8)")
    ap.add_argument("--steps", type=int, default=300, help="steps of each loop (default 300)")
    ap.add_argument("--workers", type=int, default=4, help="DataLoader workers of the plain loop")
    ap.add_argument("--compile", action="store_true", help="also time train_proxy with the other compile mode "
                    "(off when the preset compiles its blocks, else blocks)")
    args = ap.parse_args()

    over = overrides(args)
    cfg = preset(args.preset, over, steps=args.steps if not args.smoke else over["steps"])
    if args.smoke:
        args.workers = 0
    pattern = resolve_pattern(args.pattern, cfg.variant)
    data = load_data(cfg.data, cfg.resolution, cfg.device, cfg.val_fraction, cfg.split_seed)
    fwd, analytic = forward_flops_per_image(cfg, pattern, data.num_classes, data.channels)
    train_flops = 3 * fwd  # forward + backward ≈ 3 × forward
    print(f"{pattern} {cfg.variant} x{cfg.width} {cfg.resolution}px batch {cfg.batch_size}, {cfg.steps} steps, "
          f"on {data.device}; forward {fwd / 1e6:.1f} MFLOP/image (analytic 2xMACs {analytic / 1e6:.1f})")

    runs = {}
    train_proxy(pattern, cfg.replace(steps=min(20, cfg.steps)), data)  # warm-up: CUDA context, cuDNN autotune
    runs["proxy"] = train_proxy(pattern, cfg, data).to_dict()
    runs["proxy-eager"] = train_proxy(pattern, cfg.replace(cuda_graphs=False, compile="off"), data).to_dict()
    if args.compile:
        other = "off" if cfg.compile == "blocks" else "blocks"
        runs[f"proxy-compile-{other}"] = train_proxy(pattern, cfg.replace(compile=other), data).to_dict()
    runs["plain"] = plain_loop(pattern, cfg, data, args.workers)

    base = runs["plain"]["images_per_s"]
    rows = []
    for name, r in runs.items():
        ips = r.get("images_per_s") or 0.0
        rows.append(dict(loop=name, status=r["status"], mode=r.get("mode"), images_per_s=ips,
                         vs_plain=ips / base if base else None, train_s=r.get("train_s"), wall_s=r.get("wall_s"),
                         tflops=ips * train_flops / 1e12, pct_of_peak=100 * ips * train_flops / 1e12 / PEAK_TFLOPS,
                         val_top1=r.get("val_top1"), notes=r.get("notes") or r.get("reason") or ""))
    table(rows, ["loop", "status", "mode", "images_per_s", "vs_plain", "train_s", "wall_s", "tflops", "pct_of_peak",
                 "val_top1", "notes"])
    print(f"speed-up of train_proxy over the plain loop: {rows[0]['vs_plain']:.2f}x (target >= 3x)")
    write_json(args.out, dict(bench="proxy_speed", env=env_info(), pattern=str(pattern), config=cfg.to_dict(),
                              forward_flops_per_image=fwd, analytic_forward_flops_per_image=analytic,
                              train_flops_per_image=train_flops, peak_tflops=PEAK_TFLOPS, rows=rows, runs=runs))


if __name__ == "__main__":
    main()

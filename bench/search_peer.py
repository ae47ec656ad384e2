"""The hand-wired peer of `sola-search run` (issue 6): the search a user would wire by hand with Ray
Tune, its `OptunaSearch` and a plain PyTorch loop, measured as bench/search_run.py measures ours:
trials per hour over the span first trial start → last trial end, GPU utilization (nvidia-smi every
second over that span), median trial wall time and per-trial overhead (trial wall minus training
loop), mean/median/best validation top-1.

    python bench/search_peer.py --data fashion-mnist:DIR --trials 16 [--budget 8] [--gpus-per-trial 0.25]
    python bench/search_peer.py --smoke      # 3 micro trials on the CPU

The peer, as a user writes it:
- search space: `param_space` of one `tune.choice(["L", "S"])` per block (s1b1 … s4b3), handed to
  `OptunaSearch(metric="val_top1", mode="max")` (its default TPE, seeded). The budget is the check a
  user adds in the trainable. By default (`--over-budget repair`) a pattern with more softmax blocks
  than `--budget` keeps its first `budget` softmax blocks and the rest become linear, so every trial
  trains a feasible pattern (the fair peer: no Tune trial is wasted). `--over-budget skip` reports
  val_top1=0, trained=False at once instead: the first wiring a user tries; its cost (each skipped
  trial is a Tune trial with a fresh actor) is then part of what is measured. Throughput counts only
  trained trials; the span covers every trial.
- the proxy budget of the `default` preset (small, width 0.5, 64 px, 300 steps, batch 256; `--set`
  overrides): same `build_backbone`, lr schedule (`lr_at`), AdamW lr/weight decay (on every
  parameter, as `AdamW(model.parameters())` does), label smoothing, grad clip, seed; the same
  validation split, loaded ONCE on the driver and shared through `tune.with_parameters`.
- a plain loop: CPU float tensors through a DataLoader (shuffle, drop_last, pinned on CUDA,
  `--workers` processes), fp32, eager, `loss.item()` at logging points; the proxy's augmentation
  (random crop with padding, horizontal flip) as torchvision transforms per sample in the DataLoader
  workers, as a user writes it (`--set augment=False` turns it off); top-1 on the
  validation split at the end.
- Tune defaults otherwise: one fresh actor per trial (reuse_actors=False), `--gpus-per-trial` 0.25
  (4 trials at once per GPU); on a machine without a GPU, 0 GPUs and 1 CPU per trial.
Timings come from the trainable's own time.time() stamps: a trial's wall starts once Tune has
started its actor and fetched the shared data, so the actor start shows in the span and in
slot_busy_fraction (time inside trainables / (concurrent trials x span)), not in the overhead.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout without installing

import torch  # noqa: E402
from proxy_common import common_args, env_info, overrides, plain_train, preset, table, write_json  # noqa: E402
from search_run import gpu_use, read_samples, sample_gpus  # noqa: E402
from torch.utils.data import DataLoader, TensorDataset  # noqa: E402

from sola_search.proxies import ProxyConfig, load_data  # noqa: E402
from sola_search.space import get_variant  # noqa: E402


def block_names(variant: str) -> list[list[str]]:
    return [[f"s{i}b{j}" for j in range(1, d + 1)] for i, d in enumerate(get_variant(variant).depths, 1)]


class Augmented(torch.utils.data.Dataset):
    """Random crop (zero padding of 1/8 of the size, as the proxy pads its uint8 images) and
    horizontal flip of each sample, as torchvision's transforms do in a user's Dataset."""

    def __init__(self, base: TensorDataset, size: int, fill: list[float]):
        from torchvision.transforms import v2

        self.base = base
        self.tf = v2.Compose([v2.RandomCrop(size, padding=max(1, size // 8), fill=fill[0] if len(fill) == 1 else fill),
                              v2.RandomHorizontalFlip()])

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, i: int):
        x, y = self.base[i]
        return self.tf(x), y


def train_pattern(config: dict, cfg: ProxyConfig, data: dict, budget: int, device: str, workers: int,
                  over_budget: str = "repair") -> None:
    """The Tune trainable: one pattern, trained by a plain loop, scored on the validation split."""
    from ray import tune

    t_start = time.time()
    pattern = "-".join("".join(config[n] for n in stage) for stage in block_names(cfg.variant))
    softmax = pattern.count("S")
    if softmax > budget and over_budget == "repair":  # keep the first `budget` softmax blocks, the rest linear
        out, kept = [], 0
        for ch in pattern:
            kept += ch == "S"
            out.append("L" if ch == "S" and kept > budget else ch)
        pattern, softmax = "".join(out), budget
    if softmax > budget:  # the user's budget check: report a zero and skip the training
        tune.report(dict(val_top1=0.0, trained=False, pattern=pattern, softmax=softmax, t_start=t_start,
                         t_end=time.time(), train_s=0.0))
        return
    dev = torch.device(device)
    mean = torch.tensor(data["mean"]).view(1, -1, 1, 1)
    std = torch.tensor(data["std"]).view(1, -1, 1, 1)
    train_x = data["train_x"]
    ds = TensorDataset((train_x.float().div_(255) - mean) / std, data["train_y"])
    if cfg.augment:  # the proxy's recipe the usual way: torchvision transforms per sample in the workers
        ds = Augmented(ds, train_x.shape[-1], (-mean / std).flatten().tolist())
    loader = DataLoader(ds, batch_size=cfg.batch_size, shuffle=True, drop_last=True, num_workers=workers,
                        pin_memory=dev.type == "cuda", persistent_workers=workers > 0)
    model, losses, step, train_s = plain_train(pattern, cfg, loader, data["num_classes"], train_x.shape[1], dev,
                                               item_every=max(1, cfg.steps // cfg.log_points))
    model.eval()
    correct, n_val = 0, data["val_x"].shape[0]
    with torch.no_grad():
        for i in range(0, n_val, cfg.eval_batch_size):
            x = ((data["val_x"][i : i + cfg.eval_batch_size].float() / 255 - mean) / std).to(dev)
            correct += (model(x).argmax(1).cpu() == data["val_y"][i : i + cfg.eval_batch_size]).sum().item()
    tune.report(dict(val_top1=correct / max(1, n_val), trained=True, pattern=pattern, softmax=softmax,
                     final_loss=losses[-1], steps=step, t_start=t_start, t_end=time.time(), train_s=train_s))


def trial_dirname(trial) -> str:  # the default name embeds every parameter
    return trial.trial_id


def progress_callback():
    """One line per finished trial instead of Tune's tables of every trial."""
    from ray import tune

    class Progress(tune.Callback):
        def on_trial_result(self, iteration, trials, trial, result, **info):
            top1 = f"top1={result['val_top1']:.4f} train={result['train_s']:.1f}s" if result["trained"] else "skipped"
            print(f"[{time.strftime('%H:%M:%S')}] {trial.trial_id} {result['pattern']} {top1}", flush=True)

    return Progress()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    common_args(ap, "search_peer")
    ap.add_argument("--trials", type=int, default=16, help="Tune trials (num_samples), skipped ones included")
    ap.add_argument("--budget", type=int, default=8, help="at most this many softmax blocks (default 8)")
    ap.add_argument("--over-budget", choices=("repair", "skip"), default="repair",
                    help="a proposal over the budget: repair it (softmax blocks past the budget become linear, "
                    "so every trial trains; the default, the fair peer) or skip it (report 0, train nothing)")
    ap.add_argument("--gpus-per-trial", type=float, default=0.25)
    ap.add_argument("--cpus-per-trial", type=float, default=None, help="default: 1 + --workers on a GPU, else 1")
    ap.add_argument("--workers", type=int, default=2, help="DataLoader worker processes per trial (default 2)")
    ap.add_argument("--seed", type=int, default=0, help="seed of OptunaSearch's TPE sampler")
    args = ap.parse_args()
    over = overrides(args)
    cfg = preset("default", over)
    if args.smoke:  # micro has 10 blocks: a budget of 6 makes some of the 3 trials skip, some train
        args.trials, args.workers, args.budget = 3, 0, min(args.budget, 6)
        args.over_budget = "skip"
    if cfg.qk_init:
        print(f"note: the peer does not apply qk_init={cfg.qk_init} (a proxy-only initialisation)")
    gpus = 0 if args.smoke else torch.cuda.device_count()
    gpt = args.gpus_per_trial if gpus else 0.0
    cpt = args.cpus_per_trial or ((1 + args.workers) if gpt else 1)
    concurrent = max(1, int(gpus / gpt) if gpt else int((os.cpu_count() or 1) // cpt))
    device = "cuda" if gpt else "cpu"

    import ray
    from ray import tune
    from ray.tune.search.optuna import OptunaSearch

    d = load_data(cfg.data, cfg.resolution, "cpu", cfg.val_fraction, cfg.split_seed)
    data = dict(train_x=d.train_x[: cfg.max_train], train_y=d.train_y[: cfg.max_train], val_x=d.val_x,
                val_y=d.val_y, mean=d.mean, std=d.std, num_classes=d.num_classes)
    print(f"peer: {cfg.variant} x{cfg.width} {cfg.resolution}px, {cfg.steps} steps x {cfg.batch_size}, "
          f"{args.trials} trials, at most {args.budget} softmax, {concurrent} at once "
          f"({gpt} GPU, {cpt} CPU each) on {device}; {data['train_x'].shape[0]} train / {d.val_x.shape[0]} val images",
          flush=True)
    # Workers of the local cluster inherit the driver's environment: let them import sola_search.
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    work = Path(tempfile.mkdtemp(prefix="search-peer-"))
    smi_path = Path(args.out).with_suffix(".smi.csv")
    smi_path.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    ray.init(address="local", include_dashboard=False, num_gpus=gpus, logging_level="WARNING")
    smi = sample_gpus(smi_path)
    try:
        space = {n: tune.choice(["L", "S"]) for stage in block_names(cfg.variant) for n in stage}
        trainable = tune.with_parameters(train_pattern, cfg=cfg, data=data, budget=args.budget, device=device,
                                         workers=args.workers, over_budget=args.over_budget)
        tuner = tune.Tuner(
            tune.with_resources(trainable, {"cpu": cpt, "gpu": gpt}),
            param_space=space,
            tune_config=tune.TuneConfig(search_alg=OptunaSearch(metric="val_top1", mode="max", seed=args.seed),
                                        num_samples=args.trials, max_concurrent_trials=concurrent,
                                        trial_dirname_creator=trial_dirname),
            run_config=tune.RunConfig(name="peer", storage_path=str(work), verbose=0,
                                      callbacks=[progress_callback()]),
        )
        t_fit = time.time()
        grid = tuner.fit()
    finally:
        if smi is not None:
            smi.terminate()
            smi.wait()
        ray.shutdown()
        shutil.rmtree(work, ignore_errors=True)
    wall = time.time() - t0

    res = sorted((r.metrics for r in grid if r.metrics and "t_start" in r.metrics), key=lambda m: m["t_start"])
    errors = [str(r.error).splitlines()[0] for r in grid if r.error]
    trained = [m for m in res if m["trained"]]
    rows = [dict(trial=i, pattern=m["pattern"], softmax=m["softmax"], trained=m["trained"],
                 val_top1=m["val_top1"] if m["trained"] else None, wall_s=m["t_end"] - m["t_start"],
                 train_s=m["train_s"] if m["trained"] else None) for i, m in enumerate(res)]
    table(rows, ["trial", "pattern", "softmax", "trained", "val_top1", "wall_s", "train_s"])
    if not trained:
        print(f"no trial trained ({len(res)} reported, {len(errors)} failed: {errors[:1]})")
        sys.exit(1)
    first, last = min(m["t_start"] for m in res), max(m["t_end"] for m in res)
    span = last - first
    walls = [m["t_end"] - m["t_start"] for m in trained]
    overhead = [w - m["train_s"] for w, m in zip(walls, trained, strict=True)]
    top1 = [m["val_top1"] for m in trained]
    all_samples = read_samples(smi_path)
    util, busy, n_samples = gpu_use(all_samples, first, last)
    util_fit, busy_fit, _ = gpu_use(all_samples, t_fit, last)
    summary = dict(
        wall_s=round(wall, 1), trials=len(res), trials_trained=len(trained), trials_skipped=len(res) - len(trained),
        trials_failed=len(errors), span_s=round(span, 1), trials_per_hour=round(len(trained) / span * 3600, 1),
        all_trials_per_hour=round(len(res) / span * 3600, 1),
        trial_wall_s_median=round(statistics.median(walls), 2),
        train_s_median=round(statistics.median(m["train_s"] for m in trained), 2),
        overhead_s_median=round(statistics.median(overhead), 2),
        overhead_fraction_median=round(statistics.median(o / w for o, w in zip(overhead, walls, strict=True)), 4),
        slot_busy_fraction=round(sum(m["t_end"] - m["t_start"] for m in res) / (concurrent * span), 4),
        gpu_util_mean=util, gpu_busy_fraction=busy, gpu_samples=n_samples,
        gpu_util_mean_from_fit=util_fit, gpu_busy_fraction_from_fit=busy_fit,
        top1_mean=round(statistics.fmean(top1), 4), top1_median=round(statistics.median(top1), 4),
        top1_best=max(top1),
    )
    for k, v in summary.items():
        print(f"{k:<26} {v}")
    print("trials_per_hour counts trained trials only (over-budget patterns are skipped, not trained); the span "
          "is the first trial's start to the last trial's end, skipped trials included. Trial wall and overhead are "
          "the trainable's own; slot_busy_fraction = time inside trainables / (max concurrent trials x span), the "
          "rest is Tune starting an actor per trial, scheduling and the tail; *_from_fit: GPU use from Tuner.fit() on")
    write_json(args.out, dict(bench="search_peer", env=env_info(), config=cfg.to_dict(), budget_softmax=args.budget,
                              gpus_per_trial=gpt, cpus_per_trial=cpt, max_concurrent_trials=concurrent,
                              loader_workers=args.workers, sampler_seed=args.seed, errors=errors, **summary,
                              trials_detail=res))


if __name__ == "__main__":
    main()

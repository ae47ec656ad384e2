"""Where one proxy training step spends its time, and how far it is from the hardware's limit.

For one model of a proxy geometry (`--preset`, `--set width=0.25 resolution=128`, `--pattern`), the
step the search runs (bf16 autocast, channels_last, forward, loss, backward, gradient clipping,
fused AdamW) is measured four ways:
  step time       CUDA events over `--steps` replays of the step captured as a CUDA graph (what
                  `train_proxy` runs), and the same step eager; the data step (a batch drawn and
                  augmented on the device) timed alone
  time by family  torch.profiler over eager steps: each kernel's device time is charged to the op
                  that launched it, and the op to a family (linear matmuls, MALA's fp32 matmuls,
                  SDPA, depthwise and dense convolutions, LayerNorm, loss, casts, optimizer, gradient
                  clipping, elementwise)
  FLOPs, bytes    a dispatch mode over one eager step: each aten op's FLOPs (torch's FLOP counter
                  formulas) and the bytes of its tensor inputs and outputs (what an unfused kernel
                  must read and write at least once), summed by the same families
  roofline        per op max(FLOPs / peak for its dtype, bytes / bandwidth), summed: the least time
                  these ops need as written (no fusion); the peaks are measured here (a bf16 and an
                  fp32 matmul, a large copy) unless given
The step's time as a multiple of the roofline is the figure to drive down.

    python bench/proxy_profile.py --data recall --preset default [--set width=0.25 resolution=128]
    python bench/proxy_profile.py --smoke
"""

from __future__ import annotations

import argparse
import time
from collections import defaultdict

import torch
import torch.nn.functional as F
from proxy_common import common_args, env_info, overrides, preset, table, timed, write_json
from torch.profiler import ProfilerActivity, profile
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import flop_registry

from sola_search.proxies import load_proxy_data
from sola_search.proxies.compiled import compile_blocks, eager, graphs_compiled
from sola_search.space import build_backbone, resolve_pattern
from sola_search.space.backbone import ConvNorm, _nchw

FAMILIES = ["linear matmuls", "MALA fp32 matmuls", "softmax attention (SDPA)", "depthwise conv",
            "dense conv (stem, downsampling)", "LayerNorm", "loss", "casts and copies", "gradient clipping",
            "optimizer (fused AdamW)", "elementwise and other"]


def family(names: list[str], weight_shape: list | None = None) -> str:
    """The family of an op, from its own name and its callers' (innermost first): optimizer and
    clipping by any caller, the rest by the innermost op that names a family."""
    low = [n.lower() for n in names]
    if any("adam" in n or "optimizer.step" in n for n in low):
        return "optimizer (fused AdamW)"
    if any("_foreach_norm" in n or "clip_grad" in n or "_foreach_mul" in n for n in low):
        return "gradient clipping"
    for n in low:
        if "scaled_dot_product" in n or "scaleddotproduct" in n or "flash" in n and "attention" in n:
            return "softmax attention (SDPA)"
        if "bmm" in n:
            return "MALA fp32 matmuls"
        if n.endswith("::mm") or n.endswith("::addmm") or "mmbackward" in n or n.endswith("::linear"):
            return "linear matmuls"
        if "conv" in n:
            depthwise = weight_shape is not None and len(weight_shape) == 4 and weight_shape[1] == 1
            return "depthwise conv" if depthwise else "dense conv (stem, downsampling)"
        if "layer_norm" in n or "layernorm" in n:
            return "LayerNorm"
        if "cross_entropy" in n or "log_softmax" in n or "nll_loss" in n or "logsoftmax" in n or "nllloss" in n:
            return "loss"
        if n.endswith("::_to_copy") or n.endswith("::copy_") or n.endswith("::clone") or "tocopy" in n \
                or n.endswith("::contiguous"):
            return "casts and copies"
    return "elementwise and other"


def conv3x3s2_as_matmul(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """Lever `--conv matmul`: `F.conv2d(x, weight, bias, stride=2, padding=1)` for a 3x3 `weight` as one
    matmul over the input's nine shifted strided views (channels last, K = 9 C_in); (B, H_out, W_out, C_out)."""
    _, _, h, w = x.shape
    ho, wo = (h + 1) // 2, (w + 1) // 2
    xp = F.pad(x.permute(0, 2, 3, 1), (0, 0, 1, 1, 1, 1))
    cols = torch.cat([xp[:, i:i + 2 * ho - 1:2, j:j + 2 * wo - 1:2, :] for i in range(3) for j in range(3)], -1)
    return F.linear(cols, weight.permute(0, 2, 3, 1).reshape(weight.shape[0], -1), bias)


def _depthwise_fp32(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, weighted_sum) -> torch.Tensor:
    """A same-padded k x k depthwise convolution of x (B, C, H, W; a permuted channels-last tensor) in fp32,
    its output in autocast's dtype as cuDNN's is: `weighted_sum(padded NHWC input, (C, k, k) weights, H, W)`
    writes the sum over the taps, the rest is shared by the levers below."""
    p = weight.shape[-1] // 2
    dtype = torch.get_autocast_dtype(x.device.type) if torch.is_autocast_enabled(x.device.type) else x.dtype
    xp = F.pad(x.permute(0, 2, 3, 1).float(), (0, 0, p, p, p, p))
    out = weighted_sum(xp, weight.float().squeeze(1), x.shape[2], x.shape[3])
    if bias is not None:
        out = out + bias.float()
    return out.to(dtype).permute(0, 3, 1, 2)


def depthwise_as_shifts(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """Lever `--dwconv shifts`: the sum of the input's k*k shifted views times one weight per channel, for
    inductor to fuse with its neighbours (cuDNN's depthwise kernels were a fifth of the compiled step)."""
    def weighted_sum(xp, w, h, wd):
        k = w.shape[-1]
        return sum(xp[:, i:i + h, j:j + wd, :] * w[:, i, j] for i in range(k) for j in range(k))

    return _depthwise_fp32(x, weight, bias, weighted_sum)


def depthwise_as_unfold(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """Lever `--dwconv unfold`: one weighted sum over an unfolded (B, H, W, C, k, k) view: one product and
    one reduction in the graph, not k*k of each (`shifts` took inductor past 170 s to compile on an H200)."""
    def weighted_sum(xp, w, h, wd):
        k = w.shape[-1]
        return (xp.unfold(1, k, 1).unfold(2, k, 1) * w).sum((-2, -1))

    return _depthwise_fp32(x, weight, bias, weighted_sum)


def use_lever(model: torch.nn.Module, conv: str, dwconv: str) -> str:
    """Swap the lever's functions into `model` and check them against the modules they replace (forward
    and gradients, fp32, on the model's device); returns what was done and the largest differences."""
    done = []
    for m in model.modules():
        if conv == "matmul" and isinstance(m, ConvNorm):
            m.forward = lambda x, m=m: _nchw(m.norm(conv3x3s2_as_matmul(x, m.conv.weight, m.conv.bias)))
            done.append(("conv", m.conv, lambda x, m=m: conv3x3s2_as_matmul(x, m.conv.weight, m.conv.bias)
                         .permute(0, 3, 1, 2)))
        if dwconv != "cudnn" and isinstance(m, torch.nn.Conv2d) and m.groups == m.in_channels > 1:
            ref, fn = m.forward, depthwise_as_shifts if dwconv == "shifts" else depthwise_as_unfold
            m.forward = lambda x, m=m, fn=fn: fn(x, m.weight, m.bias)
            done.append(("dwconv", ref, m.forward))
    diffs = {}
    for kind, ref, new in done[:6]:
        mod = ref if isinstance(ref, torch.nn.Module) else ref.__self__
        cin = mod.in_channels
        x = torch.randn(2, cin, 9, 8, device=next(mod.parameters()).device, requires_grad=True)
        outs = []
        for fn in (ref, new):
            x.grad = None
            for q in mod.parameters():
                q.grad = None
            y = fn(x)
            y.backward(torch.ones_like(y) * torch.arange(y.numel(), device=y.device).view_as(y).sin())
            outs.append([y.detach(), x.grad.clone()] + [q.grad.clone() for q in mod.parameters()])
        diffs[kind] = max(diffs.get(kind, 0.0), max(float((a - b).abs().max() / (a.abs().max() + 1e-12))
                                                    for a, b in zip(*outs, strict=True)))
    for q in model.parameters():
        q.grad = None
    return f"{len(done)} modules replaced; largest relative difference against them (fp32): {diffs}"


def make_step(model, cfg, dev):
    """The training step `train_proxy` runs (proxies/train.py `_eager_step`), on its own."""
    params = [p for p in model.parameters() if p.requires_grad]
    cuda = dev.type == "cuda"
    lr = torch.full((), cfg.lr, device=dev) if cuda else cfg.lr
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=cfg.weight_decay, fused=cuda, capturable=cuda)
    bf16 = cfg.amp == "bf16" or (cfg.amp == "auto" and cuda)

    def step(x, y):
        opt.zero_grad(set_to_none=True)
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=bf16, cache_enabled=False):
            logits = model(x)
        loss = F.cross_entropy(logits.float(), y, label_smoothing=cfg.label_smoothing)
        loss.backward()
        if cfg.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip, foreach=cuda)
        opt.step()
        return loss

    return step


def by_family_profiled(step, x, y, n: int, dev, top: dict | None = None) -> dict[str, float]:
    """Seconds per step by family: device time of kernels on a GPU (self CPU time on a CPU); `top`,
    when given, collects the same per launching op and its callers (outermost first) with shapes."""
    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if dev.type == "cuda" else [])
    with profile(activities=acts, record_shapes=True) as prof:
        for _ in range(n):
            step(x, y)
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
    out: dict[str, float] = defaultdict(float)
    for ev in prof.events():
        t = ev.self_device_time_total if dev.type == "cuda" else ev.self_cpu_time_total
        if t <= 0 or ev.device_type != torch.autograd.DeviceType.CPU:
            continue
        names, shapes, e = [], None, ev
        while e is not None:
            names.append(e.name)
            if shapes is None and "conv" in e.name.lower() and e.input_shapes and len(e.input_shapes) > 2:
                # the weight: convolution(input, weight, ...), convolution_backward(grad_out, input, weight, ...)
                shapes = e.input_shapes[2 if "backward" in e.name.lower() else 1]
            e = e.cpu_parent
        out[family(names, shapes)] += t / 1e6 / n
        if top is not None:
            key = " > ".join(reversed(names[:3])) + f" {ev.input_shapes}"
            top[key] = top.get(key, 0.0) + t / 1e6 / n
    return dict(out)


KERNELS = [("inductor's fused Triton kernels", ("triton",)), ("softmax attention (SDPA)", ("sdpa", "flash", "fmha",
             "attention")), ("depthwise convolutions (cuDNN)", ("c1_k1", "grouped")),
           ("dense convolutions (cuDNN)", ("conv", "xmma_fprop", "dgrad", "wgrad", "implicit_gemm", "cudnn")),
           ("matmuls (cuBLAS, CUTLASS)", ("gemm", "cutlass", "sm90_", "nvjet", "ampere_", "cublas")),
           ("optimizer (fused AdamW)", ("adam",)), ("memcpy, memset", ("memcpy", "memset"))]


def kernel_family(name: str) -> str:
    """A kernel's family by its own name: what a compiled step can be charged to, where fused kernels
    no longer belong to one aten op."""
    low = name.lower()
    return next((fam for fam, keys in KERNELS if any(k in low for k in keys)), "other kernels (ATen)")


def by_kernel_profiled(step, x, y, n: int, dev) -> tuple[dict[str, float], list]:
    """Seconds per step by kernel family, and the costliest kernels by name (GPU only)."""
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(n):
            step(x, y)
        torch.cuda.synchronize(dev)
    fams: dict[str, float] = defaultdict(float)
    names: dict[str, float] = defaultdict(float)
    for ev in prof.events():
        if ev.device_type == torch.autograd.DeviceType.CUDA and ev.device_time_total > 0:
            fams[kernel_family(ev.name)] += ev.device_time_total / 1e6 / n
            names[ev.name[:120]] += ev.device_time_total / 1e6 / n
    return dict(fams), sorted(([k, v] for k, v in names.items()), key=lambda kv: -kv[1])[:40]


class OpCounter(TorchDispatchMode):
    """FLOPs and tensor bytes of every aten op, by family, and the op-by-op roofline."""

    def __init__(self, peaks: dict[str, float], bandwidth: float):
        super().__init__()
        self.peaks, self.bw = peaks, bandwidth
        self.flops: dict[str, float] = defaultdict(float)
        self.bytes: dict[str, float] = defaultdict(float)
        self.roof: dict[str, float] = defaultdict(float)
        self.ops: dict[str, int] = defaultdict(int)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        tensors, seen = [], set()
        for t in torch.utils._pytree.tree_leaves((args, kwargs, out)):
            if isinstance(t, torch.Tensor) and t.device.type != "meta":
                key = (t.untyped_storage().data_ptr(), t.storage_offset(), t.numel(), t.dtype)
                if key not in seen:
                    seen.add(key)
                    tensors.append(t)
        nbytes = sum(t.numel() * t.element_size() for t in tensors)
        packet = func._overloadpacket
        flops = 0
        if packet in flop_registry:
            try:
                flops = flop_registry[packet](*args, **kwargs, out_val=out)
            except TypeError:
                flops = flop_registry[packet](*args, **kwargs)
        weight = None
        if "conv" in func.__name__ and len(args) > 1 and isinstance(args[1], torch.Tensor):
            weight = list(args[1].shape)
        if func.__name__.startswith("convolution_backward") and len(args) > 2:
            weight = list(args[2].shape)
        fam = family([f"aten::{func.__name__.split('.')[0]}"], weight)
        dtype = next((t.dtype for t in tensors if t.is_floating_point()), torch.bfloat16)
        peak = self.peaks["fp32"] if dtype == torch.float32 else self.peaks["bf16"]
        self.flops[fam] += flops
        self.bytes[fam] += nbytes
        self.roof[fam] += max(flops / peak, nbytes / self.bw)
        self.ops[fam] += 1
        return out


def measure_peaks(dev) -> dict[str, float]:
    """bf16 and fp32 matmul FLOP/s and copy bandwidth (bytes read + written per second), here."""
    if dev.type != "cuda":
        return dict(bf16=1e11, fp32=1e11, bandwidth=1e10)
    out = {}
    for name, dtype, n in (("bf16", torch.bfloat16, 8192), ("fp32", torch.float32, 8192)):
        a = torch.randn(n, n, device=dev, dtype=dtype)
        b = torch.randn(n, n, device=dev, dtype=dtype)
        timed(lambda a=a, b=b: a @ b, 3, dev)
        out[name] = 2 * n**3 / timed(lambda a=a, b=b: a @ b, 20, dev)
    src = torch.empty(2**30, dtype=torch.uint8, device=dev)
    dst = torch.empty_like(src)
    timed(lambda: dst.copy_(src), 3, dev)
    out["bandwidth"] = 2 * src.numel() / timed(lambda: dst.copy_(src), 20, dev)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    common_args(ap, "proxy_profile")
    ap.add_argument("--preset", default="default")
    ap.add_argument("--pattern", default="last-8", help="pattern or baseline name (default last-8)")
    ap.add_argument("--steps", type=int, default=50, help="steps timed (default 50)")
    ap.add_argument("--profile-steps", type=int, default=5, help="steps under torch.profiler (default 5)")
    ap.add_argument("--top", type=int, default=15, help="how many of the costliest ops to print (default 15)")
    ap.add_argument("--compile", choices=["model", "blocks", "blocks-only"], help="lever: torch.compile the model, or "
                    "each block as train_proxy's compile=blocks does (backbone blocks, stem and downsampling), or the "
                    "backbone blocks only; then captured as a CUDA graph like the plain step")
    ap.add_argument("--ln", choices=["native", "split", "triton"], default="native",
                    help="lever: LayerNorm as is, without affine followed by `* weight + bias`, or "
                    "bench/triton_layernorm.py")
    ap.add_argument("--no-channels-last", action="store_true", help="lever: contiguous (NCHW) inputs and weights")
    ap.add_argument("--conv", choices=["cudnn", "matmul"], default="cudnn", help="lever: the stem's and "
                    "downsampling's 3x3 stride-2 convolutions as cuDNN's, or as one matmul over nine shifted views "
                    "(conv3x3s2_as_matmul)")
    ap.add_argument("--dwconv", choices=["cudnn", "shifts", "unfold"], default="cudnn", help="lever: the blocks' "
                    "depthwise convolutions (CPE, LePE, MLP) as cuDNN's, as sums of shifted views (depthwise_as_shifts)"
                    ", or as one weighted sum over an unfolded view (depthwise_as_unfold)")
    args = ap.parse_args()

    over = overrides(args)
    if args.no_channels_last:
        over["channels_last"] = False
    cfg = preset(args.preset, over)
    data = load_proxy_data(cfg)
    dev = data.device
    torch.manual_seed(cfg.seed)
    pattern = resolve_pattern(args.pattern, cfg.variant)
    fmt = torch.channels_last if cfg.channels_last else torch.contiguous_format
    model = build_backbone(cfg.variant, pattern, width=cfg.width, num_classes=data.num_classes,
                           in_chans=data.channels).to(dev, memory_format=fmt).train()
    if dev.type == "cuda":  # as train_proxy runs: cuDNN autotuning, TF32 for the fp32 matmuls
        torch.backends.cudnn.benchmark = True
        torch.set_float32_matmul_precision("high")
    if args.ln == "split":
        for m in model.modules():
            if isinstance(m, torch.nn.LayerNorm):
                m.forward = lambda x, m=m: F.layer_norm(x, m.normalized_shape, None, None, m.eps) * m.weight + m.bias
    if args.conv != "cudnn" or args.dwconv != "cudnn":
        print("lever: " + use_lever(model, args.conv, args.dwconv), flush=True)
    compile_s = None
    if args.compile:
        t0 = time.perf_counter()
        if args.compile == "model":
            model.compile(dynamic=False)
        elif args.compile == "blocks":
            compile_blocks(model)
        else:
            for m in model.modules():
                if type(m).__name__ == "Block":
                    m.compile(dynamic=False)
    if args.ln == "triton":  # the norms outside compiled modules (with --compile blocks-only: stem, downsampling, head)
        from triton_layernorm import use_in

        print(f"Triton LayerNorm in {use_in(model, skip_compiled=True)} norms", flush=True)
    step = make_step(model, cfg, dev)
    gen = torch.Generator(device=dev)
    gen.manual_seed(cfg.seed)
    batches = data.batches(cfg.batch_size, gen, cfg.augment, cfg.max_train)
    xb, yb = next(batches)
    x = data.normalize(xb, cfg.channels_last)
    n = 2 if args.smoke else args.steps

    rec: dict = dict(config=cfg.to_dict(), pattern=str(pattern), env=env_info(), compile=args.compile, ln=args.ln,
                     conv=args.conv, dwconv=args.dwconv)
    peaks = measure_peaks(dev)
    rec["peaks"] = peaks
    for _ in range(3):  # warm: cuDNN autotuning, lazy kernels, AdamW state (and compilation)
        step(x, yb)
    if args.compile:
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        rec["compile_warm_s"] = compile_s = time.perf_counter() - t0
        rec["graphs_compiled"] = graphs_compiled()
    rec["data_s"] = timed(lambda: data.normalize(next(batches)[0], cfg.channels_last), n, dev)
    rec["eager_s"] = timed(lambda: step(x, yb), n, dev)
    if dev.type == "cuda":
        static_x, static_y = x.clone(), yb.clone()
        s = torch.cuda.Stream(dev)
        s.wait_stream(torch.cuda.current_stream(dev))
        with torch.cuda.stream(s):
            for _ in range(3):
                step(static_x, static_y)
        torch.cuda.current_stream(dev).wait_stream(s)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            step(static_x, static_y)
        rec["graph_s"] = timed(graph.replay, n, dev)
        del graph

    best = rec.get("graph_s", rec["eager_s"])
    rec |= dict(step_s=best, images_per_s=cfg.batch_size / best)
    print(f"{cfg.variant} x{cfg.width} {cfg.resolution}px batch {cfg.batch_size} {pattern} on {dev}, ln {args.ln}"
          + (f", compiled {args.compile} (compile and 3 warm steps {compile_s:.1f} s)" if args.compile else "")
          + f": step graph {1e3 * rec.get('graph_s', float('nan')):.3f} ms, eager {1e3 * rec['eager_s']:.3f} ms, "
          f"data {1e3 * rec['data_s']:.3f} ms; {rec['images_per_s']:,.0f} images/s", flush=True)
    write_json(args.out, rec)
    n_prof = 1 if args.smoke else args.profile_steps
    if dev.type == "cuda":  # by kernel name: the only split of a compiled step, whose kernels fuse many ops
        rec["time_by_kernel"], rec["top_kernels"] = by_kernel_profiled(step, x, yb, n_prof, dev)
        table([dict(kernels=f, ms=1e3 * t, share=t / sum(rec["time_by_kernel"].values()))
               for f, t in sorted(rec["time_by_kernel"].items(), key=lambda kv: -kv[1])], ["kernels", "ms", "share"])
        for k, v in rec["top_kernels"][:args.top]:
            print(f"  {1e3 * v:7.3f}  {k}")
        write_json(args.out, rec)
    # by op family and the roofline: a compiled model run eager (the ops as written, unfused)
    top: dict[str, float] = {}
    with eager(model):
        rec["time_by_family"] = by_family_profiled(step, x, yb, n_prof, dev, top)
    rec["top_ops"] = sorted(([k, v] for k, v in top.items()), key=lambda kv: -kv[1])[:40]
    counter = OpCounter(peaks, peaks["bandwidth"])
    with eager(model), counter:
        step(x, yb)
    rec["flops_by_family"], rec["bytes_by_family"] = dict(counter.flops), dict(counter.bytes)
    rec["roofline_by_family"], rec["ops_by_family"] = dict(counter.roof), dict(counter.ops)
    roof = sum(counter.roof.values())
    rec |= dict(roofline_s=roof, multiple_of_roofline=best / roof if roof else None,
                tflops=sum(counter.flops.values()) / best / 1e12)

    total = sum(rec["time_by_family"].values()) or 1.0
    if args.compile:
        print("by op family: the same model run eager (its ops as written), for the roofline")
    rows = [dict(family=f, ms=1e3 * rec["time_by_family"].get(f, 0.0),
                 share=rec["time_by_family"].get(f, 0.0) / total,
                 gflop=counter.flops.get(f, 0) / 1e9, mbytes=counter.bytes.get(f, 0) / 2**20,
                 roof_ms=1e3 * counter.roof.get(f, 0.0),
                 x_roof=rec["time_by_family"].get(f, 0.0) / counter.roof[f] if counter.roof.get(f) else None)
            for f in FAMILIES]
    print(f"peaks: bf16 {peaks['bf16'] / 1e12:.0f} TFLOP/s, fp32 {peaks['fp32'] / 1e12:.0f}, "
          f"copy {peaks['bandwidth'] / 1e12:.2f} TB/s")
    table(rows, ["family", "ms", "share", "gflop", "mbytes", "roof_ms", "x_roof"])
    print("the ops with the most device time (ms per step; the op, its callers, its input shapes):")
    for k, v in rec["top_ops"][:args.top]:
        print(f"  {1e3 * v:7.3f}  {k[:200]}")
    print(f"profiled kernels {1e3 * total:.3f} ms; roofline {1e3 * roof:.3f} ms: the step is "
          f"{rec['multiple_of_roofline']:.1f}x its roofline; {rec['tflops']:.2f} TFLOP/s")
    write_json(args.out, rec)


if __name__ == "__main__":
    main()

"""Compiled blocks for the GPU training step (`ProxyConfig.compile = "blocks"`).

Why: the proxy's step is bound by many small memory-bound kernels — LayerNorm over 8-64 channels,
autocast's casts, elementwise ops (docs/performance.md, issue 16) — which inductor fuses. Each
backbone block (either mixer) and each strided convolution + norm (stem, downsampling) is compiled
on its own with static shapes; train.py still captures the whole step as one CUDA graph.

Compiled once per process and shape: torch inlines nn.Modules, so parameters are graph inputs and
every block of one shape and mixer (in any model, pattern or pack) runs the same compiled graph;
a (stage, mixer) pair compiles once. Across processes: inductor's caches (FX graphs, AOTAutograd,
Triton kernels, autotuning) live on the machine's local disk, shared by its workers, so only the
machine's first worker compiles from scratch. The CPU never compiles (its results stay as they were)."""

from __future__ import annotations

import contextlib
import getpass
import os
import tempfile

import torch

from sola_search.space.backbone import Block, ConvNorm

COMPILED = (Block, ConvNorm)  # the modules compiled, each on its own
# (stage, mixer) pairs of one model, plus its stem and downsampling: well above torch's default
# limit of 8 compiled versions of one function, and several geometries may share a process.
RECOMPILE_LIMIT = 256


def cache_dir() -> str:
    """Where inductor keeps its caches: $TORCHINDUCTOR_CACHE_DIR, else a folder of the machine's
    temporary directory per user (inductor's own default, made explicit so that every worker of a
    machine, whatever environment Ray gives it, finds the same one)."""
    return os.environ.get("TORCHINDUCTOR_CACHE_DIR") or os.path.join(
        tempfile.gettempdir(), f"torchinductor_{getpass.getuser()}")


def _prepare() -> None:
    """Once per process: the shared on-disk caches on, and room for every shape's compiled graph.
    Triton's cache where inductor puts it (unless the user chose one) before any kernel compiles: the
    fused MALA's kernels are Triton's own, cached wherever $TRITON_CACHE_DIR points at their first call,
    and inductor sets it only as it builds its own kernels' launchers, at a moment that differs between
    a process that compiles and one that loads (a warm-up sampled on an H200 compiled the MALA kernels
    again, 8 s, though the run before it on that machine had compiled them)."""
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = cache_dir()
    os.environ.setdefault("TRITON_CACHE_DIR", os.path.join(cache_dir(), "triton", "0"))
    import torch._dynamo
    import torch._functorch.config
    import torch._inductor.config

    torch._inductor.config.fx_graph_cache = True
    torch._inductor.config.autotune_local_cache = True
    torch._functorch.config.enable_autograd_cache = True
    torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, RECOMPILE_LIMIT)
    torch._dynamo.config.accumulated_recompile_limit = max(torch._dynamo.config.accumulated_recompile_limit,
                                                            RECOMPILE_LIMIT)


def compile_blocks(model: torch.nn.Module, backend: str = "inductor") -> torch.nn.Module:
    """Mark `model`'s blocks for compilation (static shapes); idempotent. Compilation itself happens
    at a block's first call with a new shape or mixer, which must come before a CUDA-graph capture.
    (`backend="eager"` traces without generating code: what the CPU tests count graphs with.)"""
    if getattr(model, "blocks_compiled", False):
        return model
    _prepare()
    for m in model.modules():
        if isinstance(m, COMPILED):
            m.compile(dynamic=False, backend=backend)
    model.blocks_compiled = True
    return model


def graphs_compiled() -> int:
    """How many graphs dynamo has compiled in this process (a recompile adds one)."""
    from torch._dynamo.utils import counters

    return int(counters["stats"]["unique_graphs"])


def cache_use() -> dict[str, int]:
    """This process's compiled graphs by where their code came from: `loaded` from the on-disk caches
    (AOTAutograd's, each a forward and backward), `generated` anew (a cache miss: minutes on a fresh
    machine), `bypassed` (a graph the cache refuses). A worker whose warm-up generated code although
    the machine had compiled the same blocks before has caches keyed differently (torch, Triton, the
    GPU, inductor's settings)."""
    from torch._dynamo.utils import counters

    aot = counters["aot_autograd"]
    return dict(loaded=int(aot["autograd_cache_hit"]), generated=int(aot["autograd_cache_miss"]),
                bypassed=int(aot["autograd_cache_bypass"]))


@contextlib.contextmanager
def eager(*models: torch.nn.Module):
    """The compiled blocks of `models` run eager inside this context: evaluation's batches have other
    shapes, and compiling them would cost more than it saves. Per module, not torch's process-wide
    `set_stance("force_eager")`: a pack prepared on another thread meanwhile (`run --ahead 1`) keeps
    compiling and running its own blocks."""
    mods = [m for model in models for m in model.modules() if m._compiled_call_impl is not None]
    saved = [m._compiled_call_impl for m in mods]
    for m in mods:
        m._compiled_call_impl = None  # nn.Module.__call__ then runs the module's own forward
    try:
        yield
    finally:
        for m, call in zip(mods, saved, strict=True):
            m._compiled_call_impl = call

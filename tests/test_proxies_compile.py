"""`ProxyConfig.compile` (issue 16): the option's values and stored forms, the CPU unchanged by it,
and compiled blocks sharing their graphs across models and patterns (counted with dynamo's eager
backend, which traces as a GPU run does without generating code)."""

from __future__ import annotations

import json
import os
import threading

import numpy as np
import pytest
import torch

from sola_search.cli import main
from sola_search.errors import SolaError
from sola_search.proxies import ProxyConfig, get_preset, train_proxies
from sola_search.proxies.compiled import compile_blocks, eager, graphs_compiled
from sola_search.space import build_backbone
from sola_search.space.backbone import Block, ConvNorm


@pytest.fixture(scope="module")
def npz_file(tmp_path_factory):
    rng = np.random.default_rng(0)
    y = rng.integers(0, 4, 300)
    x = (rng.random((300, 20, 20)) * 60 + y[:, None, None] * 40).astype(np.uint8)
    p = tmp_path_factory.mktemp("npz") / "data.npz"
    np.savez(p, x=x, y=y)
    return p


def test_compile_round_trips_and_old_stored_values_read():
    # the GPU presets compile (docs/performance.md: 1.67x the trials per hour); quick, for the CPU, does not
    assert get_preset("default").compile == get_preset("long").compile == "blocks"
    assert get_preset("quick").compile == "off"
    cfg = get_preset("default", compile="off")
    assert ProxyConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    # before issue 16 `compile` was a bool: True compiled the model, now the blocks; False is off
    assert ProxyConfig.from_dict(cfg.to_dict() | {"compile": False}).compile == "off"
    assert ProxyConfig.from_dict(cfg.to_dict() | {"compile": True}).compile == "blocks"
    for bad in ("bogus", True, 1, None):
        with pytest.raises(SolaError, match="proxy compile .*: expected off or blocks"):
            ProxyConfig(compile=bad)


def test_the_cpu_runs_eager_whatever_compile_says(npz_file):
    """Compiling is a GPU lever: on the CPU a run is the same to the last digit either way."""
    cfg = ProxyConfig(variant="micro", width=0.25, resolution=20, steps=6, batch_size=16, warmup_steps=2,
                      data=f"npz:{npz_file}", val_fraction=0.2, eval_batch_size=64, device="cpu", log_points=3)
    patterns = ["LL-LS-LSLL-SS", "all-linear"]
    off = train_proxies(patterns, cfg)
    blocks = train_proxies(patterns, cfg.replace(compile="blocks"))
    for a, b in zip(off, blocks, strict=True):
        assert a.status == b.status == "ok", (a.reason, b.reason)
        assert a.train_curve == b.train_curve and (a.val_top1, a.val_loss) == (b.val_top1, b.val_loss)
        assert a.mode == b.mode == "eager"


@pytest.mark.parametrize("argv", [["proxy", "all-linear", "--device", "cpu", "--compile", "bogus"],
                                  ["run", "--budget", "2softmax", "--compile", "bogus"]])
def test_cli_bad_compile_is_one_line_exit_2(argv, tmp_path, capsys):
    rc = main([*argv, "--variant", "micro", "--runs-dir" if argv[0] == "run" else "--steps",
               str(tmp_path / "runs") if argv[0] == "run" else "1"])
    err = capsys.readouterr().err
    assert rc == 2 and "compile" in err and "expected off or blocks" in err and err.count("\n") == 1, err
    assert not (tmp_path / "runs").exists()


def test_blocks_of_one_shape_share_their_compiled_graphs():
    """Parameters are graph inputs, so a second model, or a pattern already seen, compiles nothing;
    a new (stage, mixer) pair compiles once; evaluation runs eager."""
    models = [compile_blocks(build_backbone("micro", "LL-LL-LLLL-LL", width=0.25, num_classes=4, in_chans=1),
                             backend="eager") for _ in range(2)]
    x = torch.randn(2, 1, 32, 32)
    start = graphs_compiled()
    models[0](x).sum().backward()
    first = graphs_compiled() - start
    assert first == 4 + 5  # a linear block per stage; stem (2) and downsampling (3)
    models[1](x).sum().backward()
    assert graphs_compiled() - start == first
    for m in models:
        m.set_pattern("LS-LL-LLLL-LL")(x).sum().backward()
    assert graphs_compiled() - start == first + 1
    with eager(models[1]), torch.no_grad():
        models[1].eval()(torch.randn(3, 1, 32, 32))
    assert graphs_compiled() - start == first + 1


def test_eager_is_per_model_so_another_thread_keeps_compiling():
    """One pack evaluated eagerly while the next is prepared on another thread (`run --ahead 1`):
    `eager` leaves the other model's blocks compiled (torch's set_stance would not), and restores its own."""
    torch._dynamo.reset()  # no graph of these shapes left by an earlier test
    evaluated, prepared = (compile_blocks(build_backbone("micro", "LL-LS-LLLL-LL", width=0.25, num_classes=4,
                                                         in_chans=1), backend="eager") for _ in range(2))
    x = torch.randn(2, 1, 32, 32)
    start = graphs_compiled()
    inside, done = threading.Event(), threading.Event()

    def evaluate():
        with eager(evaluated), torch.no_grad():
            evaluated.eval()(torch.randn(3, 1, 32, 32))
            inside.set()
            done.wait(60)

    t = threading.Thread(target=evaluate)
    t.start()
    inside.wait(60)
    try:
        assert graphs_compiled() == start  # the evaluated model compiled nothing
        prepared(x).sum().backward()  # meanwhile, on this thread
        assert graphs_compiled() - start == 4 + 5 + 1  # its blocks compiled: one per (stage, mixer), stem, downsampling
    finally:
        done.set()
        t.join()
    evaluated.train()(x).sum().backward()  # compiled again after the context: the graphs just made serve it
    assert graphs_compiled() - start == 4 + 5 + 1
    assert all(m._compiled_call_impl is not None for m in evaluated.modules() if isinstance(m, (Block, ConvNorm)))


def test_evaluation_through_the_compiled_training_forward_is_eval_modes_function():
    """What `_GraphedEval` relies on (a GPU evaluates through the blocks' compiled training forward): at
    drop-path 0 train mode with grad on computes eval mode's logits, and calls nothing new to compile."""
    model = compile_blocks(build_backbone("micro", "LS-LL-LLLL-LS", width=0.25, num_classes=4, in_chans=1),
                           backend="eager")
    x = torch.randn(3, 1, 32, 32)
    model(torch.randn(3, 1, 32, 32)).sum().backward()  # as training compiled it
    start = graphs_compiled()
    with torch.no_grad(), torch.enable_grad():  # as `_GraphedEval._eval_mode` runs it
        trained_way = model(x).float().detach()
    assert graphs_compiled() == start
    with eager(model), torch.no_grad():
        eval_way = model.eval()(x)
    assert torch.equal(trained_way, eval_way)


@pytest.mark.parametrize("augment", [True, False])
def test_training_batches_and_the_evaluation_buffer_reach_the_stem_in_one_layout(npz_file, augment):
    """A one-channel batch is channels-last to torch whatever its strides, but compiled code guards on
    them: a GPU's evaluation buffer (zeros, NCHW) compiled the stem a second time. `normalize` writes
    channels-last strides, so the training batch and the buffer run one compiled stem."""
    from sola_search.proxies import load_proxy_data

    cfg = ProxyConfig(variant="micro", width=0.25, resolution=20, batch_size=4, data=f"npz:{npz_file}",
                      val_fraction=0.2, device="cpu")
    data = load_proxy_data(cfg)
    x, _ = next(data.batches(4, torch.Generator().manual_seed(0), augment=augment))
    buffer = torch.zeros((4, *data.val_x.shape[1:]), dtype=data.val_x.dtype)  # as `_GraphedEval` makes it
    batch, evaluated = data.normalize(x), data.normalize(buffer)
    assert batch.stride() == evaluated.stride() and batch.is_contiguous(memory_format=torch.channels_last)
    model = compile_blocks(build_backbone("micro", "all-linear", width=0.25, num_classes=4, in_chans=1),
                           backend="eager").to(memory_format=torch.channels_last)
    model(batch).sum().backward()
    start = graphs_compiled()
    with torch.no_grad(), torch.enable_grad():
        model(evaluated)
    assert graphs_compiled() == start


def test_triton_caches_its_kernels_where_inductor_does_unless_the_user_chose(monkeypatch, tmp_path):
    """The fused MALA's Triton kernels find last run's binaries whichever process compiled them: Triton's
    cache is inductor's (`<cache>/triton/0`, what inductor would set) before any kernel compiles."""
    from torch._inductor.runtime.cache_dir_utils import triton_cache_dir

    from sola_search.proxies import compiled

    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path))
    monkeypatch.delenv("TRITON_CACHE_DIR", raising=False)
    inductors = triton_cache_dir(0)  # where inductor would point Triton, unset
    compiled._prepare()
    assert os.environ["TRITON_CACHE_DIR"] == inductors == str(tmp_path / "triton" / "0")
    monkeypatch.setenv("TRITON_CACHE_DIR", str(tmp_path / "mine"))
    compiled._prepare()
    assert os.environ["TRITON_CACHE_DIR"] == str(tmp_path / "mine")


def test_a_workers_ready_note_says_where_its_compiled_graphs_came_from():
    """A worker's warm-up line tells a slow first warm-up (graphs generated: a cold cache) from a warm one."""
    from sola_search.search.pool import ready_note

    info = dict(pid=7, data_s=0.6, kernels_s=14.2, graphs=dict(loaded=13, generated=0, bypassed=0))
    assert ready_note(info, 15.1) == ("worker 7 ready after 15.1s (data 0.6s, kernels 14.2s; "
                                      "graphs 13 loaded, 0 generated)")
    eager_note = ready_note(dict(pid=7, data_s=0.6, kernels_s=1.0), 2.0)
    assert eager_note == "worker 7 ready after 2.0s (data 0.6s, kernels 1.0s)"
    assert ready_note(dict(reason="CUDA out of memory"), 2.0) == "worker ? ready after 2.0s: CUDA out of memory"

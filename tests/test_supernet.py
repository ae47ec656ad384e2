"""The weight-sharing supernet estimator (issue 15): training, scoring, save/reload, resume after an
interruption, `run --estimator supernet` end to end on a real study and Ray, and bad input."""

from __future__ import annotations

import contextlib
import json

import numpy as np
import pytest
import torch
from cli_support import run as cli
from cli_support import run_study
from optuna.trial import TrialState
from test_results_support import make_run

from sola_search.errors import SolaError
from sola_search.proxies import ProxyConfig, get_preset
from sola_search.proxies.supernet import (
    CHECKPOINT,
    META,
    WEIGHTS,
    BalancedSampler,
    SupernetSpec,
    _autocast,
    load_supernet,
    train_supernet,
)
from sola_search.proxies.train import _evaluate, _ModelPool
from sola_search.results.front import front_without_standalone
from sola_search.results.patterns import load_pattern_file
from sola_search.search import SearchConfig, run_search
from sola_search.space import Budget, FeasibleSet, Pattern, cost_table


def _spec(npz_data: str, steps: int = 4) -> SupernetSpec:
    cfg = get_preset("quick", variant="micro", data=npz_data, steps=2, batch_size=16, resolution=16, qk_init=2.0)
    return SupernetSpec(cfg, "4softmax", steps=steps, groups=4)


class _Killed(Exception):
    pass


def test_supernet_trains_resumes_to_the_same_weights_and_scores_deterministically(tmp_path, npz_data):
    spec = _spec(npz_data)
    whole = train_supernet(spec, tmp_path / "a", checkpoint_every=2)
    counts = whole.meta["mixer_counts"]
    assert [lin + soft for lin, soft in zip(counts["linear"], counts["softmax"], strict=True)] == [4 * 4] * 10
    assert not (tmp_path / "a" / CHECKPOINT).exists() and (tmp_path / "a" / WEIGHTS).is_file()

    def kill_at_3(step, steps):
        if step == 3:
            raise _Killed

    with pytest.raises(_Killed):  # stopped after its checkpoint at step 2
        train_supernet(spec, tmp_path / "b", checkpoint_every=2, progress=kill_at_3)
    assert (tmp_path / "b" / CHECKPOINT).is_file() and not (tmp_path / "b" / META).exists()
    resumed = train_supernet(spec, tmp_path / "b", checkpoint_every=2)
    assert resumed.meta["resumed_from"] == 2
    assert resumed.sha256 == whole.sha256  # the same weights to the last bit, and the same mixer counts
    assert resumed.meta["mixer_counts"] == counts

    patterns = FeasibleSet("micro", Budget.parse("4softmax")).sample(100, 0)
    scores = [(r.val_top1, r.val_loss) for r in whole.score(patterns)]
    assert scores == [(r.val_top1, r.val_loss) for r in whole.score(patterns)]
    reloaded = load_supernet(tmp_path / "a", spec.identity())
    assert scores == [(r.val_top1, r.val_loss) for r in reloaded.score(patterns)]
    # A score is the pattern's own model with the shared weights, evaluated alone.
    model = _ModelPool._build(whole.cfg, whole.data, torch.channels_last)
    model.load_state_dict(whole.model.state_dict())
    for pattern, (top1, loss) in list(zip(patterns, scores, strict=True))[:3]:
        c, lsum, _ = _evaluate(model.set_pattern(pattern), whole.data.val_x, whole.data.val_y, whole.data,
                               whole.cfg, contextlib.nullcontext)
        n = whole.data.val_x.shape[0]
        assert top1 == pytest.approx(c.item() / n) and loss == pytest.approx(lsum.item() / n, abs=1e-5)
    # Trained already: loaded, never trained again.
    again = train_supernet(spec, tmp_path / "a", progress=kill_at_3)
    assert again.sha256 == whole.sha256


def _standalone_sums(supernet, pattern: Pattern, images: int, groups: torch.Tensor):
    """A pattern's correct count, loss sum and correct count per group over the first `images`
    validation images, from its own backbone (`build_backbone` with the pattern, so one mixer per block)
    loaded with the supernet's weights: one forward over all the images, normalised and autocast as
    scoring does."""
    from sola_search.space import build_backbone

    cfg, data = supernet.cfg, supernet.data
    model = build_backbone(cfg.variant, pattern, width=cfg.width, num_classes=data.num_classes,
                           in_chans=data.channels, layer_scale_init=cfg.layer_scale_init)
    model.load_state_dict(supernet.model.state_dict())
    with torch.no_grad(), _autocast(data.device, cfg)():
        logits = model.eval()(data.normalize(data.val_x[:images], cfg.channels_last)).float()
    y = data.val_y[:images]
    hit = (logits.argmax(1) == y).long()
    by_group = torch.zeros(int(groups.max()) + 1, dtype=torch.int64).index_add_(0, groups[:images], hit)
    return hit.sum().item(), torch.nn.functional.cross_entropy(logits, y, reduction="sum").item(), by_group.tolist()


def test_scores_are_each_patterns_own_backbone_with_the_shared_weights(tmp_path, npz_data):
    """`score` (the prefix walk: shared prefixes computed once per chunk of images, one mixer per block)
    gives each pattern what its own backbone with the supernet's weights gives alone: duplicates, a
    single pattern, several chunks, groups. The weights are redrawn at unit gain and the input is 64 px
    (stage 4 keeps 2x2 tokens: at one token both mixers give v) so that every block's mixer moves the
    scores; trained for one step they would hide a wrong reuse of a cached prefix."""
    cfg = get_preset("quick", variant="micro", data=npz_data, steps=2, batch_size=16, resolution=64,
                     val_fraction=0.25, qk_init=2.0, layer_scale_init=1.0)
    supernet = train_supernet(SupernetSpec(cfg, "4softmax", steps=1), tmp_path)
    torch.manual_seed(0)
    with torch.no_grad():
        for m in supernet.model.modules():
            if isinstance(m, torch.nn.Linear):
                m.weight.normal_(0, 2 * m.in_features**-0.5)
    images = 40
    supernet.data.val_groups = groups = torch.arange(supernet.data.val_x.shape[0]) % 3
    supernet.prefix_cache_bytes = 16 * supernet.cache_bytes_per_image()  # chunks of 16 images, the last shorter
    assert supernet.prefix_chunk(images) == 16
    base = Pattern.parse("LL-LL-LLLL-LL", "micro")
    flips = [Pattern.from_bits([j == i for j in range(10)], "micro") for i in range(10)]  # each block apart
    patterns = [base, *flips, *FeasibleSet("micro", Budget.parse("4softmax")).sample(20, 1)]
    patterns += patterns[5:8]  # duplicates, not next to each other
    alone = {str(p): _standalone_sums(supernet, p, images, groups) for p in patterns}
    counts = torch.bincount(groups[:images]).tolist()
    for pats in (patterns[7:8], patterns):
        scored = supernet.score(pats, images)
        assert [r.pattern for r in scored] == [str(p) for p in pats]
        for r in scored:
            correct, loss_sum, by_group = alone[r.pattern]
            assert r.val_top1 == round(correct / images, 6)
            assert r.val_loss == pytest.approx(loss_sum / images, rel=1e-5)
            assert r.val_by_group == {str(g): round(c / n, 6)
                                      for g, (c, n) in enumerate(zip(by_group, counts, strict=True))}
            assert r.mode == "supernet (prefix, eager)"
    losses = [alone[str(p)][1] for p in patterns[:11]]
    assert all(abs(x - losses[0]) > 1e-3 * images for x in losses[1:])  # every block's mixer counts
    # Compiled blocks (what a GPU runs; here traced by dynamo without generated code): the same scores.
    eager_scores = [(r.val_top1, r.val_loss, r.val_by_group) for r in supernet.score(patterns, images)]
    assert supernet.compile().mode == "supernet (prefix, eager)"  # the CPU never compiles
    compiled = supernet.compile(backend="eager").score(patterns, images)
    assert [(r.val_top1, r.val_loss, r.val_by_group) for r in compiled] == eager_scores
    assert {r.mode for r in compiled} == {"supernet (prefix, compiled blocks)"}


def test_mixing_gives_each_sample_its_own_patterns_forward():
    """`set_mixing`: a batch of several patterns computes, per sample, what each pattern's own model does."""
    from sola_search.space import build_backbone

    torch.manual_seed(0)
    model = build_backbone("micro", None, num_classes=10, layer_scale_init=1.0).eval()
    patterns = ["LL-LL-LLLL-LL", "SS-LS-SLLS-SS", "LS-SL-LLLL-LS"]
    x = torch.randn(6, 3, 64, 64)
    with torch.no_grad():
        alone = [model.set_pattern(p)(x) for p in patterns]
        rows = torch.tensor([Pattern.parse(p, "micro").bits for p in patterns for _ in range(2)])
        mixed = model.set_mixing(rows)(x)
    assert not torch.allclose(alone[0], alone[1], atol=1e-4)  # the patterns differ
    for i in range(6):
        assert torch.allclose(mixed[i], alone[i // 2][i], atol=1e-5)


def test_the_balanced_rule_trains_each_blocks_two_mixers_about_equally_often():
    """Under a MACs budget uniform sampling trains the costly first stage's softmax about 3 times in
    10; the rule brings every block to about half and half, and every pattern it trains is feasible."""
    table = cost_table("micro", 224)
    budget = Budget.parse(f"{(table.all_linear_macs + 1.5 * table.delta[0]) / 1e9:.6f}gmacs")
    feasible = FeasibleSet("micro", budget)
    shares = {}
    for candidates in (1, 8):  # 1: uniform sampling
        counts = np.zeros((2, 10), np.int64)
        sampler = BalancedSampler(feasible, seed=0, candidates=candidates)
        for step in range(200):
            for bits in sampler.draw(step, 2, counts):
                assert budget.admits(Pattern.from_bits(bits, "micro"), "micro")
        shares[candidates] = counts[1] / counts.sum(0)
    assert shares[1].min() < 0.4 and shares[8].min() > 0.45 and shares[8].max() < 0.55


def test_bad_supernet_files_are_one_line_and_nothing_is_changed(tmp_path, npz_data, capsys):
    d = tmp_path / "sn"
    train_supernet(_spec(npz_data, steps=1), d)
    status, _, err = cli(capsys, "proxy", "LL-LL-LLLL-LL", "--supernet", tmp_path)  # no supernet there
    assert status == 2 and "no supernet there" in err and len(err.strip().splitlines()) == 1
    status, _, err = cli(capsys, "proxy", "LL-LL-LLLL-LL", "--supernet", d, "--variant", "tiny")
    assert status == 2 and "variant 'micro', not variant 'tiny'" in err
    weights = (d / WEIGHTS).read_bytes()
    (d / WEIGHTS).write_bytes(weights[:-8] + b"\0" * 8)
    status, _, err = cli(capsys, "proxy", "LL-LL-LLLL-LL", "--supernet", d)
    assert status == 2 and "corrupted or was replaced" in err and len(err.strip().splitlines()) == 1
    (d / WEIGHTS).write_bytes(weights)
    meta = (d / META).read_text()
    for key, value in (("width", "x"), ("variant", 5)):  # hand-edited: a TypeError traceback, a line naming no file
        edited = json.dumps({**json.loads(meta), "config": {**json.loads(meta)["config"], key: value}})
        (d / META).write_text(edited)
        status, _, err = cli(capsys, "proxy", "LL-LL-LLLL-LL", "--supernet", d)
        assert status == 2 and len(err.strip().splitlines()) == 1, err
        assert f"{d / META}: its config is not one this sola-search reads (" in err and "edited or corrupted" in err
        assert f"(proxy {key} {value!r}: expected " in err and "not supported" not in err, err  # the field's words
        assert (d / META).read_text() == edited and (d / WEIGHTS).read_bytes() == weights
    (d / WEIGHTS).write_bytes(weights[:-8] + b"\0" * 8)
    (d / META).write_text(meta[:50])
    status, _, err = cli(capsys, "proxy", "LL-LL-LLLL-LL", "--supernet", d)
    assert status == 2 and "not JSON" in err
    assert (d / META).read_text() == meta[:50] and (d / WEIGHTS).read_bytes() == weights[:-8] + b"\0" * 8
    with pytest.raises(SolaError, match="supernet steps 0"):
        _spec(npz_data, steps=0)


def test_proxy_with_a_supernet_whose_training_was_stopped_says_how_far_it_got(tmp_path, npz_data, capsys):
    """A stopped training leaves its checkpoint and no supernet.json: `proxy --supernet` said "no supernet
    there ... train one", as if nothing had been trained. It now says how far the training got, in one line,
    nothing changed; an unreadable checkpoint is one line too."""
    d = tmp_path / "sn"

    def kill_at_3(step, steps):
        if step == 3:
            raise _Killed

    with pytest.raises(_Killed):
        train_supernet(_spec(npz_data), d, checkpoint_every=2, progress=kill_at_3)
    ckpt = (d / CHECKPOINT).read_bytes()
    status, out, err = cli(capsys, "proxy", "LL-LL-LLLL-LL", "--supernet", d)
    assert status == 2 and not out and len(err.strip().splitlines()) == 1
    assert f"{d}: its supernet is only trained to step 2 of 4 (its training was stopped" in err
    assert "no supernet there" not in err
    assert sorted(p.name for p in d.iterdir()) == [CHECKPOINT] and (d / CHECKPOINT).read_bytes() == ckpt
    (d / CHECKPOINT).write_bytes(ckpt[:100])  # cut off mid-header
    status, out, err = cli(capsys, "proxy", "LL-LL-LLLL-LL", "--supernet", d)
    assert status == 2 and not out and len(err.strip().splitlines()) == 1
    assert "not a readable supernet checkpoint" in err and (d / CHECKPOINT).read_bytes() == ckpt[:100]


def test_proxy_supernet_of_no_directory_or_of_a_run_without_a_supernet_says_which(tmp_path, capsys):
    """A path that is not there, a run of the train estimator and a supernet run that never trained its
    supernet all said "no supernet there (supernet.json is missing): train one with sola-search run
    --estimator supernet"; each now says which it is, in one line, status 2, nothing changed."""
    runs = tmp_path / "runs"
    train, explicit, pending = (make_run(runs, name, n=4) for name in ("t", "e", "s"))  # run.json names no estimator
    for run, estimator in ((explicit, "train"), (pending, "supernet")):
        config = json.loads((run / "run.json").read_text())
        (run / "run.json").write_text(json.dumps({**config, "estimator": estimator}))
    before = {p: p.read_bytes() for p in sorted(runs.rglob("*")) if p.is_file()}
    for where, message in ((tmp_path / "nope", f"{tmp_path / 'nope'}: no such directory"),
                           (train, f"{train}: a run of estimator 'train', which trains each pattern on its own: it "
                                   "has no supernet"),
                           (explicit, f"{explicit}: a run of estimator 'train'"),
                           (pending, f"{pending}: its supernet is not trained yet (no supernet.json, no checkpoint): "
                                     f"train it with sola-search resume {pending}"),
                           (train / "run.json", f"{train / 'run.json'}: not a directory"),
                           (runs, f"{runs}: no supernet there")):
        status, out, err = cli(capsys, "proxy", "LL-LL-LLLL-LL", "--supernet", where)
        assert status == 2 and not out and len(err.strip().splitlines()) == 1 and message in err, err
    assert {p: p.read_bytes() for p in sorted(runs.rglob("*")) if p.is_file()} == before


@pytest.mark.usefixtures("shared_ray")
def test_run_with_the_supernet_estimator_end_to_end(tmp_path, npz_data, capsys):
    base = dict(budget="2softmax", variant="micro", preset="quick", steps=2, batch_size=32, data=npz_data,
                name="sn", runs_dir=str(tmp_path / "runs"), seed=0, estimator="supernet", supernet_steps=3,
                compile="blocks")  # compiles the scoring on a GPU; the CPU never compiles
    summary = run_search(SearchConfig(**base, trials=20), quiet=True)
    run_dir = tmp_path / "runs" / "sn"
    assert summary.completed == 20 and summary.failed == 0
    stored = json.loads((run_dir / "run.json").read_text())
    assert stored["estimator"] == "supernet" and stored["compile"] == "blocks"
    study = run_study(run_dir)
    done = [t for t in study.trials if t.state == TrialState.COMPLETE]
    assert all(t.user_attrs["estimator"] == "supernet" for t in done)
    supernet = load_supernet(run_dir)
    first = next(t for t in done if "duplicate_of" not in t.user_attrs)
    assert first.values[0] == pytest.approx(supernet.score([first.user_attrs["pattern"]])[0].val_top1)
    assert load_pattern_file(run_dir / "patterns" / f"{first.number}.json")["proxy"]["estimator"] == "supernet"
    sha = supernet.sha256

    # More trials: the supernet is reused, never trained again; the front lacks stand-alone values.
    summary = run_search(SearchConfig(**{**base, "estimator": None, "supernet_steps": None}, trials=24), quiet=True)
    assert summary.completed == 24 and load_supernet(run_dir).sha256 == sha
    assert len(front_without_standalone(study)) >= 1
    status, out, _ = cli(capsys, "pareto", run_dir, "--format", "json", "--no-reports")
    assert status == 0 and {r["estimator"] for r in json.loads(out)} == {"supernet"}
    status, out, _ = cli(capsys, "proxy", first.user_attrs["pattern"], "--supernet", run_dir, "--json")
    assert status == 0 and json.loads(out)["val_top1"] == pytest.approx(first.values[0])

    # Another estimator, or a corrupted supernet: refused in one line, nothing changed.
    status, _, err = cli(capsys, "run", "--budget", "2softmax", "--variant", "micro", "--name", "sn", "--runs-dir",
                         tmp_path / "runs", "--estimator", "train")
    assert status == 2 and "estimator 'supernet', not 'train'" in err
    (run_dir / WEIGHTS).write_bytes(b"not weights")
    status, _, err = cli(capsys, "resume", run_dir, "--trials", "60")
    assert status == 2 and "corrupted or was replaced" in err and (run_dir / WEIGHTS).read_bytes() == b"not weights"


@pytest.mark.slow  # a real run, stopped and resumed (~40 s)
@pytest.mark.usefixtures("shared_ray")
def test_a_run_stopped_while_it_trained_its_supernet_says_it_resumes_from_the_checkpoint(tmp_path, npz_data, capsys):
    """A run killed while it trained its supernet leaves the checkpoint, no weights and no supernet.json. Its
    resume printed "training the run's supernet first (4 steps, ...)", as if from scratch, though it went on
    from the checkpoint; it now says from which step of how many. Until then `proxy --supernet` says how far
    the training got and how to finish it; an unreadable checkpoint is refused before anything starts."""
    runs = tmp_path / "runs"
    status, _, _ = cli(capsys, "run", "--budget", "2softmax", "--variant", "micro", "--preset", "quick", "--steps", 2,
                       "--batch-size", 32, "--data", npz_data, "--name", "sn", "--runs-dir", runs, "--seed", 0,
                       "--estimator", "supernet", "--supernet-steps", 4, "--trials", 3)
    run_dir = runs / "sn"
    assert status == 0 and (run_dir / META).is_file()
    # What a kill during the supernet's training leaves: its checkpoint at step 2 of 4, alone.
    proxy = ProxyConfig.from_dict(run_study(run_dir).user_attrs["proxy"])
    (run_dir / META).unlink()
    (run_dir / WEIGHTS).unlink()

    def kill_at_3(step, steps):
        if step == 3:
            raise _Killed

    with pytest.raises(_Killed):
        train_supernet(SupernetSpec(proxy, "2softmax", steps=4), run_dir, checkpoint_every=2, progress=kill_at_3)
    ckpt = (run_dir / CHECKPOINT).read_bytes()

    status, _, err = cli(capsys, "proxy", "LL-LL-LLLL-LL", "--supernet", run_dir)
    assert status == 2 and len(err.strip().splitlines()) == 1
    assert f"{run_dir}: its supernet is only trained to step 2 of 4" in err
    assert err.strip().endswith(f"finish it with sola-search resume {run_dir}")
    (run_dir / CHECKPOINT).write_bytes(b"\x08" + bytes(7) + b"not json")
    status, _, err = cli(capsys, "resume", run_dir, "--trials", 5)
    assert status == 2 and len(err.strip().splitlines()) == 1 and "not a readable supernet checkpoint" in err
    assert (run_dir / CHECKPOINT).read_bytes() == b"\x08" + bytes(7) + b"not json"
    (run_dir / CHECKPOINT).write_bytes(ckpt)

    status, _, err = cli(capsys, "resume", run_dir, "--trials", 5)
    assert status == 0
    assert "resuming the run's supernet's training from its checkpoint at step 2 of 4, then each trial" in err
    assert "training the run's supernet first" not in err
    assert json.loads((run_dir / META).read_text())["resumed_from"] == 2 and not (run_dir / CHECKPOINT).exists()
    status, out, _ = cli(capsys, "proxy", "LL-LL-LLLL-LL", "--supernet", run_dir, "--json")
    assert status == 0 and json.loads(out)["estimator"] == "supernet"


@pytest.mark.parametrize("argv, message", [
    (["--estimator", "x"], "--estimator 'x': expected train or supernet"),
    (["--estimator", "supernet", "--seeds", "2"], "seeds apply to the train estimator"),
    (["--supernet-steps", "5"], "only with --estimator supernet"),
    (["--estimator", "supernet", "--confirm", "2"], "a supernet score is not one"),
])
def test_bad_estimator_options_are_one_line_and_status_2(tmp_path, capsys, argv, message):
    status, _, err = cli(capsys, "run", "--budget", "2softmax", "--variant", "micro", "--runs-dir", tmp_path, *argv)
    assert status == 2 and message in err and len(err.strip().splitlines()) == 1
    assert not any(tmp_path.iterdir())

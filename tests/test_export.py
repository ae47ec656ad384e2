"""`sola-search export` and building a backbone from a pattern file: `load_backbone` and timm."""

from __future__ import annotations

import json

import optuna
import pytest
import timm
import torch
from test_results_support import make_run

import sola_search
from sola_search.cli import main
from sola_search.errors import SolaError
from sola_search.results.export import pick_trial
from sola_search.results.front import knee, pareto_front, trials_frame
from sola_search.results.patterns import load_pattern_file
from sola_search.results.runs import open_run
from sola_search.space import Pattern, build_backbone


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return make_run(tmp_path_factory.mktemp("exp") / "runs", "r", n=16)


def _export(capsys, run, tmp_path, pick, name="out.json"):
    code = main(["export", str(run), "--pick", pick, "--out", str(tmp_path / name)])
    out, err = capsys.readouterr()
    assert code == 0 and not err, err
    return load_pattern_file(tmp_path / name), out


def test_out_may_name_a_directory(run, capsys, tmp_path):
    assert main(["export", str(run), "--pick", "trial:3", "--out", str(tmp_path)]) == 0
    assert capsys.readouterr().out.startswith(f"{tmp_path / 'r-trial3.json'}: trial 3 (trial:3)")
    assert load_pattern_file(tmp_path / "r-trial3.json")["provenance"]["trial"] == 3


def test_out_makes_its_missing_folders_and_refuses_a_file_on_the_way(run, capsys, tmp_path, monkeypatch):
    """Like every command that writes a file (pareto and compare --plot, latency and calibrate --out): the
    missing folders are made once the input is checked; a file on the way is one line naming it, and a
    write that fails leaves no folder behind."""
    assert main(["export", str(run), "--pick", "knee", "--out", str(tmp_path / "a" / "b" / "k.json")]) == 0
    assert load_pattern_file(tmp_path / "a" / "b" / "k.json")["provenance"]["pick"] == "knee"
    capsys.readouterr()
    (tmp_path / "f").write_text("mine")
    assert main(["export", str(run), "--pick", "knee", "--out", str(tmp_path / "f" / "g" / "k.json")]) == 2
    err = capsys.readouterr().err
    assert f"{tmp_path / 'f'} is not a directory" in err and err.count("\n") == 1, err
    assert main(["export", str(run), "--pick", "trial:999", "--out", str(tmp_path / "n" / "k.json")]) == 2
    assert not (tmp_path / "n").exists()

    def full(path, text):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("sola_search.results.patterns.write_atomic", full)
    assert main(["export", str(run), "--pick", "knee", "--out", str(tmp_path / "n" / "m" / "k.json")]) == 2
    assert "No space left on device" in capsys.readouterr().err and not (tmp_path / "n").exists()


def test_picks(run, capsys, tmp_path):
    study = open_run(run).study
    frame = trials_frame(study)
    front = pareto_front(frame)
    rec, out = _export(capsys, run, tmp_path, "knee")
    assert rec["provenance"]["trial"] == int(knee(front)["number"]) and rec["provenance"]["pick"] == "knee"
    assert f"trial {rec['provenance']['trial']} (knee) {rec['pattern']}" in out and "load_backbone(" in out
    best = front.loc[front["val_top1"].idxmax()]
    assert pick_trial(study, "best") == best["number"]
    limit = float(front["gmacs"].median())
    ok = frame[frame["feasible"] & (frame["gmacs"] <= limit)]
    assert pick_trial(study, f"under:{limit}gmacs") == ok.loc[ok["val_top1"].idxmax(), "number"]
    under = pick_trial(study, "under:2softmax")
    assert frame.loc[under, "softmax_layers"] <= 2
    rec, _ = _export(capsys, run, tmp_path, "trial:5")
    assert rec["provenance"]["trial"] == 5 and rec["pattern"] == study.trials[5].user_attrs["pattern"]


def test_default_out_is_named_after_run_and_trial(run, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["export", str(run), "--pick", "trial:2"]) == 0
    capsys.readouterr()
    assert load_pattern_file(tmp_path / "r-trial2.json")["provenance"]["trial"] == 2


def test_exported_backbone_equals_build_backbone(run, capsys, tmp_path):
    rec, _ = _export(capsys, run, tmp_path, "knee")
    path = tmp_path / "out.json"
    torch.manual_seed(0)
    a = sola_search.load_backbone(path, num_classes=10)
    torch.manual_seed(0)
    b = build_backbone(rec["variant"], rec["pattern"], num_classes=10)
    assert str(a.pattern) == rec["pattern"] and a.variant.name == "micro"
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)
    torch.manual_seed(0)
    c = timm.create_model("sola_vision_micro", pattern=str(path), num_classes=10)
    assert all(torch.equal(c.state_dict()[k], sa[k]) for k in sa)
    feats = timm.create_model("sola_vision_micro", pattern=path, features_only=True)
    maps = feats(torch.randn(1, 3, 64, 64))
    assert [m.shape[1] for m in maps] == [16, 32, 64, 128]
    assert [m.shape[-1] for m in maps] == [16, 8, 4, 2]
    assert feats.feature_info.reduction() == [4, 8, 16, 32]


def test_load_backbone_errors(tmp_path, run, capsys):
    (tmp_path / "bad.json").write_text("{oops")
    with pytest.raises(SolaError, match="not JSON"):
        sola_search.load_backbone(tmp_path / "bad.json")
    rec, _ = _export(capsys, run, tmp_path, "knee")
    with pytest.raises(SolaError, match="variant comes from the file"):
        sola_search.load_backbone(tmp_path / "out.json", variant="tiny")
    rec["pattern"] = str(Pattern.parse(rec["pattern"]).stages[0]) + "-L-L-L"
    (tmp_path / "edited.json").write_text(json.dumps(rec))
    with pytest.raises(SolaError, match="found 1 blocks, expected 2"):
        sola_search.load_backbone(tmp_path / "edited.json")


@pytest.mark.parametrize("pick,message", [
    ("trial:999", "no trial 999"),
    ("trial:x", "expected trial:N"),
    ("trial:{failed}", "is FAIL: CUDA out of memory (simulated), not completed"),
    ("under:0.001gmacs", "no completed feasible trial within 0.001gmacs"),
    ("under:lots", "budget term 'lots' not understood"),
    ("nearest", "--pick 'nearest' not understood"),
])
def test_bad_picks(run, capsys, tmp_path, pick, message):
    failed = next(t.number for t in open_run(run).study.trials if t.state.name == "FAIL")
    code = main(["export", str(run), "--pick", pick.format(failed=failed), "--out", str(tmp_path / "x.json")])
    out, err = capsys.readouterr()
    assert code == 2 and not out and err.count("\n") == 1 and message in err
    assert not (tmp_path / "x.json").exists()


def test_export_of_missing_run(capsys, tmp_path):
    assert main(["export", str(tmp_path / "nope")]) == 2
    assert "no such run directory" in capsys.readouterr().err


def test_empty_study_has_no_knee(capsys, tmp_path):
    (tmp_path / "e").mkdir()
    s = optuna.create_study(study_name="e", storage=f"sqlite:///{tmp_path / 'e' / 'study.db'}",
                            directions=["maximize", "minimize"])
    s.set_user_attr("variant", "micro")
    assert main(["export", str(tmp_path / "e"), "--pick", "knee"]) == 2
    assert "no completed feasible trial yet" in capsys.readouterr().err


def test_the_front_and_under_filter_with_the_one_budget_test(tmp_path):
    """`trials_frame`'s `feasible` (the study's budget) and `--pick under:<budget>` (any budget form)
    keep exactly the trials whose recorded costs are within every limit, as comparing each limit by
    hand says."""
    from sola_search.space import Budget, cost_table

    params = cost_table("micro").params
    study_budget = Budget(max_softmax=4, max_macs=500_000_000, max_params=params)
    run = make_run(tmp_path, "b", budget=str(study_budget), n=20)
    study = open_run(run).study
    frame = trials_frame(study)

    def by_hand(b: Budget, softmax, macs, p) -> bool:
        return ((b.max_softmax is None or softmax <= b.max_softmax) and (b.max_macs is None or macs <= b.max_macs)
                and (b.max_params is None or p <= b.max_params))

    for t, row in zip(study.trials, frame.itertuples(), strict=True):
        a = t.user_attrs
        done = t.state == optuna.trial.TrialState.COMPLETE and all(c <= 0 for c in t.constraints.values())
        assert row.feasible == (done and by_hand(study_budget, a["softmax_layers"], a["macs"], a["params"]))
    assert 0 < frame["feasible"].sum() < (frame["state"] == "COMPLETE").sum() - 2  # the MACs limit removed some

    macs = int(frame.loc[frame["feasible"], "macs"].median())
    for softmax, limit, text_params in [(2, None, None), (None, macs, None), (1, macs, None), (None, None, params),
                                        (None, None, params - 1), (3, macs, params)]:
        b = Budget(softmax, limit, text_params)
        keep = frame[frame["feasible"]]
        keep = keep[[by_hand(b, r.softmax_layers, r.macs, r.params) for r in keep.itertuples()]]
        for text in {str(b), str(b).replace(f"{(limit or 0) / 1e9:.15g}gmacs", f"{2 * (limit or 0) / 1e9:.15g}gflops")}:
            if keep.empty:
                with pytest.raises(SolaError, match="no completed feasible trial within"):
                    pick_trial(study, f"under:{text}")
            else:
                best = keep.sort_values(["val_top1", "gmacs", "number"], ascending=[False, True, True]).iloc[0]
                assert pick_trial(study, f"under:{text}") == best["number"]


def test_under_a_latency_limit_reads_the_latency_each_trial_recorded(tmp_path):
    """A run with --latency (objective gmacs) records each trial's latency_ms: `under:...ms` picks by it
    (it found no trial within any ms limit), a duplicate by its source's; a run without a table says so."""
    study = open_run(make_run(tmp_path, "lat", n=12, latency=True)).study
    frame = trials_frame(study)
    ok = frame[frame["feasible"] & (frame["softmax_layers"] <= 2)]
    best = ok.sort_values(["val_top1", "gmacs", "number"], ascending=[False, True, True]).iloc[0]
    assert pick_trial(study, "under:12ms") == best["number"]
    assert frame["latency_ms"].tolist()[-1] == frame["latency_ms"].tolist()[0]  # the duplicate of trial 0
    with pytest.raises(SolaError, match="no completed feasible trial within 9ms"):
        pick_trial(study, "under:9ms")
    plain = open_run(make_run(tmp_path, "plain", n=4)).study
    with pytest.raises(SolaError, match=r"--pick under:12ms: run plain recorded no latency .*--latency") as e:
        pick_trial(plain, "under:12ms")
    assert "\n" not in str(e.value)

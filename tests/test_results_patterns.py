"""Pattern files: round trip, atomic writes, records from trials, and every validation error."""

from __future__ import annotations

import copy
import json
import os

import optuna
import pytest
from test_results_support import make_run

from sola_search.errors import SolaError
from sola_search.results.patterns import (
    SCHEMA,
    load_pattern_file,
    make_pattern_record,
    pattern_record_from_trial,
    validate_pattern_record,
    write_pattern_file,
)
from sola_search.space import Pattern, model_cost


def _record(pattern="LL-LS-LLSS-SL", variant="micro"):
    c = model_cost(variant, Pattern.parse(pattern, variant), 224)
    return make_pattern_record(variant, pattern, resolution=224, val_top1=0.61, val_loss=1.1, macs=c.macs,
                               params=c.params, proxy={"preset": "quick"}, study="s", trial=3, seed=0)


def test_round_trip(tmp_path):
    rec = _record()
    path = write_pattern_file(tmp_path / "sub" / "3.json", rec)
    assert path == tmp_path / "sub" / "3.json"
    assert load_pattern_file(path) == json.loads(json.dumps(rec))
    back = load_pattern_file(path)
    assert back["schema"] == SCHEMA and back["version"] == 1
    assert Pattern.from_layer_types(back["layer_types"], "micro") == Pattern.parse(back["pattern"], "micro")
    assert back["metrics"]["gflops"] == pytest.approx(2 * back["metrics"]["gmacs"])
    assert back["softmax_layers"] == 4 and back["provenance"]["trial"] == 3


def test_atomic_write_leaves_no_temp_and_keeps_old_file_on_failure(tmp_path, monkeypatch):
    path = tmp_path / "p.json"
    write_pattern_file(path, _record())
    write_pattern_file(path, _record("SS-LL-LLLL-LL"))  # replace
    assert load_pattern_file(path)["pattern"] == "SS-LL-LLLL-LL"
    assert sorted(os.listdir(tmp_path)) == ["p.json"]
    umask = os.umask(0)
    os.umask(umask)
    assert os.stat(path).st_mode & 0o777 == 0o666 & ~umask  # readable like any file, not mkstemp's 0600

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(SolaError, match="cannot write pattern file .*: disk full"):  # one line for the CLI
        write_pattern_file(path, _record("LL-LL-LLLL-LL"))
    monkeypatch.undo()
    assert load_pattern_file(path)["pattern"] == "SS-LL-LLLL-LL"  # old content intact
    assert sorted(os.listdir(tmp_path)) == ["p.json"]  # temp file removed


def test_write_refuses_an_invalid_record(tmp_path):
    rec = _record()
    rec["layer_types"] = rec["layer_types"][:-1]
    with pytest.raises(SolaError, match="layer_types has 9 entries, expected 10"):
        write_pattern_file(tmp_path / "x.json", rec)
    assert not list(tmp_path.iterdir())


def _mutations():
    def set_(path, value):
        def f(r):
            d = r
            for k in path[:-1]:
                d = d[k]
            d[path[-1]] = value
        return f

    def drop(path):
        def f(r):
            d = r
            for k in path[:-1]:
                d = d[k]
            del d[path[-1]]
        return f

    return [
        (drop(["variant"]), "missing key 'variant'"),
        (drop(["metrics", "macs"]), "missing key 'metrics.macs'"),
        (drop(["provenance"]), "missing key 'provenance'"),
        (set_(["version"], 2), "schema version 2 is not supported"),
        (set_(["schema"], "something/else"), "'schema' is 'something/else'"),
        (set_(["resolution"], "224"), "'resolution' is \"224\", expected integer"),
        (set_(["softmax_layers"], True), "'softmax_layers' is true, expected integer"),
        (set_(["metrics", "val_top1"], "high"), "'metrics.val_top1' is \"high\", expected number or null"),
        (set_(["metrics", "val_top1"], 61.0), "'metrics.val_top1' is 61.0, expected a fraction"),
        (set_(["variant"], "huge"), "unknown variant 'huge'"),
        (set_(["pattern"], "LL-LS-LLSS-SS"), "'pattern' LL-LS-LLSS-SS does not match 'layer_types'"),
        (set_(["pattern"], "LL-LS-LLS-SL"), "stage 3 'LLS': found 3 blocks, expected 4"),
        (set_(["pattern"], "LL-LX-LLSS-SL"), "found letters 'X'"),
        (set_(["layer_types", 0], "conv"), "layer_types[0] = 'conv'"),
        (set_(["softmax_layers"], 3), "'softmax_layers' is 3, but pattern"),
        (set_(["proxy"], []), "'proxy' is [], expected object"),
        (set_(["metrics", "params"], 1.5), "'metrics.params' is 1.5, expected integer"),
        # the cost metrics are the exact count of the model the file builds, at its resolution
        (set_(["resolution"], 512),
         "at 512 px has 2099016704 and 956328 (with a 1,000-class head); was the file edited?"),
        (set_(["metrics", "macs"], 1), "'metrics' give 1 MACs"),
        (set_(["metrics", "params"], 5), "and 5 params, but micro"),
        (set_(["metrics", "gmacs"], 123), "'metrics.gmacs' is 123, but its 'macs' make it"),
    ]


@pytest.mark.parametrize("mutate,message", _mutations())
def test_hand_edits_are_named(tmp_path, mutate, message):
    rec = copy.deepcopy(_record())
    mutate(rec)
    path = tmp_path / "edited.json"
    path.write_text(json.dumps(rec))
    with pytest.raises(SolaError) as e:
        load_pattern_file(path)
    assert message in str(e.value) and str(path) in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize("text,message", [
    ("{not json", "not JSON"),
    ("[1, 2]", "expected a JSON object, found list"),
    ("", "not JSON"),
    ('{"schema": "sola-search/pattern", "version": 1, "metrics": {"val_top1": NaN}}', "missing key"),
])
def test_corrupt_files_are_named(tmp_path, text, message):
    path = tmp_path / "bad.json"
    path.write_text(text)
    with pytest.raises(SolaError, match=message.replace("[", r"\[")):
        load_pattern_file(path)


def test_missing_and_binary_files(tmp_path):
    with pytest.raises(SolaError, match="no such file"):
        load_pattern_file(tmp_path / "nope.json")
    (tmp_path / "pickle.json").write_bytes(b"\x80\x04\x95\x00\xff")
    with pytest.raises(SolaError, match="cannot read it|not JSON"):
        load_pattern_file(tmp_path / "pickle.json")


def test_nan_metric_is_rejected():
    rec = _record()
    rec["metrics"]["val_loss"] = float("nan")
    with pytest.raises(SolaError, match="finite"):
        validate_pattern_record(rec)


def test_records_from_every_completed_trial(tmp_path):
    d = make_run(tmp_path, n=6, failed=1, infeasible=1)
    study = optuna.load_study(study_name="r1", storage=f"sqlite:///{d / 'study.db'}")
    completed = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    for t in completed:
        rec = pattern_record_from_trial(study, t)
        path = write_pattern_file(d / "patterns" / f"{t.number}.json", rec)
        back = load_pattern_file(path)
        assert back["metrics"]["val_top1"] == t.values[0]
        assert back["metrics"]["gmacs"] == pytest.approx(t.values[1])
        assert back["variant"] == "micro" and back["resolution"] == 224 and back["budget"] == "4softmax"
        assert back["provenance"] == dict(study="r1", trial=t.number, seed=0, sola_search_version="0.1.0",
                                          created=back["provenance"]["created"])
        assert back["proxy"]["preset"] == "quick" and back["proxy"]["config"]["width"] == 0.25
        assert back["metrics"]["val_loss"] == pytest.approx(1.5 - t.values[0])
    dup = completed[-1]
    assert "duplicate_of" in dup.user_attrs and "pattern" not in dup.user_attrs
    assert pattern_record_from_trial(study, dup)["pattern"] == study.trials[0].user_attrs["pattern"]
    assert pattern_record_from_trial(study, study.trials[0])["baseline"]
    failed = next(t for t in study.trials if t.state == optuna.trial.TrialState.FAIL)
    with pytest.raises(SolaError, match="no objective values"):
        pattern_record_from_trial(study, failed)
    assert sorted(os.listdir(d / "patterns")) == sorted(f"{t.number}.json" for t in completed)

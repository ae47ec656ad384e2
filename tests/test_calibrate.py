"""`sola-search calibrate` (issue 14): a step ladder x seeds over a stratified pattern set, each rung
ranked against the top one; the table, JSON and PNG; a rerun reuses every finished training (a
records file cut by a kill trains only what it lost); bad values are one line and exit 2; `run
--calibration` takes steps and seeds, or refuses in one line; the statistics on hand-made numbers."""

from __future__ import annotations

import json
import random
import re
import statistics

import pytest
from cli_support import run

from sola_search.errors import SolaError
from sola_search.results.calibration import analyse
from sola_search.results.fidelity import projected_r, tau_of_r
from sola_search.search.calibrate import apply_calibration, other_configs, plan_jobs, read_records
from sola_search.search.config import SearchConfig
from sola_search.space import Budget
from sola_search.space.feasible import stratified_patterns

PATTERNS = [f"p{i}" for i in range(8)]


def _runs(score, ladder=(4, 8, 16), seeds=(0, 1)) -> dict:
    return {(st, p, s): dict(status="ok", val_top1=score(st, i, s), train_s=st / 10, packed=2)
            for st in ladder for i, p in enumerate(PATTERNS) for s in seeds}


def test_statistics_reliable_data_recommend_the_cheapest_rung_and_noise_cannot_rank():
    perfect = analyse([4, 8, 16], [0, 1], PATTERNS, _runs(lambda st, i, s: i / 10 + st / 1000))
    assert perfect["rungs"][0]["tau_vs_top"] == 1 and perfect["rungs"][0]["seed_tau"] == 1
    assert perfect["rungs"][-1]["split_half_tau"] == 1
    assert all(e["tau"] == pytest.approx(1) for r in perfect["rungs"] for e in r["expected"])
    assert [e["basis"] for e in perfect["rungs"][0]["expected"]][:3] == ["measured", "measured", "projected"]
    rec = perfect["recommendation"]
    assert rec["ranks"] and (rec["steps"], rec["seeds"], rec["cost"]) == (4, 1, 4)

    rng = random.Random(1)
    noise = analyse([4, 8, 16], [0, 1], PATTERNS, _runs(lambda st, i, s: rng.random()))
    assert not noise["recommendation"]["ranks"]
    assert "cannot rank placements" in noise["recommendation"]["reason"]
    assert "does not reproduce itself" in noise["recommendation"]["reason"]

    # A top rung that reproduces itself over rungs of noise: only the top rung ranks (the reference
    # against an independent measurement of itself), with one seed.
    rng = random.Random(2)
    late = analyse([4, 16], [0, 1], PATTERNS,
                   _runs(lambda st, i, s: i / 10 + rng.gauss(0, 0.01) if st == 16 else rng.random(), (4, 16)))
    assert late["rungs"][0]["expected"][-1]["tau"] < 0.6
    assert (late["recommendation"]["steps"], late["recommendation"]["seeds"]) == (16, 1)


def test_a_top_rung_with_more_seeds_is_the_reference_every_rung_is_ranked_against():
    """`--reference-seeds 6`: the top rung scores a pattern only when all six of its seeds did; the lower
    rungs keep their two, and their expected tau is against the six-seed mean (a closer reference
    than two seeds: higher)."""
    rng = random.Random(3)
    truth = {p: i / 10 for i, p in enumerate(PATTERNS)}
    runs = {(st, p, s): dict(status="ok", val_top1=truth[p] + rng.gauss(0, 0.25), train_s=st / 10, packed=2)
            for st in (4, 16) for p in PATTERNS for s in range(6 if st == 16 else 2)}
    del runs[(16, "p7", 5)]  # one reference training missing: p7 is not in the reference
    six = analyse([4, 16], [0, 1], PATTERNS, runs, reference_seeds=range(6))
    low, top = six["rungs"]
    assert (low["seeds"], low["of"], low["trainings"]) == (2, 16, 16)
    assert (top["seeds"], top["of"], top["trainings"], top["patterns_scored"]) == (6, 48, 47, 7)
    assert top["gpu_s_per_pattern"] == pytest.approx(6 * 1.6 / 2)
    for k in (1, 2, 4):  # projected against the six-seed mean of the reference, not a two-seed one
        six_r, two_r = (projected_r(low["r_vs_top_single"], low["seed_r"], k, top["seed_r"], m) for m in (6, 2))
        assert low["expected"][k - 1]["tau"] == pytest.approx(tau_of_r(six_r)) and six_r > two_r
    two = analyse([4, 16], [0, 1], PATTERNS, runs)  # the same runs, the reference's first two seeds only
    assert two["rungs"][1]["patterns_scored"] == 8 and two["rungs"][1]["seeds"] == 2


def test_only_missing_trainings_are_planned_and_a_grown_reference_trains_its_new_seeds_alone():
    """Rung 4 done; the reference (rung 16) recorded with seeds 0-1 but p5's seed 1 lost, grown to four
    seeds: each missing seed trains alone in packs of 4 patterns, nothing at rung 4. A rung with nothing
    recorded trains each pattern's seeds together."""
    pats = [f"p{i}" for i in range(6)]
    done = {(st, p, s) for st in (4, 16) for p in pats for s in (0, 1)} - {(16, "p5", 1)}
    seeds_of = lambda st: [0, 1, 2, 3] if st == 16 else [0, 1]  # noqa: E731
    jobs = plan_jobs((4, 16), pats, seeds_of, lambda st, p, s: (st, p, s) in done, pack=4)
    assert jobs == [(16, ["p5"], 1, 1), (16, pats[:4], 2, 1), (16, pats[4:], 2, 1), (16, pats[:4], 3, 1),
                    (16, pats[4:], 3, 1)]
    records = {("p0", 4, 0, "a"): {}, ("p0", 4, 1, "b"): {}, ("p1", 16, 0, "c"): {}, ("q", 4, 0, "b"): {}}
    assert other_configs(records, pats, {4: "a", 16: "d"}) == 2  # p0's seed 1 at 4, p1 at 16; q is not ours
    fresh = plan_jobs((4, 16), pats, seeds_of, lambda *_: False, pack=4)
    assert fresh[:6] == [(16, [p], 0, 4) for p in pats]  # 4 seeds fill a pack of 4: one pattern each
    assert fresh[6:] == [(4, pats[0:2], 0, 2), (4, pats[2:4], 0, 2), (4, pats[4:6], 0, 2)]


@pytest.mark.parametrize("values, message", [
    (dict(val_top1="abc"), "val_top1 'abc'"), (dict(val_top1=float("inf")), "val_top1 inf"),
    (dict(val_top1=-5), "val_top1 -5"), (dict(train_s="x"), "train_s 'x'"), (dict(packed=0), "packed 0"),
    (dict(status="weird"), "status 'weird'"), (dict(val_loss="x"), "val_loss 'x'"),
    (dict(val_by_group=5), "val_by_group 5")])
def test_a_record_with_values_no_training_writes_is_one_line(tmp_path, values, message):
    """A records line edited by hand (or damaged into other JSON) was taken, then `calibrate` ended in a
    traceback in the analysis (val_top1 'abc' or inf, train_s 'x', packed 'x') or used a top-1 of -5."""
    from sola_search.search.calibrate import RECORD

    good = dict(record=RECORD, pattern="LL-LL-LLLL-LL", steps=4, seed=0, config="c", status="ok", val_top1=0.5,
                val_loss=1.2, train_s=1.0, wall_s=1.1, packed=2, images_per_s=9.0, val_by_group={})
    diverged = good | dict(seed=1, status="nan", val_loss=float("nan"))  # what a diverged training writes
    path = tmp_path / "c.records.jsonl"
    path.write_text(json.dumps(good) + "\n" + json.dumps(diverged) + "\n")
    assert len(read_records(path)) == 2
    path.write_text(json.dumps(good) + "\n" + json.dumps(good | dict(seed=2) | values) + "\n")
    with pytest.raises(SolaError, match=f"c.records.jsonl, line 2: a calibration record with {re.escape(message)}"):
        read_records(path)


def test_an_output_whose_identity_is_damaged_is_refused_in_one_line(tmp_path, npz_data, capsys):
    """`"identity": 5` in an existing --out was a traceback (AttributeError) before anything started."""
    out = tmp_path / "c.json"
    out.write_text(json.dumps(dict(format="sola-search-calibration", version=1, identity=5)))
    before = out.read_text()
    status, _, err = run(capsys, "calibrate", "--data", npz_data, "--variant", "micro", "--budget", "2softmax",
                         "--ladder", "1,2", "--patterns", "6", "--out", out, "--quiet")
    assert status == 2 and "exists and is not a calibration; nothing was changed" in err and err.count("\n") == 1, err
    assert out.read_text() == before and sorted(p.name for p in tmp_path.iterdir()) == ["c.json"]


def test_an_out_under_a_file_is_refused_before_ray_starts(tmp_path, npz_data, capsys, monkeypatch):
    """`--out afile/c.json` started Ray, trained the first pack, then ended in a FileExistsError traceback
    (the records beside --out could not be written): now one line before anything starts. A missing folder
    is made once trainings finish, as every command that writes a file makes its folders."""
    import sola_search.search.cluster as cluster

    monkeypatch.setattr(cluster, "ray_session", lambda *a, **k: pytest.fail("Ray started before --out was checked"))
    (tmp_path / "afile").write_text("mine")
    status, out, err = run(capsys, "calibrate", "--data", npz_data, "--variant", "micro", "--budget", "2softmax",
                           "--ladder", "1,2", "--patterns", "6", "--out", tmp_path / "afile" / "c.json", "--quiet")
    assert status == 2 and not out and err.count("\n") == 1, err
    assert f"--out {tmp_path / 'afile' / 'c.json'}: {tmp_path / 'afile'} is not a directory" in err
    assert (tmp_path / "afile").read_text() == "mine" and sorted(p.name for p in tmp_path.iterdir()) == ["afile"]


def test_the_stratified_set_is_the_fidelity_protocols_and_deterministic():
    a = stratified_patterns("micro", Budget.parse("2softmax"), 8, seed=0)
    assert a == stratified_patterns("micro", Budget.parse("2softmax"), 8, seed=0)
    names = [n for n, _ in a]
    assert names[0] == "all-linear" and {"stage-1-only", "stage-2-only", "stage-3-only"} <= set(names)
    assert len({str(p) for _, p in a}) == 8 and all(p.softmax_layers <= 2 for _, p in a)
    assert len(stratified_patterns("micro", Budget.parse("1softmax"), 50)) == 11  # all there is (10 blocks)


@pytest.mark.slow  # 171 s in CI's two processes (four calibrations, three worker start-ups); CI's 15 minutes
def test_calibrate_writes_table_json_png_and_a_rerun_trains_only_what_is_missing(tmp_path, npz_data, capsys,
                                                                                 shared_ray):
    out = tmp_path / "cal" / "c.json"
    argv = ["calibrate", "--data", npz_data, "--variant", "micro", "--budget", "2softmax", "--preset", "quick",
            "--ladder", "1,2", "--patterns", "6", "--seeds", "2", "--batch-size", "8", "--pack", "12",
            "--out", out, "--quiet"]
    status, stdout, err = run(capsys, *argv)
    assert status == 0, err
    assert "24 trained, 0 from the records" in stdout and "recommendation:" in stdout and "split-half" in stdout
    cal = json.loads(out.read_text())
    assert cal["format"] == "sola-search-calibration" and cal["ladder"] == [1, 2] and cal["seeds"] == [0, 1]
    assert [r["steps"] for r in cal["rungs"]] == [1, 2] and len(cal["patterns"]) == 6
    assert cal["identity"]["variant"] == "micro" and cal["identity"]["budget"] == "2softmax"
    assert {"ranks"} <= set(cal["recommendation"]) and all(len(v) == 6 for v in cal["scores"].values())
    assert (tmp_path / "cal" / "c.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    records = tmp_path / "cal" / "c.records.jsonl"
    assert len(read_records(records)) == 24

    # The same command again trains nothing.
    status, stdout, err = run(capsys, *argv)
    assert status == 0 and "0 trained, 24 from the records" in stdout, err

    # Another calibration never replaces it: one line naming the difference, the file unchanged.
    before = out.read_text()
    status, _, err = run(capsys, *[a if a != "1,2" else "1,3" for a in argv])
    assert status == 2 and "holds another calibration" in err and "ladder [1, 2] there, [1, 3] here" in err
    assert err.count("\n") == 1 and out.read_text() == before

    # A reference of three seeds, the records copied beside another output as a kill mid-write left them (the
    # last record lost, the one before cut in half: one pattern's two seeds at the top rung): those two train
    # again with each pattern's third top-rung seed, the cut line stays, ignored; the table says the reference's
    # seeds. (One calibration, one worker start-up: CI's 15 minutes.)
    more = tmp_path / "cal" / "more.json"
    lines = records.read_text().splitlines(keepends=True)
    (tmp_path / "cal" / "more.records.jsonl").write_text("".join(lines[:22]) + lines[22][:30])
    assert len(read_records(tmp_path / "cal" / "more.records.jsonl")) == 22
    status, stdout, err = run(capsys, *[a if a != out else more for a in argv if a != "--quiet"],
                              "--reference-seeds", "3")
    assert status == 0 and "8 trained, 22 from the records" in stdout, err
    assert "ready after" in err and "kernels" in err  # not quiet: where the start-up went
    assert "the top rung's 3-seed mean" in stdout and "2 seeds, the top rung's 3" in stdout
    grown = json.loads(more.read_text())
    assert grown["seeds"] == [0, 1] and grown["reference_seeds"] == [0, 1, 2] and grown["reused"] == 22
    assert [len(v) for v in grown["scores"]["2"].values()] == [3] * 6 and grown["rungs"][1]["seeds"] == 3
    assert len(read_records(tmp_path / "cal" / "more.records.jsonl")) == 30

    # run --calibration: this one ranks nothing (2 steps on noise), so it is refused, plainly.
    runs = tmp_path / "runs"
    status, _, err = run(capsys, "run", "--budget", "2softmax", "--calibration", out, "--runs-dir", runs)
    if not cal["recommendation"]["ranks"]:
        assert status == 2 and "found no steps and seeds that rank placements" in err and err.count("\n") == 1
        assert "run without --calibration" in err and not runs.exists()



@pytest.mark.parametrize("extra, message", [
    (["--ladder", "300,150"], "--ladder '300,150': the rungs must increase"),
    (["--ladder", "x"], "--ladder 'x': expected increasing whole numbers"),
    (["--ladder", "300"], "expected at least two rungs"),
    (["--seeds", "0"], "--seeds 0: expected 2 to 64"),
    (["--seeds", "1"], "seed-to-seed agreement needs two seeds"),
    (["--seeds", "3", "--reference-seeds", "2"], "--reference-seeds 2: expected 3 (--seeds) to 64"),
    (["--patterns", "5"], "--patterns 5: expected 6 to 1000"),
    (["--budget", "8bananas"], "budget"),
    (["--variant", "huge"], "huge"),
    (["--data", "nothing:here"], "nothing"),
])
def test_bad_calibrate_values_are_one_line_and_status_2(tmp_path, npz_data, capsys, extra, message):
    argv = ["--data", npz_data, "--variant", "micro", "--budget", "2softmax", *extra]  # the last one given wins
    status, _, err = run(capsys, "calibrate", *argv, "--out", tmp_path / "c" / "c.json", "--quiet")
    assert status == 2 and message in err and err.count("\n") == 1, err
    assert not (tmp_path / "c").exists()


CALIBRATION = dict(format="sola-search-calibration", version=1,
                   identity=dict(data="recall", variant="small", budget="8softmax", preset="default", batch_size=256),
                   recommendation=dict(ranks=True, steps=600, seeds=2, expected_tau=0.65, basis="projected"))


@pytest.mark.slow
def test_run_calibration_takes_steps_and_seeds_and_explicit_ones_win(tmp_path, npz_data, capsys, shared_ray):
    good = tmp_path / "good.json"
    good.write_text(json.dumps(CALIBRATION | dict(identity=dict(data=npz_data, variant="micro", budget="2softmax",
                                                                 preset="quick", batch_size=8, lr=1e-3),
                                                  recommendation=dict(ranks=True, steps=3, seeds=2,
                                                                      expected_tau=0.7, basis="measured"))))
    runs = tmp_path / "runs"
    status, _, err = run(capsys, "run", "--budget", "2softmax", "--calibration", good, "--steps", "2",
                         "--trials", "1", "--no-baselines", "--runs-dir", runs, "--name", "cal", "--quiet")
    assert status == 0, err
    assert "3 steps x 2 seeds" in err and "--steps 2 given: it wins" in err
    stored = json.loads((runs / "cal" / "run.json").read_text())
    assert (stored["steps"], stored["seeds"], stored["variant"], stored["data"]) == (2, 2, "micro", npz_data)
    assert (stored["batch_size"], stored["lr"]) == (8, 1e-3)  # as the calibration measured
    assert stored["calibration"]["given"] == ["--steps 2"] and stored["calibration"]["recommended"]["steps"] == 3


def test_run_calibration_refuses_what_is_not_one_or_does_not_match(tmp_path, capsys):
    runs = tmp_path / "runs"
    other = tmp_path / "other.json"
    other.write_text("{}")
    status, _, err = run(capsys, "run", "--budget", "2softmax", "--calibration", other, "--runs-dir", runs)
    assert status == 2 and "is not a calibration" in err and err.count("\n") == 1 and not runs.exists()
    path = tmp_path / "cal.json"
    path.write_text(json.dumps(CALIBRATION))
    status, _, err = run(capsys, "run", "--budget", "2softmax", "--variant", "micro", "--calibration", path,
                         "--runs-dir", runs)
    assert status == 2 and "variant 'small', not 'micro'" in err and "budget '8softmax', not '2softmax'" in err
    assert err.count("\n") == 1 and not runs.exists()
    cfg, notes = apply_calibration(SearchConfig(budget="8softmax", seeds=4), str(path))
    assert (cfg.steps, cfg.seeds, cfg.data, cfg.variant, cfg.preset) == (600, 4, "recall", "small", "default")
    assert "--seeds 4 given: it wins" in notes[0] and cfg.calibration["given"] == ["--seeds 4"]
    # The recommendation was measured at a batch size (and learning rate): the run trains at them too.
    assert (cfg.batch_size, cfg.lr) == (256, None)  # a file from before --lr: the preset's
    path.write_text(json.dumps(CALIBRATION | dict(identity=CALIBRATION["identity"] | dict(lr=1e-3))))
    cfg, _ = apply_calibration(SearchConfig(budget="8softmax"), str(path))
    assert (cfg.batch_size, cfg.lr) == (256, 1e-3)
    with pytest.raises(SolaError, match="lr 0.001, not 0.002"):
        apply_calibration(SearchConfig(budget="8softmax", lr=2e-3), str(path))


def _forged(recommendation=None, identity=None, **top) -> dict:
    """CALIBRATION with some fields replaced (None: the field removed), as a hand edit leaves it."""
    def edit(d: dict, changes: dict | None) -> dict:
        d = d | (changes or {})
        return {k: v for k, v in d.items() if v is not None}

    return CALIBRATION | dict(recommendation=edit(CALIBRATION["recommendation"], recommendation),
                              identity=edit(CALIBRATION["identity"], identity), **top)


@pytest.mark.parametrize("record, message", [
    (_forged(recommendation=dict(expected_tau=None)), "recommendation expected_tau missing, expected a tau"),
    (_forged(recommendation=dict(expected_tau="high")), "recommendation expected_tau 'high', expected a tau"),
    (_forged(recommendation=dict(steps=True)), "recommendation steps True, expected a whole number"),
    (_forged(recommendation=dict(seeds=True)), "recommendation seeds True, expected 1 to 64"),
    (_forged(recommendation=dict(seeds=100)), "recommendation seeds 100, expected 1 to 64"),
    (_forged(recommendation=dict(steps=0)), "recommendation steps 0, expected a whole number >= 1"),
    (_forged(recommendation=dict(steps=2.5)), "recommendation steps 2.5, expected a whole number"),
    (_forged(identity=dict(batch_size="abc")), "identity batch_size 'abc', expected a whole number"),
    (_forged(identity=dict(batch_size=True)), "identity batch_size True, expected a whole number"),
    (_forged(identity=dict(lr=-1)), "identity lr -1, expected a number above 0 and below 1"),
    (_forged(score="accuracy"), "score 'accuracy', expected val_top1 or val_loss"),
])
def test_run_calibration_refuses_a_forged_value_in_one_line_naming_the_field(tmp_path, capsys, record, message):
    """A hand-edited calibration fails before anything is written, naming the file and its field (not a
    traceback, nor a flag the user never passed); an existing run of that name is left as it was."""
    path = tmp_path / "cal.json"
    path.write_text(json.dumps(record))
    runs = tmp_path / "runs"
    stored = runs / "r" / "run.json"
    stored.parent.mkdir(parents=True)
    stored.write_text(json.dumps(SearchConfig(budget="8softmax", steps=600, seeds=2).to_dict()))
    before = {p: p.read_bytes() for p in runs.rglob("*") if p.is_file()}
    for name in ("r", "new"):
        status, out, err = run(capsys, "run", "--budget", "8softmax", "--calibration", path, "--runs-dir", runs,
                               "--name", name, "--quiet")
        assert status == 2 and err.startswith(f"sola-search: error: calibration {path}: {message}"), err
        assert err.count("\n") == 1 and out == ""
    assert {p: p.read_bytes() for p in runs.rglob("*") if p.is_file()} == before and not (runs / "new").exists()
    with pytest.raises(SolaError, match=re.escape(f"calibration {path}: {message}")):
        apply_calibration(SearchConfig(budget="8softmax"), str(path))


def test_variance_components_set_the_seeds_common_shift_aside():
    """A pattern effect (sd 1), each seed's shift common to every pattern (sd 5) and residual noise (sd
    1): the shift moves no ranking, so the paired reliability stays near 1 / (1 + 1) = 0.5; without a
    pattern effect it is 0 and no count of seeds ranks."""
    from sola_search.results.fidelity import variance_components

    rng = random.Random(3)
    pattern = [rng.gauss(0, 1) for _ in range(400)]
    shift = [rng.gauss(0, 5) for _ in range(6)]
    c = variance_components([[p + s + rng.gauss(0, 1) for s in shift] for p in pattern])
    assert c["icc"] == pytest.approx(0.5, abs=0.06)
    assert c["pattern_sd"] == pytest.approx(1, abs=0.1) and c["residual_sd"] == pytest.approx(1, abs=0.05)
    assert c["seed_sd"] == pytest.approx(statistics.stdev(shift), rel=0.05)
    # ICC 0.5: the mean of k seeds has reliability k / (k + 1); tau 0.7 between halves needs r = 0.891
    assert c["seeds_per_half_tau_0.7"] in (7, 8, 9, 10)
    flat = variance_components([[s + rng.gauss(0, 1) for s in shift] for _ in range(50)])
    assert flat["icc"] < 0.05 and (flat["seeds_per_half_tau_0.7"] is None or flat["seeds_per_half_tau_0.7"] > 100)
    assert variance_components([[1.0, 2.0], [3.0, 4.0]]) is None  # two patterns


def test_the_spread_is_set_against_the_noise_left_once_each_seeds_common_shift_is_aside():
    """A seed that lifts every pattern alike (as a shared start and batches do) moves no ranking: the
    table's spread/noise sets the patterns' spread against the rest of the seed noise only."""
    rng = random.Random(4)
    shift = {0: 0.0, 1: 0.3}
    cal = analyse([4, 8], [0, 1], PATTERNS, _runs(lambda st, i, s: i / 100 + shift[s] + rng.gauss(0, 0.005),
                                                (4, 8)))
    top = cal["rungs"][-1]
    assert top["spread_over_seed"] < 0.2 < 3 < top["spread_over_seed_paired"]
    from sola_search.results.calibration import table_lines

    lines = table_lines(dict(cal, seeds=[0, 1], patterns=PATTERNS))
    assert "spread/noise" in lines[0] and f"{top['spread_over_seed_paired']:.1f}" in lines[2]


def test_a_calibration_ranks_by_the_score_asked_and_run_takes_it():
    """`calibrate --score loss`: the same trainings, ranked by validation loss (lower better). Here the
    loss orders the patterns in every seed and top-1 is noise: only the loss calibration ranks; a run
    given it ranks by val_loss, and a run asking for top-1 is refused."""
    rng = random.Random(5)
    runs = {(st, p, s): dict(status="ok", val_top1=rng.random(), val_loss=1 - i / 10 + rng.gauss(0, 0.001),
                             train_s=st / 10, packed=2)
            for st in (4, 8, 16) for i, p in enumerate(PATTERNS) for s in (0, 1)}
    assert not analyse([4, 8, 16], [0, 1], PATTERNS, runs)["recommendation"]["ranks"]
    by_loss = analyse([4, 8, 16], [0, 1], PATTERNS, runs, score="val_loss")
    assert by_loss["score"] == "val_loss" and by_loss["rungs"][0]["seed_tau"] == 1  # lower loss ranks higher
    assert (by_loss["recommendation"]["steps"], by_loss["recommendation"]["seeds"]) == (4, 1)


def test_run_calibration_takes_the_score_the_calibration_ranked_by(tmp_path):
    path = tmp_path / "cal.json"
    path.write_text(json.dumps(CALIBRATION | dict(score="val_loss")))
    cfg, notes = apply_calibration(SearchConfig(budget="8softmax"), str(path))
    assert cfg.objectives == ["val_loss", "gmacs"] and "ranking by val_loss" in notes[0]
    cfg, _ = apply_calibration(SearchConfig(budget="8softmax", objectives=["val_loss", "latency_ms"]), str(path))
    assert cfg.objectives == ["val_loss", "latency_ms"]
    with pytest.raises(SolaError, match="ranked patterns by val_loss, not val_top1"):
        apply_calibration(SearchConfig(budget="8softmax", objectives=["val_top1", "gmacs"]), str(path))
    path.write_text(json.dumps(CALIBRATION))  # a calibration of before scores: top-1
    assert apply_calibration(SearchConfig(budget="8softmax"), str(path))[0].objectives is None


def test_run_calibration_matches_the_data_wherever_run_is_and_however_it_is_named(tmp_path, monkeypatch):
    """A calibration records its data as `run` stores it (a file made absolute): a run from another directory,
    with the data spelled absolute or as the same task's defaults, takes it; other data is refused, named."""
    from sola_search.search.calibrate import CalibrationConfig, _base, _identity

    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    monkeypatch.chdir(tmp_path / "a")
    data_path = "npz:" + str(tmp_path / "a" / "d.npz")
    cal = CalibrationConfig(data="npz:d.npz", variant="micro", budget="2softmax", preset="quick")
    assert _identity(cal, _base(cal))["data_path"] == data_path
    path = tmp_path / "cal.json"
    path.write_text(json.dumps(CALIBRATION | dict(identity=CALIBRATION["identity"] | dict(data="npz:d.npz",
                                                                                            data_path=data_path))))
    monkeypatch.chdir(tmp_path / "b")  # the relative spec as written would name b/d.npz here
    cfg, _ = apply_calibration(SearchConfig(budget="8softmax"), str(path))
    assert cfg.data == data_path
    cfg, _ = apply_calibration(SearchConfig(budget="8softmax", data=data_path), str(path))
    assert cfg.data == data_path
    with pytest.raises(SolaError, match="data 'npz:.*a/d.npz', not 'npz:d.npz'"):
        apply_calibration(SearchConfig(budget="8softmax", data="npz:d.npz"), str(path))
    # recall by its parameters: the defaults spelled out are the same task
    path.write_text(json.dumps(CALIBRATION))
    cfg, _ = apply_calibration(SearchConfig(budget="8softmax", data="recall:pairs=2-24"), str(path))
    assert cfg.data == "recall:pairs=2-24"
    with pytest.raises(SolaError, match="data 'recall', not 'recall:pairs=2-9'"):
        apply_calibration(SearchConfig(budget="8softmax", data="recall:pairs=2-9"), str(path))
    path.write_text(json.dumps(CALIBRATION | dict(identity=CALIBRATION["identity"] | dict(data_path=5))))
    with pytest.raises(SolaError, match="identity data_path 5, expected a data spec"):
        apply_calibration(SearchConfig(budget="8softmax"), str(path))

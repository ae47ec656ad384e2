"""Confirming the front (`run --confirm N`): only front members get more seeds, stored beside their
trials (study user attributes), never as trials; every reader sees the merged seeds; `resume`
continues where confirmation stopped; bad values are one line."""

from __future__ import annotations

import json
import math
import statistics

import pytest
from cli_support import run, run_study
from optuna.trial import TrialState, create_trial

from sola_search.results.patterns import load_pattern_file
from sola_search.search.confirm import confirm_key, confirmations, outcome_text
from sola_search.space import Pattern, model_cost


def _add_measured(study, text: str, each: list[float]) -> int:
    """A trial as the search records a pattern measured with two seeds (values, spread, seeds)."""
    p = Pattern.parse(text, "micro")
    c = model_cost("micro", p, 224)
    mean = statistics.fmean(each)
    attrs = dict(pattern=text, softmax_layers=p.softmax_layers, macs=c.macs, params=c.params, seeds=[0, 1],
                 val_top1_seeds=each, val_top1_se=statistics.stdev(each) / math.sqrt(2),
                 proxy_result={"val_top1": each[0], "seed": 0, "status": "ok"})
    study.add_trial(create_trial(values=[mean, c.macs / 1e9], user_attrs=attrs, constraints={"softmax": -1.0}))
    return len(study.trials) - 1


def test_confirm_gives_seeds_only_to_the_front_and_resume_continues(tmp_path, npz_data, capsys, shared_ray):
    """A real run, then `resume --confirm` twice (real re-measures through the run's Ray workers).
    micro's short proxies give every placement the same top-1 (README, "Seeds and error bars"), so a
    front of several members would need a proxy too long for a test: three measured trials are
    added to the real run as the search records them — two tied front members and one dominated."""
    runs = tmp_path / "runs"
    status, _, err = run(capsys, "run", "--budget", "2softmax", "--variant", "micro", "--trials", "1", "--preset",
                         "quick", "--steps", "2", "--data", npz_data, "--runs-dir", runs, "--name", "c", "--seeds",
                         "2", "--quiet")
    assert status == 0, err
    study = run_study(runs / "c")
    tied_a = _add_measured(study, "LL-LL-LLLL-LS", [0.60, 0.64])  # the front: tied with each other
    tied_b = _add_measured(study, "LL-LL-LLLL-SS", [0.61, 0.65])
    dominated = _add_measured(study, "LL-LL-SLLL-LL", [0.20, 0.22])  # costs more than tied_a, far less accurate
    assert model_cost("micro", Pattern.parse("LL-LL-SLLL-LL", "micro"), 224).macs > study.trials[tied_a].user_attrs[
        "macs"]
    before = {t.number: (t.values, t.user_attrs, t.state) for t in run_study(runs / "c").trials}

    status, out, err = run(capsys, "resume", runs / "c", "--confirm", "1", "--quiet")
    assert status == 0, err
    assert json.loads((runs / "c" / "run.json").read_text())["confirm"] == 1
    first = confirmations(run_study(runs / "c").user_attrs)
    assert set(first) <= {0, tied_a, tied_b} and {tied_a, tied_b} <= set(first)  # tied front members only
    assert all(len(r["seeds"]) == 1 for r in first.values())
    status, out, err = run(capsys, "resume", runs / "c", "--confirm", "3")  # continues; progress lines shown
    assert status == 0, err
    assert f"confirming the front, round 1: trials {tied_a}, {tied_b}" in err.replace("trials 0, ", "trials ")
    assert "still tied after" in out and "--confirm 3 seeds each spent" in out  # the short proxy's seeds differ

    study = run_study(runs / "c")
    records = confirmations(study.user_attrs)
    assert dominated not in records and set(records) <= {0, tied_a, tied_b}
    events = [json.loads(line) for line in (runs / "c" / "events.jsonl").read_text().splitlines()]
    # Re-measures are never trials: no trial started after the first session, the study's trials and
    # Optuna's values are what the search told.
    assert sum(e["event"] == "trial_started" for e in events) == 1
    assert [t.number for t in study.trials] == list(before)
    assert all((t.values, t.state) == (before[t.number][0], before[t.number][2]) for t in study.trials)
    assert sum(t.state == TrialState.COMPLETE for t in study.trials) == 4
    for e in events:
        if e["event"] == "confirm_round":
            assert {j["trial"] for j in e["jobs"]} <= set(e["unresolved"])
    assert len(records[tied_a]["seeds"]) == len(records[tied_b]["seeds"]) == 3  # 1, then 2 more on resume
    for n, record in records.items():
        kept = first.get(n, {}).get("seeds", [])
        assert record["seeds"][:len(kept)] == kept  # the first session's re-measures kept, not re-run
        assert 1 <= len(record["seeds"]) <= 3 and len(set(record["seeds"])) == len(record["seeds"])
        assert not set(record["seeds"]) & {0, 1}  # seeds the pattern was not measured with
        each = before[n][1]["val_top1_seeds"] + record["val_top1"]
        file = load_pattern_file(runs / "c" / "patterns" / f"{n}.json")
        assert file["metrics"]["val_top1"] == pytest.approx(statistics.fmean(each))
        assert file["metrics"]["val_top1_seeds"] == pytest.approx(each)
        assert file["metrics"]["val_top1_se"] == pytest.approx(statistics.stdev(each) / math.sqrt(len(each)))
        assert file["metrics"]["confirm_seeds"] == len(record["seeds"])
        assert file["provenance"]["seeds"] == [0, 1, *record["seeds"]]
        assert len(record["val_loss"]) == len(record["seeds"])  # the score it does not rank by, re-measured too
        if "val_loss_seeds" in before[n][1]:  # a trial the search measured: its loss over every seed too
            loss = before[n][1]["val_loss_seeds"] + record["val_loss"]
            assert file["metrics"]["val_loss_seeds"] == pytest.approx(loss)
    # pareto shows the merged values; a trial not confirmed keeps its two seeds.
    status, out, _ = run(capsys, "pareto", runs / "c", "--format", "json", "--all", "--no-reports")
    rows = {r["trial"]: r for r in json.loads(out)}
    for n in rows:
        k = len(records[n]["seeds"]) if n in records else 0
        assert rows[n]["confirm_seeds"] == k
        if n in records:
            each = before[n][1]["val_top1_seeds"] + records[n]["val_top1"]
            assert rows[n]["val_top1"] == pytest.approx(statistics.fmean(each))
    assert rows[dominated]["val_top1"] == pytest.approx(0.21) and not rows[dominated]["on_front"]
    assert confirm_key(tied_a) in study.user_attrs


@pytest.mark.parametrize("command", ["run", "resume"])
@pytest.mark.parametrize("value, message", [("-1", "--confirm -1: expected a whole number >= 0"),
                                            ("x", "--confirm 'x': expected a whole number >= 0")])
def test_bad_confirm_values_are_one_line_and_status_2(tmp_path, capsys, command, value, message):
    where = ["--budget", "2softmax", "--variant", "micro", "--name", "x", "--runs-dir", tmp_path / "runs"]
    target = where if command == "run" else [tmp_path / "runs" / "x"]
    status, _, err = run(capsys, command, *target, "--confirm", value)
    assert status == 2 and message in err and err.count("\n") == 1
    assert not (tmp_path / "runs").exists()


def test_a_confirm_past_64_seeds_is_one_line(tmp_path, capsys):
    """A 20-digit --confirm was stored and would have trained seeds until the intervals separated."""
    status, _, err = run(capsys, "run", "--budget", "2softmax", "--variant", "micro", "--name", "x", "--runs-dir",
                         tmp_path / "runs", "--confirm", "99999999999999999999")
    assert status == 2 and "--confirm 99999999999999999999: expected 0 (off) to 64 extra seeds" in err
    assert err.count("\n") == 1 and not (tmp_path / "runs").exists()


def test_a_run_cut_by_its_time_limit_says_the_front_was_not_confirmed(tmp_path, npz_data, capsys, shared_ray):
    """`--time` ends the search before `--confirm` could run: the summary says so and how to confirm later."""
    runs = tmp_path / "runs"
    status, out, err = run(capsys, "run", "--budget", "2softmax", "--variant", "micro", "--trials", "50", "--preset",
                           "quick", "--steps", "2", "--data", npz_data, "--runs-dir", runs, "--name", "t", "--time",
                           "0.1s", "--confirm", "2", "--quiet")
    assert status == 0, err
    assert "reached its time limit" in out
    assert "the front was not confirmed: the time limit came first" in out
    assert not confirmations(run_study(runs / "t").user_attrs)


def test_the_last_word_on_confirmation_says_what_the_front_became():
    assert outcome_text("separated", 2, [], [0, 4], "top-1", 3) == \
        "the front's top-1 intervals (mean ± 2 se) separate after 2 round(s) of confirmation"
    # The README's run: every member's mean fell below the cheapest's, so nothing was left to separate.
    assert outcome_text("separated", 4, [], [0], "top-1", 3) == (
        "the front is trial 0 alone after 4 round(s) of confirmation: every other pattern measured costs as much "
        "or more for a mean top-1 no better")
    assert outcome_text("spent", 3, [2, 5], [], "val loss", 3) == \
        "trial(s) 2, 5 of the front still tied after 3 round(s) of confirmation: --confirm 3 seeds each spent"
    assert outcome_text("time", 0, [1], [], "top-1", 3) == "confirmation stopped at the time limit after no " \
                                                            "confirmation seed"

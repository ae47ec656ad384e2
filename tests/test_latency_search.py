"""Latency as a run's objective and as a budget term: a few quick trials on the micro variant with a
CPU table, what the run stores, `pareto`, a resume that meets another table, and bad input."""

from __future__ import annotations

import json

import numpy as np
import optuna
import pytest
from cli_support import run

from sola_search.errors import SolaError
from sola_search.space import Budget, FeasibleSet, Pattern, cost_table
from sola_search.space.latency import LatencyTable, measure_latency


@pytest.fixture(scope="module")
def table_path(tmp_path_factory) -> str:
    table = measure_latency("micro", 64, batch=1, device="cpu", dtype="fp32", warmup=0, reps=1, patterns=0,
                            threads=1)
    path = tmp_path_factory.mktemp("latency") / "micro-64.json"
    table.save(path)
    return str(path)


def _every_pattern() -> np.ndarray:
    return (np.arange(2**10)[:, None] >> np.arange(10)) & 1


def _limit(table: LatencyTable, q: float, others: str = "") -> float:
    """An ms limit that a fraction q of the micro patterns meet that the budget's `others` terms admit
    (the CPU table's times are noise-level: softmax may be the faster kind, so the limit is taken
    among the patterns it will be combined with)."""
    bits = _every_pattern()
    if others:
        b, ct = Budget.parse(others), cost_table("micro", 64)
        bits = np.array([x for x in bits if b.within(b.costs(ct, x))])
    return float(np.quantile(table.ms_many(bits), q))



@pytest.mark.parametrize("text, q", [("{}ms", 0.3), ("3softmax,{}ms", 0.5), ("{}ms,0.0125gmacs", 0.6)])
def test_the_feasible_set_under_an_ms_limit_is_exact(table_path, text, q):
    table = LatencyTable.load(table_path)
    others = ",".join(t for t in text.split(",") if t != "{}ms")
    budget = Budget.parse(text.format(round(_limit(table, q, others), 3))).priced(table)
    ct = cost_table("micro", 64)
    within = [bits for bits in _every_pattern() if budget.within(budget.costs(ct, bits))]
    fs = FeasibleSet("micro", budget, 64)
    assert fs.count() == len(within) > 0
    assert {tuple(b) for b in fs.enumerate_bits()} == {tuple(b) for b in within}
    assert all(budget.within(budget.costs(ct, b)) for b in fs.sample_bits(100, 0))
    assert all(budget.admits(p, "micro", 64) for p in fs.sample(10, 1))


def test_ms_terms_parse_and_need_a_table():
    b = Budget.parse("8softmax,12.5ms")
    assert b.max_ms == 12.5 and str(b) == "8softmax,12.5ms" and b == Budget.parse("12.5ms, 8softmax")
    with pytest.raises(SolaError, match="needs a latency table"):
        b.priced(None)
    with pytest.raises(SolaError, match="needs a latency table"):
        FeasibleSet("micro", Budget.parse("12ms"), 64)
    with pytest.raises(SolaError, match="not understood"):
        Budget.parse("-3ms")
    with pytest.raises(SolaError, match="positive"):
        Budget.parse("0ms")


def test_run_with_latency_as_objective_and_budget(tmp_path, npz_data, table_path, capsys, shared_ray):
    table = LatencyTable.load(table_path)
    limit = round(_limit(table, 0.8, "3softmax"), 3)
    budget = f"3softmax,{limit}ms"
    runs = tmp_path / "runs"
    status, out, err = run(capsys, "run", "--budget", budget, "--variant", "micro", "--resolution", "64",
                           "--objective", "latency", "--latency", table_path, "--trials", "3", "--preset", "quick",
                           "--steps", "2", "--data", npz_data, "--runs-dir", str(runs), "--name", "lat",
                           "--no-baselines", "--quiet")
    assert status == 0, err
    run_dir = runs / "lat"
    stored = json.loads((run_dir / "run.json").read_text())
    assert stored["objectives"] == ["val_top1", "latency_ms"] and stored["latency_digest"] == table.digest
    assert stored["latency"].endswith("micro-64.json")
    study = optuna.load_study(study_name="lat", storage=f"sqlite:///{run_dir / 'study.db'}")
    assert study.metric_names == ["val_top1", "latency_ms"]
    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(done) == 3
    for t in done:
        p = Pattern.parse(t.user_attrs["pattern"], "micro")
        assert t.values[1] == pytest.approx(table.ms(p)) == pytest.approx(t.user_attrs["latency_ms"])
        assert t.values[1] <= limit + 1e-3 and p.softmax_layers <= 3
        record = json.loads((run_dir / "patterns" / f"{t.number}.json").read_text())
        assert record["metrics"]["latency_ms"] == pytest.approx(t.values[1])

    status, out, _ = run(capsys, "pareto", str(run_dir), "--format", "csv", "--no-reports")
    assert status == 0 and "latency_ms" in out.splitlines()[0] and "gmacs" not in out.splitlines()[0]
    status, out, _ = run(capsys, "pareto", str(run_dir))
    assert status == 0 and "latency ms" in out
    status, out, _ = run(capsys, "compare", str(run_dir), "--plot", str(tmp_path / "c.png"))
    assert status == 0 and "at latency" in out and "(top-1 × latency)" in out and (tmp_path / "c.png").is_file()
    status, out, _ = run(capsys, "runs", "--runs-dir", str(runs))  # it read best_gmacs, which such a run lacks
    assert status == 0 and " ms (trial " in out.splitlines()[1] and "GMACs" not in out

    # A resume must price with the table the run was made with.
    data = json.loads(open(table_path).read())
    data["fixed_ms"] += 1.0
    other = tmp_path / "other.json"
    other.write_text(json.dumps(data))
    stored["latency"] = str(other)
    (run_dir / "run.json").write_text(json.dumps(stored))
    status, _, err = run(capsys, "resume", str(run_dir), "--trials", "4", "--quiet")
    assert status == 2 and "now holds another table" in err and err.count("\n") == 1


@pytest.mark.parametrize("args, expected", [
    (["--budget", "12ms"], "budget 12ms: a latency limit (ms) needs a latency table"),
    (["--budget=-3ms"], "budget term '-3ms' not understood"),
    (["--budget", "8softmax", "--objective", "latency"], "--objective latency needs a latency table"),
    (["--budget", "8softmax", "--objective", "watts"], "invalid choice: 'watts'"),
])
def test_latency_without_a_table_is_one_line(tmp_path, capsys, args, expected):
    status, out, err = run(capsys, "run", "--variant", "micro", "--runs-dir", str(tmp_path / "runs"), "--name", "x",
                           *args)
    assert status == 2 and expected in err and err.count("\n") == 1
    assert not (tmp_path / "runs").exists()


def test_a_table_of_another_model_is_refused_by_run(tmp_path, capsys, table_path):
    status, _, err = run(capsys, "run", "--budget", "8softmax", "--variant", "tiny", "--objective", "latency",
                         "--latency", table_path, "--runs-dir", str(tmp_path / "runs"), "--name", "x")
    assert status == 2 and "measured for variant micro, not tiny" in err and err.count("\n") == 1
    status, _, err = run(capsys, "run", "--budget", "8softmax", "--variant", "micro", "--objective", "latency",
                         "--latency", table_path, "--runs-dir", str(tmp_path / "runs"), "--name", "x")
    assert status == 2 and "measured at 64px, not 224px" in err
    status, _, err = run(capsys, "space", "--budget", "12ms")
    assert status == 2 and "needs a latency table" in err

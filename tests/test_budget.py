"""Budget: the grammar (each unit; FLOPs = 2 × MACs), every error, canonical text, admits()."""

import itertools
import re

import numpy as np
import pytest

from sola_search.errors import SolaError
from sola_search.space import Budget, Pattern, baseline, cost_table, model_cost
from sola_search.space.budget import TERMS


@pytest.mark.parametrize("text, expected", [
    ("8softmax", Budget(max_softmax=8)),
    ("0softmax", Budget(max_softmax=0)),
    ("2.5gmacs", Budget(max_macs=2_500_000_000)),
    ("5gflops", Budget(max_macs=2_500_000_000)),
    ("20mparams", Budget(max_params=20_000_000)),
    (".5gmacs", Budget(max_macs=500_000_000)),
    ("3.gmacs", Budget(max_macs=3_000_000_000)),
    ("8softmax,2.5gmacs,20mparams", Budget(8, 2_500_000_000, 20_000_000)),
    ("20mparams,8softmax", Budget(max_softmax=8, max_params=20_000_000)),
    (" 8 Softmax , 2.5 GMACs ", Budget(max_softmax=8, max_macs=2_500_000_000)),
    ("8SOFTMAX,\t5GFLOPS", Budget(max_softmax=8, max_macs=2_500_000_000)),
])
def test_parse(text, expected):
    assert Budget.parse(text) == expected


@pytest.mark.parametrize("gmacs", ["0.1", "0.3", "1.1", "1.15", "2.5", "4.6", "9.9", "12.345", "1234.5678"])
def test_gflops_are_twice_macs(gmacs):
    assert Budget.parse(f"{2 * float(gmacs)!r}gflops") == Budget.parse(f"{gmacs}gmacs")
    assert Budget.parse(f"{gmacs}gmacs").max_macs == round(float(gmacs) * 1e9)


@pytest.mark.parametrize("text", ["8softmax", "2.5gmacs", "8softmax,2.5gmacs,20mparams", "1234.56789gmacs",
                                  "0.000123gmacs", "27.123456mparams", "5gflops"])
def test_canonical_text_round_trips(text):
    b = Budget.parse(text)
    assert Budget.parse(str(b)) == b


def test_canonical_text():
    assert str(Budget.parse("5gflops,8softmax")) == "8softmax,2.5gmacs"
    assert str(Budget()) == "unlimited"


@pytest.mark.parametrize("text, match", [
    ("8tflops", r"budget term '8tflops' not understood: expected a number followed by softmax, gmacs, gflops, "
                r"mparams or ms"),
    ("8", r"budget term '8' not understood"),
    ("softmax", r"budget term 'softmax' not understood"),
    ("gmacs,8softmax", r"budget term 'gmacs' not understood"),
    ("8softmax,", r"budget term '' not understood"),
    ("8softmax;2gmacs", r"budget term '8softmax;2gmacs' not understood"),
    ("-1softmax", r"budget term '-1softmax' not understood"),
    ("-2gmacs", r"budget term '-2gmacs' not understood"),
    ("2..5gmacs", r"not understood"),
    ("1e9gmacs", r"not understood"),
    ("8softmax,4softmax", r"limits softmax twice: expected each kind once"),
    ("5gflops,2.5gmacs", r"limits macs twice"),
    ("20mparams,30mparams", r"limits params twice"),
    ("1.5softmax", r"budget term '1.5softmax': the softmax count must be a whole number"),
    ("8.softmax", r"the softmax count must be a whole number"),
    ("0gmacs", r"budget term '0gmacs': expected a positive limit"),
    ("0.0gflops", r"expected a positive limit"),
    ("0mparams", r"expected a positive limit"),
    ("0.0000000001gmacs", r"expected a positive limit"),  # rounds to 0 MACs
    ("", r"empty budget: expected a number followed by"),
    ("  ", r"empty budget"),
])
def test_errors(text, match):
    with pytest.raises(SolaError, match=match) as e:
        Budget.parse(text)
    assert "\n" not in str(e.value)


def test_not_text():
    with pytest.raises(SolaError, match="empty budget"):
        Budget.parse(None)


def test_admits_softmax_count():
    b = Budget.parse("4softmax")
    assert b.admits(baseline("last-4", "tiny"), "tiny")
    assert not b.admits(baseline("last-5", "tiny"), "tiny")
    assert Budget.parse("0softmax").admits(baseline("all-linear", "tiny"), "tiny")
    assert Budget().admits(baseline("all-softmax", "base"), "base")


def test_admits_macs_is_inclusive_and_resolution_aware():
    p = baseline("late-stages", "tiny")
    macs = model_cost("tiny", p, 224).macs
    assert Budget(max_macs=macs).admits(p, "tiny", 224)
    assert not Budget(max_macs=macs - 1).admits(p, "tiny", 224)
    assert not Budget(max_macs=macs).admits(p, "tiny", 256)  # more tokens, more MACs
    assert Budget.parse("5gflops").admits(p, "tiny") == (macs <= 2.5e9)


def test_admits_params_and_all_limits_together():
    p = baseline("late-stages", "tiny")
    params = cost_table("tiny", 224).params
    assert Budget(max_params=params).admits(p, "tiny")
    assert not Budget(max_params=params - 1).admits(p, "tiny")
    macs = model_cost("tiny", p).macs
    assert Budget(8, macs, params).admits(p, "tiny")
    assert not Budget(7, macs, params).admits(p, "tiny")  # late-stages on tiny has 8 softmax blocks
    assert not Budget(8, macs - 1, params).admits(p, "tiny")


def test_canonical_text_round_trips_any_limit(rng):
    for macs, params in rng.integers(1, 10**13, (200, 2)):
        b = Budget(max_softmax=int(macs % 30), max_macs=int(macs), max_params=int(params))
        assert Budget.parse(str(b)) == b


def test_admits_refuses_a_pattern_of_another_shape():
    with pytest.raises(SolaError, match="found 2 stages, expected 4 for variant tiny"):
        Budget.parse("8softmax").admits(Pattern.parse("S-S"), "tiny")
    with pytest.raises(SolaError, match="stage 3"):
        Budget().admits(Pattern.parse("LL-LL-LLLL-LL"), "tiny")  # a micro pattern


def _forms(table, bits):
    """Every combination of the three kinds of limit, each set where some patterns pass it and some do
    not (the params limit, the same for every pattern, once just above and once just below)."""
    k = int(np.median(bits.sum(1)))
    macs = int(np.median(table.macs_many(bits)))
    for softmax, max_macs, params in itertools.product((None, k), (None, macs), (None, table.params, table.params - 1)):
        yield Budget(softmax, max_macs, params)


def test_violations_agree_with_admits_on_random_patterns_of_every_budget_form(rng):
    """`violations` is the one budget test: cost minus limit per set term, in the term's shown unit;
    `within` and `admits` are "every violation <= 0", the same verdict as comparing each limit."""
    table = cost_table("tiny")
    bits = rng.integers(0, 2, (150, table.linear_macs.size))
    verdicts = set()
    for b in _forms(table, bits):
        assert Budget.parse(str(b)) == b if str(b) != "unlimited" else b == Budget()
        for row in bits:
            p = Pattern.from_bits(row, "tiny")
            softmax, macs = p.softmax_layers, table.macs(p)
            v = b.violations(table.costs(row))
            assert table.costs(row) == {"softmax_layers": softmax, "macs": macs, "params": table.params}
            expected = {}
            if b.max_softmax is not None:
                expected["softmax"] = float(softmax - b.max_softmax)
            if b.max_macs is not None:
                expected["gmacs"] = (macs - b.max_macs) / 1e9
            if b.max_params is not None:
                expected["mparams"] = (table.params - b.max_params) / 1e6
            assert v == expected
            within = ((b.max_softmax is None or softmax <= b.max_softmax) and (b.max_macs is None or macs <= b.max_macs)
                      and (b.max_params is None or table.params <= b.max_params))
            assert b.admits(p, "tiny") == b.within(table.costs(row)) == all(x <= 0 for x in v.values()) == within
            verdicts.add(within)
    assert verdicts == {True, False}


def test_every_unit_is_one_term():
    """Each unit a budget may be written in belongs to one entry of TERMS, which says which field it
    sets, which cost it limits and how it is shown: gflops is the gmacs term at half the scale."""
    for term in TERMS:
        for unit, scale in term.units.items():
            b = Budget.parse(f"3{unit}")
            assert getattr(b, term.field) == (3 if term.whole else round(3 * scale))
            assert str(b).endswith(term.unit)
            assert list(b.violations({term.cost: 0})) == [term.unit]
    assert Budget.parse("5gflops").violations({"macs": 3_000_000_000}) == {"gmacs": 0.5}


def test_a_cost_not_given_is_neither_within_nor_over():
    b = Budget.parse("4softmax,2gmacs")
    for missing in ({"softmax_layers": 3}, {"softmax_layers": 3, "macs": None}, {"softmax_layers": 3, "macs": np.nan}):
        v = b.violations(missing)
        assert v["softmax"] == -1.0 and np.isnan(v["gmacs"])
        assert not b.within(missing) and not any(x > 0 for x in v.values())


def test_softmax_limit_is_clamped_to_the_blocks_once():
    from sola_search.search.samplers import BudgetCheck
    from sola_search.space import FeasibleSet

    for b, expected in ((Budget(), 10), (Budget.parse("3softmax"), 3), (Budget.parse("100softmax"), 10),
                        (Budget.parse("1gmacs"), 10)):
        assert b.softmax_limit(10) == expected
        assert FeasibleSet("micro", b).max_softmax == BudgetCheck("micro", b).max_softmax == expected


@pytest.mark.parametrize("text, most", [("2000001gflops", "2e+06 gflops"), ("1000000001mparams", "1e+09 mparams"),
                                        ("1000001gmacs", "1e+06 gmacs"), ("1" + "0" * 16 + "ms", "1e+15 ms")])
def test_too_large_a_limit_names_the_largest_in_its_own_unit(text, most):
    """The largest limit a term takes is said in the unit it was written in (1e6 gmacs is 2e6 gflops and
    1e9 mparams), and that largest limit is taken."""
    with pytest.raises(SolaError, match=re.escape(f"too large a limit (at most {most})")):
        Budget.parse(text)
    number, unit = most.split()
    Budget.parse(f"{float(number):.0f}{unit}")


@pytest.mark.parametrize("argv", [
    ["space", "--variant", "micro", "--budget", "2softmax,5ms"],
    ["calibrate", "--data", "fashion-mnist", "--variant", "micro", "--budget", "5ms", "--out", "c.json"],
    ["latency", "--variant", "micro", "--device", "cpu", "--budget", "5ms", "--out", "t.json"],
])
def test_an_ms_limit_where_no_table_can_be_given_says_only_run_takes_one(capsys, tmp_path, monkeypatch, argv):
    """`space`, `calibrate` and `latency` take --budget but no --latency: the error told them to pass one."""
    from cli_support import run

    monkeypatch.chdir(tmp_path)
    status, out, err = run(capsys, *argv)
    assert status == 2 and out == "" and err.count("\n") == 1
    assert "a latency limit (ms) needs a latency table, which only run takes (--latency FILE" in err
    assert not list(tmp_path.iterdir())

"""Pattern: text ↔ layer_types ↔ bits, case, equality/hash, every validation error; named baselines."""

import re

import numpy as np
import pytest

from sola_search.errors import SolaError
from sola_search.space import VARIANTS, Budget, Pattern, baseline, baselines, resolve


def random_pattern(variant, rng) -> Pattern:
    return Pattern.from_bits(rng.integers(0, 2, VARIANTS[variant].num_blocks), variant)


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_round_trips(variant, rng):
    v = VARIANTS[variant]
    for _ in range(20):
        p = random_pattern(variant, rng)
        assert Pattern.parse(str(p), v) == p
        assert Pattern.from_layer_types(p.layer_types, v) == p
        assert Pattern.from_bits(p.bits, v) == p
        assert p.depths == v.depths
        assert len(p.layer_types) == len(p.bits) == v.num_blocks
        assert p.softmax_layers == sum(p.bits) == p.layer_types.count("softmax") == str(p).count("S")
        assert set(p.layer_types) <= {"linear", "softmax"}


def test_text_form_and_accessors():
    p = Pattern.parse("LL-LS-LLSLLS-SS", "tiny")
    assert p.stages == ("LL", "LS", "LLSLLS", "SS")
    assert str(p) == "LL-LS-LLSLLS-SS"
    assert p.letters == "LLLSLLSLLSSS"
    assert p.softmax_layers == 5
    assert p.bits[:4] == [False, False, False, True]
    assert p.layer_types[:4] == ["linear", "linear", "linear", "softmax"]


def test_from_bits_accepts_numpy_rows():
    bits = np.array([0, 1, 1, 0, 0, 0, 0, 1, 0, 1], dtype=np.int8)
    assert str(Pattern.from_bits(bits, "micro")) == "LS-SL-LLLS-LS"


@pytest.mark.parametrize("text", ["ll-ls-llslls-ss", "Ll-lS-LLslLS-sS", "  LL-LS-LLSLLS-SS  ", "LL - LS - LLSLLS - SS"])
def test_case_and_whitespace_insensitive(text):
    assert Pattern.parse(text, "tiny") == Pattern.parse("LL-LS-LLSLLS-SS", "tiny")


def test_equality_and_hash_deduplicate():
    a = Pattern.parse("LL-LS-LLSLLS-SS")
    b = Pattern.parse("ll-ls-llslls-ss")
    c = Pattern.from_layer_types(a.layer_types, "tiny")
    d = Pattern.parse("LL-LS-LLSLLS-SL")
    assert a == b == c and hash(a) == hash(b) == hash(c)
    assert a != d
    assert len({a, b, c, d}) == 2
    assert {a: 1}[c] == 1


def test_parse_without_variant_does_not_check_depths():
    assert Pattern.parse("S-LLL").depths == (1, 3)
    with pytest.raises(SolaError):
        Pattern.parse("S-LLL", "tiny")


# --- validation errors ----------------------------------------------------------------------------
@pytest.mark.parametrize("text, stage, found", [
    ("LL-LX-LLSLLS-SS", "stage 2 'LX'", "'X'"),
    ("LL-LS-LLSLLS-S1", "stage 4 'S1'", "'1'"),
    ("AB-LS-LLSLLS-SS", "stage 1 'AB'", "'AB'"),
    ("LL-LS-LL LL-SS", "stage 3 'LL LL'", "' '"),
])
def test_wrong_letters(text, stage, found):
    with pytest.raises(SolaError) as e:
        Pattern.parse(text, "tiny")
    msg = str(e.value)
    assert stage in msg and f"found letters {found}" in msg
    assert "expected one or more of L (linear), S (softmax)" in msg
    assert "\n" not in msg


@pytest.mark.parametrize("text, stage", [("LL--LLSLLS-SS", "stage 2 ''"), ("-LL-LS-SS", "stage 1 ''"),
                                          ("LL-LS-LLSLLS-", "stage 4 ''")])
def test_empty_stage(text, stage):
    with pytest.raises(SolaError, match=re.escape(stage) + ".*found no blocks.*expected one or more of L"):
        Pattern.parse(text, "tiny")


@pytest.mark.parametrize("text", ["", "   ", None, 7])
def test_empty_or_not_text(text):
    with pytest.raises(SolaError, match="empty pattern: expected one letter per block"):
        Pattern.parse(text)


@pytest.mark.parametrize("text, found", [("LL-LS-LLSLLS", 3), ("LL-LS-LLSLLS-SS-L", 5), ("LLLSLLSLLSSS", 1)])
def test_wrong_stage_count(text, found):
    with pytest.raises(SolaError) as e:
        Pattern.parse(text, "tiny")
    assert f"found {found} stages, expected 4 for variant tiny (depths 2-2-6-2)" in str(e.value)


@pytest.mark.parametrize("variant, text, stage, found, expected", [
    ("tiny", "LL-LS-LLSLL-SS", "stage 3 'LLSLL'", 5, 6),
    ("tiny", "L-LS-LLSLLS-SS", "stage 1 'L'", 1, 2),
    ("tiny", "LL-LS-LLSLLS-SSS", "stage 4 'SSS'", 3, 2),
    ("small", "LL-LS-LLSLLS-SS", "stage 1 'LL'", 2, 3),
    ("micro", "LL-LSL-LLLL-SS", "stage 2 'LSL'", 3, 2),
])
def test_wrong_blocks_in_a_stage(variant, text, stage, found, expected):
    with pytest.raises(SolaError) as e:
        Pattern.parse(text, variant)
    msg = str(e.value)
    assert stage in msg
    assert f"found {found} blocks, expected {expected} for variant {variant}" in msg
    depths = "-".join(map(str, VARIANTS[variant].depths))
    assert f"(depths {depths})" in msg


def test_check_returns_the_pattern_and_knows_variants():
    p = Pattern.parse("LL-LS-LLLL-SS")
    assert p.check("micro") is p
    with pytest.raises(SolaError, match="unknown variant 'huge': expected one of micro, tiny, small, base"):
        p.check("huge")


@pytest.mark.parametrize("entry", ["Linear", "soft", "", None, 1, ["linear"], "L"])
def test_layer_types_bad_entry(entry):
    lt = ["linear"] * 10
    lt[3] = entry
    with pytest.raises(SolaError, match=re.escape(f"layer_types[3] = {entry!r}: expected 'linear' or 'softmax'")):
        Pattern.from_layer_types(lt, "micro")


@pytest.mark.parametrize("n", [0, 9, 11, 12])
def test_layer_types_wrong_length(n):
    msg = f"layer_types has {n} entries, expected 10 for variant micro (depths 2-2-4-2)"
    with pytest.raises(SolaError, match=re.escape(msg)):
        Pattern.from_layer_types(["softmax"] * n, "micro")


@pytest.mark.parametrize("value", ["linear,softmax", {"a": 1}, 3])
def test_layer_types_not_a_list(value):
    with pytest.raises(SolaError, match="layer_types: expected a list of 'linear'/'softmax', found"):
        Pattern.from_layer_types(value, "micro")


def test_bits_wrong_length():
    with pytest.raises(SolaError, match="layer_types has 3 entries, expected 10"):
        Pattern.from_bits([1, 0, 1], "micro")


# --- named baselines ------------------------------------------------------------------------------

@pytest.mark.parametrize("variant, name, text", [
    ("tiny", "all-linear", "LL-LL-LLLLLL-LL"),
    ("tiny", "all-softmax", "SS-SS-SSSSSS-SS"),
    ("tiny", "late-stages", "LL-LL-SSSSSS-SS"),  # the MAViT / RAVLT layout
    ("tiny", "last-of-stage", "LS-LS-LLLLLS-LS"),
    ("tiny", "mambavision", "LL-LL-LLLSSS-LS"),
    ("small", "all-linear", "LLL-LLLLL-LLLLLLLLL-LLL"),
    ("small", "all-softmax", "SSS-SSSSS-SSSSSSSSS-SSS"),
    ("small", "late-stages", "LLL-LLLLL-SSSSSSSSS-SSS"),
    ("small", "last-of-stage", "LLS-LLLLS-LLLLLLLLS-LLS"),
    ("small", "mambavision", "LLL-LLLLL-LLLLLSSSS-LLS"),
    ("tiny", "last-3", "LL-LL-LLLLLS-SS"),
    ("tiny", "last-12", "SS-SS-SSSSSS-SS"),
    ("tiny", "interleave-4", "LL-SL-LSLLSL-LS"),
    ("tiny", "interleave-1", "LL-LL-LLLLLL-LS"),
    ("small", "interleave-4", "LLL-LSLLL-LSLLLLSLL-LLS"),
])
def test_baseline_shapes(variant, name, text):
    p = baseline(name, variant)
    assert str(p) == text
    assert p.check(variant) is p
    assert resolve(name, variant) == p


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_parametric_baselines(variant):
    n = VARIANTS[variant].num_blocks
    for k in range(1, n + 1):
        last = baseline(f"last-{k}", variant)
        assert last.softmax_layers == k and last.bits == [False] * (n - k) + [True] * k
    for k in range(1, n // 2 + 1):
        inter = baseline(f"interleave-{k}", variant)
        assert inter.softmax_layers == k
        assert inter.bits[-1]  # the last block is always softmax
        gaps = np.diff(np.flatnonzero(inter.bits))
        assert len(gaps) == 0 or gaps.max() - gaps.min() <= 1  # evenly spread
        assert len(gaps) == 0 or gaps.min() >= 2  # interleaved: a linear block between softmax ones
    with pytest.raises(SolaError, match=f"k must be between 1 and {n // 2} for variant {variant}"):
        baseline(f"interleave-{n // 2 + 1}", variant)


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_a_budgets_interleave_baseline_interleaves(variant):
    """micro's 8softmax interleave-8 was SS-SL-SSSS-LS: with more softmax blocks than half, the
    budget's interleave baseline is the densest interleave, every other block softmax."""
    n = VARIANTS[variant].num_blocks
    for k in (3, 4, 8, 12):  # (interleave-1 is last-1, listed once under that name)
        names = [name for name in baselines(variant, Budget.parse(f"{k}softmax")) if name.startswith("interleave")]
        assert names == ([f"interleave-{min(k, n // 2)}"] if k <= n else []), (variant, k)
    assert str(baselines("micro", Budget.parse("8softmax"))["interleave-5"]) == "LS-LS-LSLS-LS"
    assert str(baselines("small", Budget.parse("8softmax"))["interleave-8"]) == "LSL-LSLSL-LSLSLLSLS-LLS"  # README


@pytest.mark.parametrize("name, match", [
    ("last-0", "baseline 'last-0': k must be between 1 and 12 for variant tiny"),
    ("interleave-7", "baseline 'interleave-7': k must be between 1 and 6 for variant tiny .softmax blocks"),
    ("first-3", "unknown baseline 'first-3': expected one of all-linear, all-softmax, late-stages"),
    ("late_stages", "unknown baseline"),
])
def test_baseline_errors(name, match):
    with pytest.raises(SolaError, match=match):
        baseline(name, "tiny")


def test_resolve_text_and_names():
    assert resolve("ll-ls-llslls-ss", "tiny") == Pattern.parse("LL-LS-LLSLLS-SS")
    with pytest.raises(SolaError, match="k must be between 1 and 12"):
        resolve("last-99", "tiny")
    with pytest.raises(SolaError, match="stage 1"):
        resolve("nonsense", "tiny")


def test_baselines_without_budget_are_all_distinct():
    out = baselines("tiny")
    assert list(out)[:5] == ["all-linear", "all-softmax", "late-stages", "last-of-stage", "mambavision"]
    assert "last-4" in out and "interleave-4" in out
    assert len(set(out.values())) == len(out)
    assert all(baseline(name, "tiny") == p for name, p in out.items())


@pytest.mark.parametrize("variant", ["tiny", "small"])
@pytest.mark.parametrize("budget", ["8softmax", "3softmax", "0softmax", "2.5gmacs", "4softmax,3gmacs", "20mparams",
                                    "1gmacs"])
def test_baselines_for_a_budget_are_admitted(variant, budget):
    b = Budget.parse(budget)
    out = baselines(variant, b)
    assert all(b.admits(p, variant) for p in out.values())
    k = b.max_softmax
    # every named baseline the budget admits is there (under its first name)
    candidates = ["all-linear", "all-softmax", "late-stages", "last-of-stage", "mambavision"]
    n = VARIANTS[variant].num_blocks
    candidates += [f"last-{k or 4}", f"interleave-{min(k or 4, n // 2)}"] if k != 0 else []
    for name in candidates:
        if b.admits(baseline(name, variant), variant):
            assert baseline(name, variant) in out.values(), name


def test_baselines_keep_the_first_name_of_a_duplicate():
    out = baselines("tiny", Budget.parse("8softmax"))
    assert "late-stages" in out and "last-8" not in out  # on tiny, last-8 is late-stages
    assert "interleave-6" in out  # tiny's 12 blocks interleave at most 6 softmax

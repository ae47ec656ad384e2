"""Feasible sets: exact counts, enumeration and uniform sampling against brute force."""

from math import comb

import numpy as np
import pytest

from sola_search.errors import SolaError
from sola_search.space import VARIANTS, Budget, FeasibleSet, Pattern, cost_table


def all_bits(n: int) -> np.ndarray:
    return ((np.arange(2**n)[:, None] >> np.arange(n)) & 1).astype(np.int8)


def brute_force(variant: str, budget: Budget, resolution: int) -> set[Pattern]:
    """Every pattern, one at a time, through Budget.admits (the per-pattern cost path)."""
    patterns = (Pattern.from_bits(b, variant) for b in all_bits(VARIANTS[variant].num_blocks))
    return {p for p in patterns if budget.admits(p, variant, resolution)}


def macs_quantile(variant: str, resolution: int, q: float) -> int:
    t = cost_table(variant, resolution)
    return int(np.quantile(t.macs_many(all_bits(VARIANTS[variant].num_blocks)), q))


def budgets(variant: str, resolution: int) -> list[Budget]:
    params = cost_table(variant, resolution).params
    out = [Budget(max_softmax=k) for k in (0, 1, 3, 5, VARIANTS[variant].num_blocks, 99)]
    out += [Budget(max_macs=macs_quantile(variant, resolution, q)) for q in (0.0, 0.01, 0.3, 0.5, 0.9, 1.0)]
    out += [Budget(max_softmax=k, max_macs=macs_quantile(variant, resolution, q)) for k, q in
            ((2, 0.5), (4, 0.2), (6, 0.7), (3, 1.0))]
    out += [Budget(max_params=params), Budget(max_params=params - 1), Budget(max_softmax=4, max_params=params),
            Budget(max_softmax=4, max_macs=macs_quantile(variant, resolution, 0.5), max_params=params)]
    return out


@pytest.mark.parametrize("variant, resolution", [("micro", 224), ("micro", 64), ("micro", 161), ("tiny", 224)])
def test_count_and_enumeration_equal_brute_force(variant, resolution):
    # micro at 64 px and tiny at 224 px have blocks where softmax is *cheaper* than linear (N < head dim).
    for budget in budgets(variant, resolution):
        expected = brute_force(variant, budget, resolution)
        fs = FeasibleSet(variant, budget, resolution)
        assert fs.count() == len(expected), budget
        listed = fs.enumerate()
        assert len(listed) == len(set(listed)) == len(expected), budget
        assert set(listed) == expected, budget
        bits = fs.enumerate_bits()
        assert bits.shape == (len(expected), VARIANTS[variant].num_blocks)


def test_negative_deltas_are_exercised():
    assert (cost_table("tiny", 224).delta < 0).any()
    assert (cost_table("micro", 64).delta < 0).any()
    assert (cost_table("micro", 224).delta > 0).all()


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_closed_form_equals_meet_in_the_middle(variant):
    # A MACs limit no pattern reaches forces the meet-in-the-middle path; the count must not change.
    n = VARIANTS[variant].num_blocks
    for k in (0, 1, 2, 5, 8, n // 2, n, n + 3):
        closed = FeasibleSet(variant, Budget(max_softmax=k)).count()
        mitm = FeasibleSet(variant, Budget(max_softmax=k, max_macs=10**15)).count()
        assert closed == mitm == sum(comb(n, j) for j in range(min(k, n) + 1))


@pytest.mark.parametrize("variant, n", [("small", 20), ("base", 26)])
def test_8softmax_counts_are_sums_of_binomials(variant, n):
    assert VARIANTS[variant].num_blocks == n
    assert FeasibleSet(variant, Budget.parse("8softmax")).count() == sum(comb(n, k) for k in range(9))


def test_large_space_with_macs_limit_is_counted_exactly():
    # small: 2^20 patterns; checking against a vectorised brute force over all of them
    t = cost_table("small", 224)
    bits = all_bits(20)
    limit = int(np.median(t.macs_many(bits)))
    k = bits.sum(1)
    expected = int(((t.macs_many(bits) <= limit) & (k <= 7)).sum())
    assert FeasibleSet("small", Budget(max_softmax=7, max_macs=limit)).count() == expected


def test_uniform_sampling_chi_square():
    # A MACs limit makes the number of first-half completions differ widely between second halves,
    # so a sampler that picked the second half uniformly would be far from uniform.
    budget = Budget(max_softmax=4, max_macs=macs_quantile("micro", 224, 0.08))
    fs = FeasibleSet("micro", budget)
    feasible = sorted(fs.enumerate(), key=str)
    K = len(feasible)
    assert 20 <= K <= 200
    N = 40 * K
    samples = fs.sample(N, rng=12345)
    assert all(budget.admits(p, "micro") for p in samples)
    index = {p: i for i, p in enumerate(feasible)}
    observed = np.bincount([index[p] for p in samples], minlength=K)
    assert observed.sum() == N and (observed > 0).all()
    expected = N / K
    chi2 = float(((observed - expected) ** 2 / expected).sum())
    df = K - 1
    threshold = df + 6 * np.sqrt(2 * df)  # mean + 6 sd of χ²(df): generous, yet…
    assert chi2 < threshold, (chi2, threshold)
    # …meaningful: the naive sampler (second half uniform, then a completion) would be rejected.
    halves = {}  # the sampler splits micro's 10 blocks into 0-4 and 5-9
    for p in feasible:
        halves.setdefault(tuple(p.bits[5:]), []).append(p)
    naive = np.array([1 / len(halves) / len(halves[tuple(p.bits[5:])]) for p in feasible])
    expected_naive_chi2 = N * float(((naive - 1 / K) ** 2 * K).sum())
    assert expected_naive_chi2 > 3 * threshold, (expected_naive_chi2, threshold)


def test_sampling_is_seeded_and_admitted_on_every_variant():
    for variant in VARIANTS:
        budget = Budget(max_softmax=6, max_macs=macs_quantile("micro", 224, 0.5) if variant == "micro" else None)
        fs = FeasibleSet(variant, budget)
        a = fs.sample_bits(200, rng=7)
        assert np.array_equal(a, fs.sample_bits(200, rng=np.random.default_rng(7)))
        assert a.shape == (200, VARIANTS[variant].num_blocks) and set(np.unique(a)) <= {0, 1}
        assert all(budget.admits(Pattern.from_bits(b, variant), variant) for b in a)


def test_sample_zero_and_empty_sets():
    fs = FeasibleSet("micro", Budget(max_softmax=2))
    assert fs.sample_bits(0, rng=0).shape == (0, 10)
    assert fs.sample(0) == []
    params = cost_table("micro", 224).params
    empty = FeasibleSet("micro", Budget(max_params=params - 1))
    assert empty.count() == 0 and empty.enumerate() == []
    with pytest.raises(SolaError, match="admits no pattern of variant micro at 224px"):
        empty.sample(1)
    too_cheap = FeasibleSet("micro", Budget(max_macs=cost_table("micro", 224).all_linear_macs - 1))
    assert too_cheap.count() == 0


def test_enumeration_limit():
    fs = FeasibleSet("small", Budget.parse("8softmax"))
    with pytest.raises(SolaError, match="patterns admitted: more than the enumeration limit 1000; sample instead"):
        fs.enumerate_bits(limit=1000)
    assert len(FeasibleSet("small", Budget.parse("2softmax")).enumerate()) == 1 + 20 + 190

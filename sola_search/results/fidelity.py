"""How far a proxy's ranking of patterns can be trusted: rank agreement between seeds, between a
cheap proxy and a reference, and what more seeds would give (issue 13's fidelity protocol).

Pure functions of plain lists (no numpy, no scipy), shared by `sola-search calibrate`
(`results/calibration.py`) and `bench/proxy_fidelity.py`. `values[p][s]` is pattern p's score
under seed s, higher better; every pattern has the same seeds in the same order."""

from __future__ import annotations

import itertools
import math
import random
import statistics


def kendall_tau(a: list[float], b: list[float]) -> float:
    """Kendall's tau-b (ties in either list handled), O(n²); nan when either list is all ties."""
    n = len(a)
    conc = disc = ties_a = ties_b = 0
    for i in range(n):
        for j in range(i + 1, n):
            da, db = a[i] - a[j], b[i] - b[j]
            if da == 0 and db == 0:
                continue
            if da == 0:
                ties_a += 1
            elif db == 0:
                ties_b += 1
            elif (da > 0) == (db > 0):
                conc += 1
            else:
                disc += 1
    denom = ((conc + disc + ties_a) * (conc + disc + ties_b)) ** 0.5
    return (conc - disc) / denom if denom else float("nan")


def pearson(a: list[float], b: list[float]) -> float:
    """Pearson's r; nan when either list is constant."""
    ma, mb = statistics.fmean(a), statistics.fmean(b)
    sa = math.sqrt(sum((x - ma) ** 2 for x in a))
    sb = math.sqrt(sum((y - mb) ** 2 for y in b))
    return sum((x - ma) * (y - mb) for x, y in zip(a, b, strict=True)) / (sa * sb) if sa and sb else float("nan")


def tau_of_r(r: float) -> float:
    """Kendall's tau that a Pearson r implies for bivariate normal scores: (2/pi)·arcsin r."""
    return 2 / math.pi * math.asin(max(-1.0, min(1.0, r)))


def spearman_brown(r1: float, k: float) -> float:
    """The reliability of a mean of `k` measurements whose single-measurement reliability is `r1`."""
    return k * r1 / (1 + (k - 1) * r1)


def split_half(values: list[list[float]]) -> dict[str, float] | None:
    """A measurement against itself. Every split of the seeds into two halves: tau and r of the half
    means, averaged; the Spearman-Brown reliability of the all-seed mean, and the ceiling that
    reliability sets on any proxy's tau against that mean (tau = (2/pi)·arcsin r, r = sqrt(reliability))."""
    seeds = len(values[0])
    if seeds < 2:
        return None
    taus, rs = [], []
    for half in itertools.combinations(range(seeds), seeds // 2):
        if 0 not in half:  # each split once
            continue
        other = [s for s in range(seeds) if s not in half]
        a = [statistics.fmean(v[s] for s in half) for v in values]
        b = [statistics.fmean(v[s] for s in other) for v in values]
        taus.append(kendall_tau(a, b))
        rs.append(pearson(a, b))
    r = statistics.fmean(rs)
    reliability = 2 * r / (1 + r) if r > -1 else float("nan")  # Spearman-Brown: all seeds' mean
    return dict(split_half_tau=statistics.fmean(taus), split_half_r=r, reliability=reliability,
                tau_ceiling=tau_of_r(math.sqrt(reliability)) if reliability > 0 else 0.0)


def seed_agreement(values: list[list[float]]) -> dict[str, float] | None:
    """Seed against seed: Kendall's tau and Pearson's r between single seeds' scores, each the
    mean over every pair of seeds. The r is a single seed's reliability."""
    seeds = len(values[0])
    if seeds < 2:
        return None
    cols = [[v[s] for v in values] for s in range(seeds)]
    pairs = list(itertools.combinations(range(seeds), 2))
    return dict(seed_tau=statistics.fmean(kendall_tau(cols[i], cols[j]) for i, j in pairs),
                seed_r=statistics.fmean(pearson(cols[i], cols[j]) for i, j in pairs))


def cross_r(values: list[list[float]], other: list[list[float]]) -> float:
    """Pearson's r between one seed of `values` and another seed of `other`, averaged over pairs of
    different seeds: seed i trains from the same initial weights on the same batches at every
    length, so pairs of one seed would share its noise and overstate the agreement."""
    cols = [[v[s] for v in values] for s in range(len(values[0]))]
    ocols = [[v[s] for v in other] for s in range(len(other[0]))]
    rs = [pearson(a, b) for i, a in enumerate(cols) for j, b in enumerate(ocols) if i != j]
    return statistics.fmean(rs) if rs else float("nan")


def projected_r(cross: float, r1: float, k: int, r1_ref: float, k_ref: int) -> float:
    """Pearson's r between a `k`-seed mean and a reference's `k_ref`-seed mean, from single seeds'
    numbers: their cross correlation `cross` (different seeds) and each one's single-seed
    reliability `r1`, `r1_ref`. With true scores T, T' and independent seed noise, the r of means is
    cross · sqrt(SB(r1, k) / r1) · sqrt(SB(r1_ref, k_ref) / r1_ref) (SB: Spearman-Brown). No
    agreement to build on (a nan or a reliability <= 0) projects 0; the result is at most 1."""
    if any(math.isnan(x) for x in (cross, r1, r1_ref)) or r1 <= 0 or r1_ref <= 0 or cross <= 0:
        return 0.0
    r1, r1_ref = min(r1, 1.0), min(r1_ref, 1.0)
    gain = math.sqrt(spearman_brown(r1, k) / r1 * spearman_brown(r1_ref, k_ref) / r1_ref)
    return min(1.0, cross * gain)


def spread_over_noise(values: list[list[float]]) -> dict[str, float] | None:
    """Between-pattern sd of the seed means, the pooled within-pattern seed sd, and their ratio; and
    the same with each seed's common effect removed (`paired`): within a seed every pattern starts
    from the same weights and sees the same batches, so a seed that helps all patterns alike moves
    no ranking (the pattern × seed interaction, two-way ANOVA residual)."""
    n_p, n_s = len(values), len(values[0])
    if n_s < 2:
        return None
    means = [statistics.fmean(v) for v in values]
    between = statistics.stdev(means)
    within = math.sqrt(statistics.fmean(statistics.variance(v) for v in values))
    seed_means = [statistics.fmean(v[s] for v in values) for s in range(n_s)]
    grand = statistics.fmean(means)
    resid = sum((v[s] - m - seed_means[s] + grand) ** 2 for v, m in zip(values, means, strict=True)
                for s in range(n_s))
    paired = math.sqrt(resid / ((n_p - 1) * (n_s - 1))) if n_p > 1 else float("nan")
    return dict(between_sd=between, seed_sd=within, ratio=between / within if within else float("inf"),
                seed_sd_paired=paired, ratio_paired=between / paired if paired else float("inf"))


def variance_components(values: list[list[float]]) -> dict[str, float] | None:
    """Where a patterns x seeds table's variance lies (two-way ANOVA without replication): the pattern
    and seed components (floored at 0) and the residual, as standard deviations; the paired
    single-seed reliability `icc` (pattern variance over pattern plus residual: within a seed every
    pattern starts from the same weights and sees the same batches, so the seed's common shift moves no
    ranking); and the seeds per half that a split-half tau of 0.6 and 0.7 would take (Spearman-Brown;
    None when no pattern variance shows). None below 3 patterns or 2 seeds."""
    n, k = len(values), len(values[0]) if values else 0
    if n < 3 or k < 2:
        return None
    grand = statistics.fmean(v for row in values for v in row)
    p_eff = [statistics.fmean(row) - grand for row in values]
    s_eff = [statistics.fmean(row[j] for row in values) - grand for j in range(k)]
    ms_r = sum((values[i][j] - grand - p_eff[i] - s_eff[j]) ** 2 for i in range(n) for j in range(k)) / (
        (n - 1) * (k - 1))
    var_p = max(0.0, (k * sum(e * e for e in p_eff) / (n - 1) - ms_r) / k)
    var_s = max(0.0, (n * sum(e * e for e in s_eff) / (k - 1) - ms_r) / n)
    icc = var_p / (var_p + ms_r) if var_p + ms_r > 0 else 0.0
    out = dict(pattern_sd=math.sqrt(var_p), seed_sd=math.sqrt(var_s), residual_sd=math.sqrt(ms_r), icc=icc)
    for t in (0.6, 0.7):  # the seeds whose mean has reliability sin(t·pi/2): tau t between two such means
        r = math.sin(t * math.pi / 2)
        out[f"seeds_per_half_tau_{t}"] = math.ceil(r * (1 - icc) / (icc * (1 - r))) if icc > 0 else None
    return out


def bootstrap_tau(a: list[float], b: list[float], reps: int = 2000, seed: int = 0) -> tuple[float, float]:
    """A 90 % percentile interval of Kendall's tau over patterns resampled with replacement."""
    rng = random.Random(seed)
    n, out = len(a), []
    for _ in range(reps):
        idx = [rng.randrange(n) for _ in range(n)]
        t = kendall_tau([a[i] for i in idx], [b[i] for i in idx])
        if not math.isnan(t):
            out.append(t)
    if not out:  # every resample tied throughout: no ordering to speak of
        return float("nan"), float("nan")
    out.sort()
    return out[int(0.05 * len(out))], out[min(len(out) - 1, int(0.95 * len(out)))]


def top_k_overlap(a: list[float], b: list[float], k: int = 5) -> int:
    """How many of `a`'s k best are among `b`'s k best."""
    top = lambda v: set(sorted(range(len(v)), key=lambda i: -v[i])[:k])  # noqa: E731
    return len(top(a) & top(b))

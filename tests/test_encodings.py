"""Budget-aware encodings: nothing outside the budget is ever returned to the loop, baselines come
first and exactly, the evolution sampler's state lives in the storage, seeds reproduce."""

from __future__ import annotations

import numpy as np
import optuna
import pytest
from optuna.trial import TrialState

from sola_search.errors import SolaError
from sola_search.search.encodings import (
    DEFAULT_ENCODING,
    ENCODINGS,
    Encoding,
    KeysEncoding,
    encoding_class,
    enqueue_baselines,
    get_encoding,
)
from sola_search.search.samplers import (
    LAYER_CHOICES,
    BudgetCheck,
    FeasibleEvolutionSampler,
    UniformFeasibleSampler,
    block_param_names,
)
from sola_search.space import Budget, FeasibleSet, Pattern, baselines, cost_table

optuna.logging.set_verbosity(optuna.logging.WARNING)

CASES = [  # (variant, budget): count only, MACs only, both, and one where all-linear is over the MAC limit
    ("micro", "2softmax"),
    ("micro", "0.2gmacs"),
    ("micro", "4softmax,0.5gmacs"),
    ("small", "8softmax"),
    ("small", "8softmax,5gmacs"),
    ("small", "4.8025gmacs"),  # 4 patterns: ≥ 2 stage-4 softmax blocks (cheaper than linear there)
]


def _objective(pattern: Pattern, variant: str) -> list[float]:
    """A cheap two-objective stand-in: more softmax late is better, MACs from the cost table."""
    bits = np.array(pattern.bits, float)
    return [float(bits @ np.linspace(0.1, 1.0, len(bits))), cost_table(variant, 224).macs(pattern) / 1e9]


def _ask(study: optuna.Study, encoding) -> tuple[optuna.Trial, Pattern]:
    """What the search loop does with each proposal (`SearchLoop.ask`): `suggest` it, and tell one
    outside the budget PRUNED, never returning it."""
    for _ in range(1000):
        trial = study.ask()
        pattern = encoding.suggest(trial)
        if pattern is not None:
            return trial, pattern
        study.tell(trial, state=TrialState.PRUNED)
    pytest.fail(f"{encoding.name} proposed 1000 patterns in a row outside the budget {encoding.budget}")


def _search(study: optuna.Study, encoding, n: int) -> list[Pattern]:
    out = []
    for _ in range(n):
        trial, pattern = _ask(study, encoding)
        out.append(pattern)
        study.tell(trial, _objective(pattern, encoding.variant.name))
    return out


def _study(encoding, seed: int | None = 0, storage: str | None = None, name: str | None = None) -> optuna.Study:
    return optuna.create_study(directions=["maximize", "minimize"], sampler=encoding.sampler(seed),
                               storage=storage, study_name=name, load_if_exists=True)


def test_param_names_follow_the_text_form():
    assert block_param_names("small")[:4] == ["s1b1", "s1b2", "s1b3", "s2b1"]
    assert block_param_names("small")[-1] == "s4b3"
    base = block_param_names("base")  # a stage of 12: zero-padded so they sort in network order
    assert base[:2] == ["s1b01", "s1b02"] and "s3b12" in base and len(set(base)) == 26


@pytest.mark.parametrize("variant,budget", CASES)
def test_budget_check_equals_budget_admits(variant, budget):
    b, check = Budget.parse(budget), BudgetCheck(variant, Budget.parse(budget))
    rng = np.random.default_rng(0)
    n = cost_table(variant).linear_macs.size
    for bits in rng.integers(0, 2, (300, n)):
        assert check.admits(bits) == b.admits(Pattern.from_bits(bits, variant), variant)
        assert check.admits(bits) == all(v <= 0 for v in check.violations(bits).values())


@pytest.mark.parametrize("name", ENCODINGS)
@pytest.mark.parametrize("variant,budget", CASES)
def test_only_patterns_the_budget_admits_come_back(name, variant, budget):
    b = Budget.parse(budget)
    encoding = get_encoding(name, variant, b)
    study = _study(encoding)
    patterns = _search(study, encoding, 40)
    assert all(b.admits(p, variant) for p in patterns)
    for t in study.trials:
        if t.state == TrialState.PRUNED:  # refused proposals: recorded as over budget, never returned
            assert name == "blocks" and max(t.constraints.values()) > 0
            assert "outside the budget" in t.user_attrs["reason"]
        else:
            assert t.state == TrialState.COMPLETE and all(v <= 0 for v in t.constraints.values())
    returned = [t for t in study.trials if t.state == TrialState.COMPLETE]
    assert [t.user_attrs["pattern"] for t in returned] == [str(p) for p in patterns]


def test_blocks_records_infeasible_proposals_as_pruned_with_constraints():
    encoding = get_encoding("blocks", "small", "2softmax")
    study = _study(encoding)
    _search(study, encoding, 15)
    pruned = [t for t in study.trials if t.state == TrialState.PRUNED]
    assert pruned  # independent coin flips over 20 blocks: most exceed 2 softmax
    for t in pruned:
        assert t.constraints["softmax"] == Pattern.parse(t.user_attrs["pattern"]).softmax_layers - 2 > 0
        assert t.values is None
    assert all(t.number not in {p.number for p in pruned} for t in study.best_trials)


def test_suggest_refuses_an_enqueued_pattern_outside_the_budget():
    encoding = get_encoding("blocks", "micro", "2softmax")
    study = _study(encoding)
    study.enqueue_trial(encoding.params(Pattern.parse("SS-SS-LLLL-LL")))
    trial = study.ask()
    assert encoding.suggest(trial) is None
    assert study.trials[0].constraints == {"softmax": 2.0}


@pytest.mark.parametrize("name", ENCODINGS)
def test_baselines_come_back_exactly_and_first_and_once(name):
    encoding = get_encoding(name, "small", "8softmax,5gmacs")
    study = _study(encoding)
    base = baselines("small", encoding.budget)
    assert len(base) >= 3
    assert enqueue_baselines(study, base, encoding) == list(base)
    got = _search(study, encoding, len(base) + 3)
    assert got[: len(base)] == list(base.values())
    assert [t.user_attrs.get("baseline") for t in study.trials[: len(base)]] == list(base)
    assert enqueue_baselines(study, base, encoding) == []  # a resumed run queues nothing again
    assert not [t for t in study.trials if t.state == TrialState.WAITING]


def test_a_resumed_run_retries_a_baseline_that_ran_out_of_memory_but_not_one_that_diverged():
    encoding = get_encoding("evolution", "small", "8softmax")
    study = _study(encoding)
    base = dict(list(baselines("small", encoding.budget).items())[:3])
    enqueue_baselines(study, base, encoding)
    for status in ("oom", "nan", None):  # the three baselines, in queue order
        trial = study.ask()
        encoding.suggest(trial)
        if status:
            trial.set_user_attr("status", status)
            study.tell(trial, state=TrialState.FAIL)
        else:
            study.tell(trial, [0.5, 1.0])
    oom, nan, ok = base
    assert enqueue_baselines(study, base, encoding) == [oom]
    waiting = [t for t in study.trials if t.state == TrialState.WAITING]
    assert [(t.user_attrs["baseline"], t.user_attrs["retry_of"]) for t in waiting] == [(oom, 0)]
    assert enqueue_baselines(study, base, encoding) == []  # queued once, not once per call
    trial = study.ask()
    assert encoding.suggest(trial) == base[oom]  # the retry measures that very pattern
    trial.set_user_attr("status", "oom")
    study.tell(trial, state=TrialState.FAIL)
    assert enqueue_baselines(study, base, encoding) == []  # a retry that fails too is final


def test_a_baseline_interrupted_before_its_suggestions_is_measured_after_all():
    """A driver killed between `ask` and the encoding's suggestions leaves a RUNNING trial with
    fixed parameters and none suggested: recovery queues it again, as a baseline."""
    from sola_search.search.study import recover_interrupted

    encoding = get_encoding("evolution", "small", "8softmax")
    study = _study(encoding)
    base = dict(list(baselines("small", encoding.budget).items())[:1])
    enqueue_baselines(study, base, encoding)
    study.ask()  # ... and the driver dies here
    assert recover_interrupted(study) == [0]
    [waiting] = [t for t in study.trials if t.state == TrialState.WAITING]
    assert waiting.user_attrs == {"baseline": next(iter(base)), "retry_of": 0}
    assert encoding.suggest(study.ask()) == next(iter(base.values()))


def test_enqueue_baselines_refuses_a_pattern_outside_the_budget():
    encoding = get_encoding("evolution", "micro", "1softmax")
    with pytest.raises(ValueError, match="outside the budget"):
        enqueue_baselines(_study(encoding), {"all-softmax": Pattern.parse("SS-SS-SSSS-SS")}, encoding)


@pytest.mark.parametrize("variant,budget", CASES)
def test_keys_decode_is_feasible_and_round_trips(variant, budget):
    encoding = KeysEncoding(variant, budget)
    rng = np.random.default_rng(1)
    n = len(encoding.key_names)
    for _ in range(300):
        k = int(rng.integers(0, encoding.check.max_softmax + 1))
        bits = encoding.decode_bits(k, rng.random(n))
        assert encoding.check.admits(bits) and bits.sum() <= max(k, encoding.check.max_softmax)
    for pattern in FeasibleSet(variant, Budget.parse(budget)).sample(50, rng):
        assert encoding.decode(encoding.params(pattern)) == pattern


def test_keys_repair_keeps_the_highest_keys_that_fit():
    encoding = KeysEncoding("small", "8softmax,5gmacs")
    keys = np.zeros(20)
    keys[[0, 3, 8, 17]] = [0.9, 0.8, 0.7, 0.6]  # a stage-1 block first: 1.23 GMACs over the limit
    # Block 0 never fits; 3, 8, 17 do; then the next keys in order (ties: network order) that fit:
    # 1, 2 (stage 1) and 4–7 (stage 2, 0.14 GMACs) do not, 9 (stage 3) does.
    assert list(np.flatnonzero(encoding.decode_bits(4, keys))) == [3, 8, 9, 17]


@pytest.mark.parametrize("name", ENCODINGS)
def test_a_seed_reproduces_the_search(name):
    runs = []
    for _ in range(2):
        encoding = get_encoding(name, "small", "8softmax")
        runs.append([str(p) for p in _search(_study(encoding, seed=7), encoding, 25)])
    assert runs[0] == runs[1]


def test_evolution_continues_after_reloading_from_sqlite(tmp_path):
    """State lives in the study: baselines and 8 trials, then a new sampler object on the reloaded
    study (a new process), 8 more: exactly the trials of an uninterrupted run, baselines not again."""
    encoding = get_encoding("evolution", "small", "8softmax")
    base = baselines("small", encoding.budget)
    n = len(base) + 16  # past the uniform start (population 8): the evolution phase is reloaded too
    whole_study = _study(encoding, seed=3)
    enqueue_baselines(whole_study, base, encoding)
    whole = _search(whole_study, encoding, n)
    url = f"sqlite:///{tmp_path / 'study.db'}"
    study = _study(encoding, seed=3, storage=url, name="run")
    enqueue_baselines(study, base, encoding)
    first = _search(study, encoding, n - 8)
    del study
    fresh = get_encoding("evolution", "small", "8softmax")
    study = optuna.load_study(study_name="run", storage=url, sampler=fresh.sampler(3))
    assert enqueue_baselines(study, base, fresh) == []
    rest = _search(study, fresh, 8)
    assert first + rest == whole
    assert len(set(whole)) == n  # the sampler never proposes a pattern already in the study


def test_evolution_uses_the_population_after_it_is_complete():
    encoding = get_encoding("evolution", "small", "8softmax,5gmacs")
    study = _study(encoding, seed=0)
    patterns = _search(study, encoding, 40)
    assert len(set(patterns)) == 40
    # Children stay close to the elite: later proposals are mostly a move or two from an earlier one.
    def dist(a: Pattern, b: Pattern) -> int:
        return sum(x != y for x, y in zip(a.bits, b.bits, strict=True))
    near = [min(dist(p, q) for q in patterns[:i]) for i, p in enumerate(patterns) if i >= 20]
    assert np.median(near) <= 2


def test_uniform_initial_population_is_uniform_and_avoids_tried_patterns():
    sampler = FeasibleEvolutionSampler("micro", Budget.parse("2softmax"), seed=0)
    every = [tuple(b) for b in FeasibleSet("micro", Budget.parse("2softmax")).enumerate_bits()]
    assert len(every) == 56
    counts = dict.fromkeys(every, 0)
    rng = np.random.default_rng(0)
    for _ in range(56 * 60):
        counts[tuple(sampler.uniform.draw(rng, set()))] += 1
    expected = 60
    chi2 = sum((c - expected) ** 2 / expected for c in counts.values())
    assert chi2 < 120  # 55 degrees of freedom: mean 55, sd ≈ 10.5
    seen = set(every[:-1])
    assert tuple(sampler.uniform.draw(rng, seen)) == every[-1]
    assert tuple(sampler.uniform.draw(rng, set(every))) in counts  # exhausted: a repeat, not a crash


def test_evolution_repeats_only_once_the_budget_is_exhausted():
    encoding = get_encoding("evolution", "micro", "1softmax")  # 11 patterns
    patterns = _search(_study(encoding), encoding, 14)
    assert len(set(patterns[:11])) == 11 and all(p.softmax_layers <= 1 for p in patterns)


def test_get_encoding_names_what_is_wrong():
    assert DEFAULT_ENCODING in ENCODINGS
    with pytest.raises(SolaError, match="unknown sampler 'nsga'.*evolution"):
        get_encoding("nsga", "micro", "2softmax")
    with pytest.raises(SolaError, match="admits no pattern"):
        get_encoding("evolution", "micro", "0.1mparams")
    with pytest.raises(SolaError, match="admits no pattern"):
        get_encoding("keys", "micro", "0.01gmacs")


@pytest.mark.parametrize("name", ENCODINGS)
def test_every_encoding_runs_in_a_plain_optimize_loop(name):
    """The encodings also work define-by-run inside `study.optimize` (what Ray Tune's OptunaSearch drives)."""
    budget = Budget.parse("4softmax,0.5gmacs")
    encoding = get_encoding(name, "micro", budget)
    study = _study(encoding)

    def objective(trial: optuna.Trial) -> list[float]:
        pattern = encoding.suggest(trial)
        if pattern is None:
            raise optuna.TrialPruned()
        return _objective(pattern, "micro")

    study.optimize(objective, n_trials=12)
    done = [t for t in study.trials if t.state == TrialState.COMPLETE]
    assert done and all(budget.admits(Pattern.parse(t.user_attrs["pattern"]), "micro") for t in done)


@pytest.mark.parametrize("variant,budget", CASES)
def test_budget_check_is_budget_violations_on_bits(variant, budget):
    """What a proposal records (`set_constraint`) is `Budget.violations` of its costs, and the macs
    compared are `CostTable.macs`: the samplers' fast path is the one budget test, not a copy."""
    b, check = Budget.parse(budget), BudgetCheck(variant, Budget.parse(budget))
    table = cost_table(variant)
    for bits in np.random.default_rng(2).integers(0, 2, (100, table.linear_macs.size)):
        costs = table.costs(bits)
        assert costs["macs"] == table.macs(Pattern.from_bits(bits, variant))
        assert check.violations(bits) == b.violations(costs)
        assert check.admits(bits) == b.within(costs)


def test_the_registry_is_one_table_of_encodings():
    """Each name maps to its class, which says the same name; an unknown one is refused the same way
    wherever it is checked (`get_encoding` here, `prepare` through the same `encoding_class`)."""
    assert list(ENCODINGS) == ["evolution", "blocks", "keys", "random"]
    for name, cls in ENCODINGS.items():
        encoding = get_encoding(name, "micro", "2softmax")
        assert issubclass(cls, Encoding) and cls.name == name and type(encoding) is cls
        assert encoding_class(name) is cls
    with pytest.raises(SolaError, match="unknown sampler 'nsga': expected one of evolution, blocks, keys, random"):
        encoding_class("nsga")


def test_evolution_starts_as_the_uniform_sampler_it_holds():
    """Until its population is complete, evolution proposes exactly what `random` (the uniform sampler
    alone) proposes for the same seed and trials; then it evolves."""
    runs = {}
    for name in ("evolution", "random"):
        encoding = get_encoding(name, "small", "8softmax,5gmacs")
        runs[name] = [str(p) for p in _search(_study(encoding, seed=5), encoding, 20)]
    size = FeasibleEvolutionSampler.POPULATION_SIZE
    assert runs["evolution"][:size] == runs["random"][:size]
    assert runs["evolution"][size:] != runs["random"][size:]
    assert not isinstance(UniformFeasibleSampler("micro", Budget.parse("2softmax")), FeasibleEvolutionSampler)


@pytest.mark.parametrize("sampler_class", [UniformFeasibleSampler, FeasibleEvolutionSampler])
def test_a_sampler_on_a_budget_that_admits_nothing_says_so(sampler_class):
    """Built directly (not through `get_encoding`, which refuses such a budget first), a sampler whose
    budget admits no pattern stops with the one message, not an IndexError."""
    budget = Budget(max_params=cost_table("micro").params - 1)
    study = optuna.create_study(directions=["maximize", "minimize"], sampler=sampler_class("micro", budget, seed=0))
    trial = study.ask()
    with pytest.raises(SolaError, match="budget 0.956327mparams admits no pattern of variant micro at 224px"):
        trial.suggest_categorical("s1b1", LAYER_CHOICES)  # the sampler's proposal is drawn here

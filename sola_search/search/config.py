"""`SearchConfig`: everything that defines a search run, as `run.json` stores it."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field, fields, replace

from sola_search.errors import SolaError
from sola_search.objectives import DEFAULT_OBJECTIVES, get_objectives
from sola_search.space.cost import check_resolution

# What a new run uses for options left unset; a resumed run keeps what it was made with.
# A run stored before an option existed had what its default gives now.
DEFAULTS = {"variant": "small", "data": "fashion-mnist", "resolution": 224, "seed": 0, "baselines": True,
            "objectives": list(DEFAULT_OBJECTIVES), "seeds": 1, "estimator": "train"}
# What identifies a run's search: a resume may not change these (nor can its study: `open_study`).
IDENTITY = ("budget", "variant", "resolution", "encoding", "preset", "data", "steps", "batch_size", "lr", "seed",
            "storage", "baselines", "objectives", "latency", "latency_digest", "seeds", "estimator", "supernet_steps")
# Trials a run makes when neither --trials nor --time is given, by proxy preset.
DEFAULT_TRIALS = {"quick": 8, "default": 64, "long": 16}
# How a trial's top-1 is obtained (`--estimator`): `train`, the pattern's own proxy training; `supernet`,
# its score with the run's weight-sharing supernet (`proxies/supernet.py`), trained once per run.
ESTIMATORS = ("train", "supernet")
# A supernet run's default trial count: a score costs milliseconds of a GPU (bench/supernet_fidelity.py), so the
# count is what Optuna's bookkeeping (tens of ms per trial on SQLite) and the sampler's front make worth it; a
# space smaller than that is scored whole (the run ends "exhausted"). Patterns per worker call: `SUPERNET_PACK`.
SUPERNET_TRIALS = 2000
SUPERNET_PACK = 64
# On a GPU machine a worker trains a pack of trials together (one CUDA graph, `train_proxies`) on a
# whole GPU: 8 at once trained the most trials per hour in bench/proxy_packing.py (docs/performance.md).
DEFAULT_PACK = 8
DEFAULT_GPUS_PER_TRIAL = 1 / DEFAULT_PACK
# The most models one pack trains (`--pack`), and so the most seeds a pattern may have.
MAX_PACK = 64


def pack_models(pack: int, seeds: int) -> int:
    """The models a pack of `pack` slots trains when each pattern has `seeds` seeds: whole patterns,
    their seeds always together (one pattern's seeds are one pack's models), at least one pattern."""
    return seeds * max(1, pack // seeds)


_TEXT, _INT, _NUM = (str, type(None)), (int, type(None)), (int, float, type(None))
# The JSON types run.json may hold for each field (the dataclass's annotations, as runtime types).
_STORED_TYPES = dict(budget=(str,), variant=_TEXT, trials=_INT, time_limit_s=_NUM, encoding=_TEXT, preset=_TEXT,
                     data=_TEXT, resolution=_INT, gpus_per_trial=_NUM, workers=_INT, pack=_INT, address=_TEXT,
                     storage=_TEXT, name=_TEXT, runs_dir=(str,), seed=_INT, max_failures=_INT, steps=_INT,
                     batch_size=_INT, lr=_NUM, baselines=(bool, type(None)), objectives=(list, type(None)),
                     faults=(dict,), ahead=_INT,
                     latency=_TEXT, latency_digest=_TEXT, seeds=_INT, compile=_TEXT,
                     confirm=_INT, calibration=(dict, type(None)), estimator=_TEXT, supernet_steps=_INT)


@dataclass
class SearchConfig:
    budget: str
    variant: str | None = None  # None: 'small' (see DEFAULTS)
    trials: int | None = None
    time_limit_s: float | None = None
    encoding: str | None = None  # None: the measured default
    preset: str | None = None  # None: 'default' with GPUs, 'quick' without
    data: str | None = None
    resolution: int | None = None
    gpus_per_trial: float | None = None
    workers: int | None = None  # worker processes; None: fill the GPUs, or one on a CPU machine
    pack: int | None = None  # trials a worker trains together; None: DEFAULT_PACK on GPUs, 1 on a CPU
    # Packs queued behind each busy worker's running one, 0 or 1 (`--ahead`); None: the machine decides
    # (`runner._settle_machine`: 1 where workers train on GPUs, else 0).
    ahead: int | None = None
    address: str | None = None
    storage: str | None = None  # None: runs/<name>/study.db
    name: str | None = None
    runs_dir: str = "runs"
    seed: int | None = None
    max_failures: int | None = None  # None: a quarter of the trials, at least 3
    steps: int | None = None  # override the preset's proxy steps
    batch_size: int | None = None  # override the preset's proxy batch size (small data sets)
    lr: float | None = None  # override the preset's proxy learning rate (recall learns at 1e-3, a coin flip at 2e-3)
    baselines: bool | None = None  # measure the named baselines first (None: yes; --no-baselines: False)
    objectives: list[str] | None = None  # names in sola_search.objectives.OBJECTIVES; None: DEFAULT_OBJECTIVES
    latency: str | None = None  # a latency table (`sola-search latency`): the latency_ms objective, ms budgets
    latency_digest: str | None = None  # its content's sha256, stored so that a resume refuses another table
    seeds: int | None = None  # proxy trainings per pattern, seeds seed, seed + 1, …; None: 1
    estimator: str | None = None  # None: 'train' (see ESTIMATORS)
    supernet_steps: int | None = None  # the supernet's training steps; None: STEPS_FACTOR x the proxy's
    compile: str | None = None  # the proxy's compile mode (off, blocks); None: the preset's. How a trial runs,
    #   not what it measures: no part of a run's identity
    confirm: int | None = None  # extra seeds each front member may get once the trials are done (`run
    #   --confirm N`, search/confirm.py); None or 0: off. Not part of the run's identity: `resume` may change it
    calibration: dict | None = None  # `run --calibration FILE`: the file, its recommended steps and seeds, and
    #   which of them --steps/--seeds overrode (`apply_calibration`); steps and seeds are the identity
    # Tests only: pattern text → 'raise' | 'oom' | 'nan', injected in the worker.
    faults: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict:
        d = asdict(self)
        if not d["faults"]:
            d.pop("faults")
        return d

    @classmethod
    def from_dict(cls, d: dict, source: str = "run.json") -> SearchConfig:
        """A stored configuration, its types checked: a hand-edited run.json fails in one line."""
        if not isinstance(d, dict):
            raise SolaError(f"{source}: expected a JSON object, found {type(d).__name__}")
        if not isinstance(d.get("budget"), str):
            raise SolaError(f"{source}: 'budget' is {d.get('budget')!r}, expected text such as '8softmax'")
        for f in fields(cls):
            value, want = d.get(f.name), _STORED_TYPES[f.name]
            if f.name in d and not (isinstance(value, want) and (bool in want or not isinstance(value, bool))):
                names = " or ".join("null" if t is type(None) else t.__name__ for t in want)
                raise SolaError(f"{source}: '{f.name}' is {value!r}, expected {names}")
        return cls(**{f.name: d[f.name] for f in fields(cls) if f.name in d})

    def named(self) -> SearchConfig:
        """This configuration with its run's name: the one given, or a new run's default (variant,
        budget and time), which a caller knows before the run starts."""
        if self.name is not None:
            return self
        from sola_search.search.rundir import new_run_name

        return replace(self, name=new_run_name(self.budget, self.variant or DEFAULTS["variant"]))

    def check(self) -> SearchConfig:
        """Reject impossible values with one line each."""
        if self.trials is not None and self.trials < 1:
            raise SolaError(f"--trials {self.trials}: expected at least 1")
        if self.gpus_per_trial is not None and not 0 < self.gpus_per_trial <= 8:
            raise SolaError(f"--gpus-per-trial {self.gpus_per_trial}: expected a fraction in (0, 8]")
        if self.workers is not None and self.workers < 1:
            raise SolaError(f"--workers {self.workers}: expected at least 1")
        if self.pack is not None and not 1 <= self.pack <= MAX_PACK:
            raise SolaError(f"--pack {self.pack}: expected 1 to {MAX_PACK} models")
        if self.ahead is not None and self.ahead not in (0, 1):
            raise SolaError(f"--ahead {self.ahead}: expected 0 (a worker gets a pack when it has none) or 1 (one "
                            "more pack queued behind each busy worker's)")
        if self.seeds is not None and not 1 <= self.seeds <= MAX_PACK:
            raise SolaError(f"--seeds {self.seeds}: expected 1 to {MAX_PACK} (a pattern's seeds train in one pack)")
        models = pack_models(self.pack or 1, self.seeds or 1)
        if models > 1 and self.gpus_per_trial and models * self.gpus_per_trial > 1 + 1e-9:
            raise SolaError(f"--pack {self.pack or 1} x --gpus-per-trial {self.gpus_per_trial:g}"
                            f"{f' with --seeds {self.seeds}' if (self.seeds or 1) > 1 else ''} is more than one GPU: "
                            f"a pack trains on one GPU")
        if self.confirm is not None and not 0 <= self.confirm <= MAX_PACK:
            raise SolaError(f"--confirm {self.confirm}: expected 0 (off) to {MAX_PACK} extra seeds per front member")
        if self.estimator is not None and self.estimator not in ESTIMATORS:
            raise SolaError(f"--estimator {self.estimator!r}: expected {' or '.join(ESTIMATORS)}")
        if self.supernet_steps is not None and self.supernet_steps < 1:
            raise SolaError(f"--supernet-steps {self.supernet_steps}: expected at least 1")
        if self.supernet_steps is not None and self.estimator != "supernet":
            raise SolaError("--supernet-steps: only with --estimator supernet")
        if self.estimator == "supernet" and self.confirm:
            raise SolaError(f"--confirm {self.confirm} with --estimator supernet: --confirm adds seeds to a trained "
                            "mean, and a supernet score is not one; re-measuring a supernet front stand-alone is not "
                            "built yet (results.front.front_without_standalone lists what it would re-measure)")
        if self.estimator == "supernet" and (self.seeds or 1) > 1:
            raise SolaError(f"--seeds {self.seeds} with --estimator supernet: a supernet score is one deterministic "
                            "evaluation; seeds apply to the train estimator")
        if self.max_failures is not None and self.max_failures < 1:
            raise SolaError(f"--max-failures {self.max_failures}: expected at least 1")
        if self.steps is not None and self.steps < 1:
            raise SolaError(f"--steps {self.steps}: expected at least 1")
        if self.batch_size is not None and self.batch_size < 1:
            raise SolaError(f"--batch-size {self.batch_size}: expected at least 1")
        if self.lr is not None and not 0 < self.lr < 1:
            raise SolaError(f"--lr {self.lr}: expected a learning rate above 0 and below 1, such as 1e-3")
        if self.seed is not None and not 0 <= self.seed < 2**32:
            raise SolaError(f"--seed {self.seed}: expected 0 to 2**32 - 1")
        if self.compile is not None:
            from sola_search.proxies.config import COMPILE_MODES

            if self.compile not in COMPILE_MODES:
                raise SolaError(f"--compile {self.compile!r}: expected {' or '.join(COMPILE_MODES)}")
        if self.resolution is not None:
            check_resolution(self.resolution, f"--resolution {self.resolution}: ")
        if self.objectives is not None:
            get_objectives(self.objectives)
        from sola_search.space.budget import Budget

        Budget.parse(self.budget)  # first: a default run name is made from it
        return self


# A run's name is a directory's name (at most 255 bytes) and part of others': `export` names its file
# `<name>-trial<N>.json`.
MAX_NAME = 100


def check_name(name: str) -> str:
    """A new run's name: it becomes a directory and a study name."""
    if len(name) > MAX_NAME:
        raise SolaError(f"--name {name[:20]!r}… ({len(name)} characters): expected at most {MAX_NAME} characters")
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", name):
        raise SolaError(f"--name {name!r}: expected letters, digits, '.', '_' and '-'")
    return name


def parse_duration(text: str) -> float:
    """`90s`, `30m`, `2h`, `1h30m` → seconds."""
    parts = re.findall(r"([0-9]+(?:\.[0-9]+)?)([smh])", text.strip().lower())  # ASCII digits: not \d
    if not parts or "".join(n + u for n, u in parts) != text.strip().lower():
        raise SolaError(f"duration {text!r}: expected e.g. 90s, 30m, 2h or 1h30m")
    seconds = sum(float(n) * {"s": 1, "m": 60, "h": 3600}[u] for n, u in parts)
    if seconds <= 0:
        raise SolaError(f"duration {text!r}: expected more than zero")
    return seconds

"""`sola-search calibrate`: before a search, measure whether a short proxy ranks placements on this
data at all, and how many steps and seeds it takes.

A stratified set of patterns under the budget (`space.feasible.stratified_patterns`) is trained at
every rung of a step ladder with several seeds, through the same Ray workers as `run` (packs of
patterns x seeds on every GPU, a worker a core on CPUs), longest rungs first so that the reference (the
top rung) is there early; the top rung may have more seeds than the others (`--reference-seeds`:
a reference that agrees with itself better; its first seeds are the other rungs'). Each rung
trains the preset's proxy for that many steps with the preset's warm-up, so a rung is exactly what
`run --steps` trains (a rung inside the warm-up is warned of).

Resume: every finished training is appended, the moment its pack finishes, to a records file beside
the output (`<out>.records.jsonl`, JSON lines) keyed by pattern, steps, seed and the digest of the
rung's proxy configuration (every field but the seed and the device). A record is reused only for
exactly that training, so records of other arguments cannot mix in: run again after a kill -9 or a
Ctrl-C, a calibration trains only what is missing; other arguments reuse what they share. The
output JSON is never replaced by another calibration (other identity: one line, exit 2).
The analysis, table, JSON and PNG are `results/calibration.py`'s."""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from sola_search.errors import SolaError, ascii_int, one_line
from sola_search.files import missing_parents, read_text
from sola_search.objectives import SCORE_OBJECTIVES
from sola_search.search.config import MAX_PACK, SearchConfig

DEFAULT_LADDER = (150, 300, 600, 1200, 2400)
RECORD = "sola-search-calibration-training"  # each records line's `record`
# A training's identity beyond its config digest: where it ran does not change what it measures.
NOT_IDENTITY = ("seed", "device")


def parse_ladder(text: str) -> tuple[int, ...]:
    """`150,300,600` → (150, 300, 600): whole numbers of steps, increasing, at least two rungs."""
    parts = [t.strip() for t in str(text).split(",")]
    try:
        steps = tuple(ascii_int(t) for t in parts)
    except ValueError:
        raise SolaError(f"--ladder {text!r}: expected increasing whole numbers of steps, e.g. 150,300,600") from None
    if len(steps) < 2:
        raise SolaError(f"--ladder {text!r}: expected at least two rungs (each rung is ranked against the top one)")
    if any(s < 1 for s in steps):
        raise SolaError(f"--ladder {text!r}: steps must be at least 1")
    if any(b <= a for a, b in zip(steps, steps[1:], strict=False)):
        raise SolaError(f"--ladder {text!r}: the rungs must increase (the last, longest one is the reference)")
    return steps


def default_out(data: str, variant: str, budget: str) -> Path:
    """`calibrations/<data>-<variant>-<budget>.json`, the data spec and budget made file-name safe."""
    def safe(text: str) -> str:
        return re.sub(r"[^A-Za-z0-9._=+-]+", "-", text).strip("-.")[:80] or "data"

    return Path("calibrations") / f"{safe(data)}-{safe(variant)}-{safe(budget)}.json"


@dataclass(frozen=True)
class CalibrationConfig:
    """What `calibrate` was asked for. `identity` (what its result depends on) is checked against an
    existing output before anything is replaced."""

    data: str
    variant: str
    budget: str
    ladder: tuple[int, ...] = DEFAULT_LADDER
    seeds: int = 2
    reference_seeds: int | None = None  # the top rung's seeds; None: `seeds`
    patterns: int = 24
    preset: str | None = None  # None: default on GPUs, quick on a CPU (as `run`)
    seed: int = 0  # the pattern sample's seed and the first training seed
    resolution: int = 224  # where a GMACs budget is counted
    batch_size: int | None = None  # None: the preset's
    lr: float | None = None  # None: the preset's
    compile: str | None = None  # None: the preset's
    out: str | None = None  # None: default_out(...)
    pack: int | None = None
    workers: int | None = None
    address: str | None = None
    score: str = "val_top1"  # what ranks the patterns: val_top1 or val_loss (`run --score`'s objectives)

    def check(self) -> CalibrationConfig:
        """One line per impossible value, before Ray starts; the budget in its canonical form."""
        from sola_search.proxies import PRESETS, check_data
        from sola_search.results.calibration import MIN_PATTERNS
        from sola_search.space import Budget, FeasibleSet, get_variant
        from sola_search.space.cost import check_resolution

        ladder = parse_ladder(",".join(map(str, self.ladder))) if not isinstance(self.ladder, str) \
            else parse_ladder(self.ladder)
        if self.score not in SCORE_OBJECTIVES.values():
            raise SolaError(f"score {self.score!r}: expected {' or '.join(SCORE_OBJECTIVES.values())}")
        if not 2 <= self.seeds <= MAX_PACK:
            raise SolaError(f"--seeds {self.seeds}: expected 2 to {MAX_PACK} (seed-to-seed agreement needs two "
                            "seeds; a pattern's seeds train in one pack)")
        if self.reference_seeds is not None and not self.seeds <= self.reference_seeds <= MAX_PACK:
            raise SolaError(f"--reference-seeds {self.reference_seeds}: expected {self.seeds} (--seeds) to {MAX_PACK} "
                            "(the top rung is the reference: at least the other rungs' seeds, in one pack)")
        if not MIN_PATTERNS <= self.patterns <= 1000:
            raise SolaError(f"--patterns {self.patterns}: expected {MIN_PATTERNS} to 1000 (fewer leave Kendall's "
                            "tau and its bootstrap interval meaningless; 24 or more for a result)")
        if self.preset is not None and self.preset not in PRESETS:
            raise SolaError(f"unknown preset {self.preset!r}: expected one of {', '.join(PRESETS)}")
        if self.batch_size is not None and self.batch_size < 1:
            raise SolaError(f"--batch-size {self.batch_size}: expected at least 1")
        if not 0 <= self.seed < 2**32:
            raise SolaError(f"--seed {self.seed}: expected 0 to 2**32 - 1")
        check_resolution(self.resolution, f"--resolution {self.resolution}: ")
        SearchConfig(budget=self.budget, pack=self.pack, workers=self.workers, seeds=self.seeds,
                     compile=self.compile, lr=self.lr).check()
        variant = get_variant(self.variant)
        budget = Budget.parse(self.budget)
        FeasibleSet(variant, budget, self.resolution).nonempty()
        check_data(self.data)
        return replace(self, ladder=ladder, budget=str(budget))

    @property
    def out_path(self) -> Path:
        return Path(self.out) if self.out else default_out(self.data, self.variant, self.budget)

    @property
    def records_path(self) -> Path:
        """Beside the output: `x.json` → `x.records.jsonl`."""
        out = self.out_path
        return out.with_name((out.stem if out.suffix == ".json" else out.name) + ".records.jsonl")


def config_digest(cfg) -> str:
    """What a training is, besides its pattern and seed: the sha256 of its proxy configuration (the
    seed and the device left out), 16 hex digits."""
    d = {k: v for k, v in cfg.to_dict().items() if k not in NOT_IDENTITY}
    return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]


# --- the records file -----------------------------------------------------------------------------
def read_records(path: Path) -> dict[tuple[str, int, int, str], dict]:
    """Every finished training in the records file, by (pattern, steps, seed, config digest). A line
    that is not JSON is a write a kill cut short: ignored (that training runs again). JSON that is not
    a record, or a file with lines but no record, is someone else's file: refused."""
    if not path.exists():
        return {}
    text = read_text(path, f"{path}: the calibration records")
    out, cut = {}, 0
    for i, line in enumerate(text.split("\n")):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except ValueError:
            cut += 1
            continue
        try:
            if not (isinstance(rec, dict) and rec.get("record") == RECORD):
                raise TypeError
            out[(rec["pattern"], int(rec["steps"]), int(rec["seed"]), rec["config"])] = rec
        except (KeyError, TypeError, ValueError):
            raise SolaError(f"{path}, line {i + 1}: not a calibration record; this file is not sola-search "
                            "calibrate's records: move it away or pass another --out") from None
        if bad := _bad_values(rec):
            raise SolaError(f"{path}, line {i + 1}: a calibration record with {bad}; repair or delete that line "
                            "(its training then runs again)")
    if cut and not out:
        raise SolaError(f"{path} holds no calibration record: move it away or pass another --out")
    return out


def _bad_values(rec: dict) -> str:
    """What a record holds that no training writes ('' when nothing): the analysis reads these values."""
    from sola_search.proxies import STATUSES

    def number(v) -> bool:
        return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)

    if rec.get("status") not in STATUSES:
        return f"status {rec.get('status')!r} (expected one of {', '.join(STATUSES)})"
    ranges = dict(val_top1=(0, 1), val_loss=(0, math.inf), train_s=(0, math.inf), wall_s=(0, math.inf),
                  images_per_s=(0, math.inf), packed=(1, math.inf))
    for key, (lo, hi) in ranges.items():
        v = rec.get(key)
        if key == "val_loss" and rec["status"] == "nan" and isinstance(v, float):  # a diverged training's
            continue
        if v is not None and not (number(v) and lo <= v <= hi):
            return f"{key} {v!r} (expected a number from {lo} to {hi})"
    if not isinstance(rec.get("val_by_group") or {}, dict):
        return f"val_by_group {rec['val_by_group']!r} (expected an object)"
    return ""


def append_records(path: Path, records: list[dict]) -> None:
    """Append finished trainings, flushed and fsynced: a kill after this loses none of them. A line a
    kill cut short before is ended first, so that it stays one ignored line."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+b") as f:
        if f.tell() > 0:
            f.seek(-1, os.SEEK_END)
            if f.read(1) != b"\n":
                f.write(b"\n")
        f.write("".join(json.dumps(r, sort_keys=True) + "\n" for r in records).encode())
        f.flush()
        os.fsync(f.fileno())


# --- progress -------------------------------------------------------------------------------------
@dataclass
class CalibrationStats:
    total: int  # trainings the calibration holds
    reused: int  # found in the records
    work: int  # steps to train this session
    started: float = field(default_factory=time.monotonic)
    done: int = 0
    failed: int = 0
    running: int = 0
    work_done: int = 0
    rung: int | None = None
    warming: int = 0
    training: dict = field(default_factory=dict)

    def line(self) -> str:
        elapsed = time.monotonic() - self.started
        eta = "–" if not self.work_done else _clock(elapsed / self.work_done * (self.work - self.work_done))
        warming = f"{self.warming} worker(s) warming up │ " if self.warming else ""
        reports = [r for r in self.training.values() if "step" in r and "steps" in r]
        where = ", ".join(f"{r['step']}/{r['steps']}" for r in reports[:4])
        steps = (f"step {where}, "
                 f"{sum(r.get('images_per_s', 0.0) for r in reports):,.0f} images/s │ ") if reports else ""
        return (f"{warming}{steps}rung {self.rung} steps │ trainings {self.reused + self.done}/{self.total} done "
                f"({self.reused} from the records), {self.running} training, {self.failed} failed │ "
                f"{_clock(elapsed)} elapsed, ETA {eta}")


def _clock(seconds: float) -> str:
    s = int(seconds)
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


# --- the calibration ------------------------------------------------------------------------------
@dataclass
class CalibrationResult:
    calibration: dict
    out: Path
    plot: Path
    records: Path
    trained: int  # trainings this session
    reused: int
    failed: int


def calibrate(cfg: CalibrationConfig, quiet: bool = False) -> CalibrationResult:
    """Train what the records lack, then analyse, write the JSON and the PNG. Ctrl-C (SIGINT, SIGTERM)
    stops at the next finished pack with KeyboardInterrupt: what finished is in the records."""
    from sola_search.search.cluster import check_address, ray_session

    cfg = cfg.check()
    # Before Ray starts: a file that is not a calibration, or (with the preset given) another calibration.
    known = cfg.preset and _identity(cfg, _base(cfg))
    missing_parents(cfg.out_path, "--out")  # a file on the way failed once the first pack had trained
    _refuse_other_output(cfg.out_path, known or None)
    read_records(cfg.records_path)  # someone else's file: before Ray starts too
    if cfg.address:
        check_address(cfg.address)
    if not quiet:
        where = f"joining Ray at {cfg.address}" if cfg.address else "starting a local Ray instance"
        print(f"calibrate {cfg.data}, {cfg.variant}, {cfg.budget}: {where} …", file=sys.stderr, flush=True)
    with ray_session(cfg.address, quiet=quiet) as res:
        return _calibrate(cfg, res, quiet)


def _base(cfg: CalibrationConfig):
    """The proxy configuration every rung starts from (its steps replaced per rung); `cfg.preset` named."""
    from sola_search.proxies import get_preset

    return get_preset(cfg.preset, variant=cfg.variant, data=cfg.data, batch_size=cfg.batch_size, lr=cfg.lr,
                      compile=cfg.compile, seed=0)


def _identity(cfg: CalibrationConfig, base) -> dict:
    """What the result depends on. `data_path`: the data as `run` stores it (a file or folder made
    absolute), so that a run from another directory, or one that names the data otherwise, is
    matched with what was measured."""
    from sola_search.proxies.data import absolute_data

    return dict(data=cfg.data, data_path=absolute_data(cfg.data), variant=cfg.variant, budget=cfg.budget,
                preset=cfg.preset, resolution=cfg.resolution,
                ladder=list(cfg.ladder), seeds=cfg.seeds, reference_seeds=cfg.reference_seeds or cfg.seeds,
                patterns=cfg.patterns, seed=cfg.seed,
                batch_size=base.batch_size, lr=base.lr, proxy=config_digest(base))


def _refuse_other_output(out: Path, identity: dict | None) -> None:
    """An existing output is replaced only by the same calibration run again: a file that is not a
    calibration, or one of other arguments (named), is refused in one line."""
    from sola_search.files import parse_json
    from sola_search.results.calibration import is_calibration

    if not out.exists():
        return
    try:
        record = parse_json(out.read_text(encoding="utf-8"), str(out))
    except (OSError, UnicodeDecodeError, SolaError):
        record = None
    old = record.get("identity", {}) if is_calibration(record) else None
    if not isinstance(old, dict):  # not one, or one whose identity is damaged: nothing says it is this one
        raise SolaError(f"{out} exists and is not a calibration; nothing was changed: pass another --out or move it")
    if identity is None:
        return
    # A key the file lacks was added to the identity since it was written: the proxy digest covers it.
    diff = [f"{k} {old.get(k)!r} there, {v!r} here" for k, v in identity.items() if k in old and old[k] != v]
    if diff:
        raise SolaError(f"{out} holds another calibration ({'; '.join(diff)}); nothing was changed: pass another "
                        "--out, or move it away")


def _calibrate(cfg: CalibrationConfig, res, quiet: bool) -> CalibrationResult:
    from sola_search import __version__
    from sola_search.proxies import check_fit, seed_list, training_advice
    from sola_search.results import calibration as cal
    from sola_search.search.cluster import worker_actor
    from sola_search.search.pool import Warmed, WorkerPool, ready_note
    from sola_search.search.progress import Progress
    from sola_search.search.runner import machine_layout, stop_signals
    from sola_search.space import Budget
    from sola_search.space.feasible import stratified_patterns

    cfg = replace(cfg, preset=cfg.preset or ("default" if res.gpus else "quick"))
    base = _base(cfg)
    identity = _identity(cfg, base)
    out, records_path = cfg.out_path, cfg.records_path
    _refuse_other_output(out, identity)
    rungs = {steps: base.replace(steps=steps) for steps in cfg.ladder}  # what `run --steps` trains
    notes = check_fit(rungs[cfg.ladder[0]]) + training_advice(rungs[cfg.ladder[-1]])  # the top rung: its longest
    pats = stratified_patterns(cfg.variant, Budget.parse(cfg.budget), cfg.patterns, cfg.seed, cfg.resolution)
    if len(pats) < cal.MIN_PATTERNS:
        raise SolaError(f"budget {cfg.budget} admits only {len(pats)} patterns of {cfg.variant}: a ranking needs "
                        f"at least {cal.MIN_PATTERNS}")
    texts = [str(p) for _, p in pats]
    seeds = seed_list(cfg.seed, cfg.seeds)
    top_seeds = seed_list(cfg.seed, cfg.reference_seeds or cfg.seeds)  # the same first ones, and more

    def seeds_of(steps: int) -> list[int]:
        return top_seeds if steps == cfg.ladder[-1] else seeds

    digests = {steps: config_digest(c) for steps, c in rungs.items()}
    records = read_records(records_path)

    def have(steps: int, p: str, s: int) -> bool:
        return (p, steps, s, digests[steps]) in records

    pack, n_workers, options = machine_layout(
        SearchConfig(budget=cfg.budget, pack=cfg.pack, workers=cfg.workers, seeds=cfg.seeds),
        res.gpus, res.gpus_per_node, res.cpus, res.memory)
    jobs = plan_jobs(cfg.ladder, texts, seeds_of, have, pack)
    if other := other_configs(records, texts, digests):
        notes.append(f"{other} trainings in {records_path} of these patterns and rungs were made with another "
                     "proxy configuration (the data spec as written, preset, batch size, lr ... are part of a "
                     "training's identity) and are not reused")
    total = len(texts) * sum(len(seeds_of(steps)) for steps in cfg.ladder)
    todo = sum(len(ps) * k for _, ps, _, k in jobs)
    stats = CalibrationStats(total=total, reused=total - todo, work=sum(st * len(ps) * k for st, ps, _, k in jobs))
    if not quiet:
        top_note = f" ({len(top_seeds)} at the top)" if len(top_seeds) != len(seeds) else ""
        print(f"{len(texts)} patterns x {cfg.seeds} seeds{top_note} x rungs {','.join(map(str, cfg.ladder))} steps "
              f"({cfg.preset} preset): {total} trainings, {stats.reused} found in {records_path}, {todo} to train "
              f"on {n_workers} worker(s), packs of {pack} models"
              + (f" (the top rung's: {len(top_seeds)}, a pattern's seeds in one pack)"
                 if len(top_seeds) > pack else ""),
              file=sys.stderr, flush=True)
        for note in notes:
            print(f"warning: {note}", file=sys.stderr, flush=True)

    if jobs:
        first_steps, first_pats, _, first_k = jobs[0]  # workers warm up on the first pack's shape
        pool = WorkerPool(worker_actor(options, embedded=res.embedded),
                          (rungs[first_steps].to_dict(), len(first_pats), first_k), min(n_workers, len(jobs)))
        queue = list(jobs)
        with Progress(quiet) as progress, stop_signals() as signals:
            while queue or pool.jobs:
                if signals["stop"]:
                    raise KeyboardInterrupt
                while pool.idle and queue:
                    steps, ps, first, k = job = queue.pop(0)
                    pool.submit(job, ps, rungs[steps].replace(seed=first).to_dict(), None, pool.poll_s, k)
                    stats.rung = steps
                stats.running = sum(len(ps) * k for _, ps, _, k in pool.running())
                stats.warming = len(pool.warming)
                progress.update(stats)
                for end in pool.wait():
                    if isinstance(end, Warmed):
                        if end.error is not None:  # its packs fail and say why
                            progress.note(f"worker warm-up failed: {one_line(end.error)}")
                        else:  # as `run` says it: where a call's start-up goes
                            progress.note(ready_note(end.info or {}, end.wall))
                        continue
                    steps, ps, first, k = end.job
                    stats.training.pop(end.ref, None)
                    stats.work_done += steps * len(ps) * k
                    if end.error is not None:  # the pack failed whole; a dead worker is replaced
                        progress.note(f"a pack of {len(ps)} pattern(s) at {steps} steps failed: {one_line(end.error)}")
                        if end.worker_died and queue:
                            pool.start()
                        stats.failed += len(ps) * k
                        continue
                    results = end.results
                    new = [_record(p, steps, r, digests[steps]) for p, runs in zip(ps, results, strict=True)
                           for r in runs if r["status"] in ("ok", "nan")]  # oom, error: tried again next time
                    append_records(records_path, new)
                    records.update({(r["pattern"], steps, r["seed"], r["config"]): r for r in new})
                    stats.done += len(new)
                    bad = [r for runs in results for r in runs if r["status"] != "ok"]
                    stats.failed += len(bad)
                    for r in bad:
                        progress.note(f"{r['pattern']} at {steps} steps, seed {r['seed']}: {r['status']} "
                                      f"({r.get('reason', '')})")
                    top1 = [r["val_top1"] for runs in results for r in runs if r.get("val_top1") is not None]
                    if top1:
                        progress.note(f"{steps} steps: {len(ps)} pattern(s) x {k} seed(s) done, top-1 "
                                      f"{min(top1):.3f}-{max(top1):.3f}, {results[0][0].get('train_s', 0):.1f}s")
                for ref, _, info in pool.poll():
                    stats.training[ref] = info

    runs = {(steps, p, s): records[(p, steps, s, digests[steps])] for steps in cfg.ladder for p in texts
            for s in seeds_of(steps) if have(steps, p, s)}
    report = cal.analyse(cfg.ladder, seeds, texts, runs, score=cfg.score, reference_seeds=top_seeds)
    calibration = dict(
        format=cal.FORMAT, version=cal.VERSION, identity=identity, data=cfg.data, variant=cfg.variant,
        budget=cfg.budget, preset=cfg.preset, ladder=list(cfg.ladder), seeds=seeds, reference_seeds=top_seeds,
        patterns=[dict(name=n, pattern=str(p), softmax=p.softmax_layers) for n, p in pats],
        proxy=base.to_dict(), rung_configs={str(st): dict(warmup_steps=c.warmup_steps, digest=digests[st])
                                            for st, c in rungs.items()},
        **report,
        scores={str(st): {p: [runs[(st, p, s)].get(cfg.score) if (st, p, s) in runs else None for s in seeds_of(st)]
                          for p in texts} for st in cfg.ladder},
        records=str(records_path.resolve()), trained=stats.done, reused=stats.reused,
        machine=dict(gpus=res.gpus, cpus=res.cpus, workers=n_workers if jobs else 0, pack=pack),
        sola_search_version=__version__, created=time.strftime("%Y-%m-%dT%H:%M:%S"))
    from sola_search.files import write_atomic

    write_atomic(out, json.dumps(calibration, indent=2, allow_nan=False) + "\n")
    png = cal.plot_calibration(calibration, out.with_suffix(".png"))
    return CalibrationResult(calibration, out, png, records_path, stats.done, stats.reused, stats.failed)


def other_configs(records: dict, patterns: list[str], digests: dict[int, str]) -> int:
    """How many records are of these patterns and rungs but another proxy configuration: what a user
    who expected them reused (the same data under another path, say) should hear before training."""
    wanted = set(patterns)
    return sum(1 for p, steps, _, digest in records if p in wanted and steps in digests and digest != digests[steps])


def plan_jobs(ladder: tuple[int, ...], patterns: list[str], seeds_of: Callable[[int], list[int]],
              have: Callable[[int, str, int], bool], pack: int) -> list[tuple[int, list[str], int, int]]:
    """The trainings a calibration still lacks, as packs `(steps, patterns, first seed, seeds)`, longest
    rungs first. A pattern with none of a rung's seeds recorded trains them all in one pack (beside
    other such patterns: pack // seeds of them); one with some recorded (a run cut short, or a
    reference grown with --reference-seeds) trains each missing seed alone, `pack` patterns a pack."""
    jobs = []
    for steps in sorted(ladder, reverse=True):
        mine = seeds_of(steps)
        per_pack = max(1, pack // len(mine))
        whole = [p for p in patterns if not any(have(steps, p, s) for s in mine)]
        jobs += [(steps, whole[i : i + per_pack], mine[0], len(mine)) for i in range(0, len(whole), per_pack)]
        for s in mine:
            part = [p for p in patterns if p not in whole and not have(steps, p, s)]
            jobs += [(steps, part[i : i + pack], s, 1) for i in range(0, len(part), pack)]
    return jobs


def _record(pattern: str, steps: int, r: dict, digest: str) -> dict:
    """One finished training as its records line: its key and what the analysis and a reader need."""
    keep = ("status", "reason", "val_top1", "val_loss", "train_s", "wall_s", "packed", "device", "mode",
            "images_per_s", "val_by_group")
    return dict(record=RECORD, pattern=pattern, steps=steps, seed=r["seed"], config=digest,
                **{k: r.get(k) for k in keep}, finished=time.strftime("%Y-%m-%dT%H:%M:%S"))


# --- run --calibration ----------------------------------------------------------------------------
def apply_calibration(cfg: SearchConfig, path: str) -> tuple[SearchConfig, list[str]]:
    """`cfg` with the steps and seeds a calibration recommends (an explicit --steps or --seeds wins),
    and its data, variant, preset and score (what ranks the patterns) where the run does not name them;
    the lines saying so. Refused in one line: a file that is not a calibration, one measured on another
    variant, data, budget, preset, batch size or learning rate (each named), or one that found no
    setting that ranks. The run trains at the calibration's batch size and learning rate unless it names
    its own."""
    from sola_search.proxies.data import absolute_data, same_data
    from sola_search.results.calibration import load_calibration
    from sola_search.space import Budget

    record = load_calibration(path)
    ident = record["identity"]
    measured_on = ident.get("data_path", ident["data"])  # a calibration of before data_path: as written
    given = dict(variant=cfg.variant, budget=str(Budget.parse(cfg.budget)), preset=cfg.preset,
                 batch_size=cfg.batch_size, lr=cfg.lr)
    diff = [f"{k} {ident.get(k)!r}, not {v!r}" for k, v in given.items() if v is not None and v != ident.get(k)]
    if cfg.data is not None and not same_data(absolute_data(cfg.data), measured_on):
        diff.insert(0, f"data {measured_on!r}, not {cfg.data!r}")
    if diff:
        raise SolaError(f"calibration {path} was measured with {'; '.join(diff)}: calibrate for this run, or run "
                        "without --calibration")
    score = record.get("score", "val_top1")  # a calibration of before scores: by top-1
    ranks_by = (cfg.objectives or [None])[0]
    if ranks_by is not None and ranks_by != score:
        raise SolaError(f"calibration {path} ranked patterns by {score}, not {ranks_by}: calibrate with that --score, "
                        "or run without --calibration")
    rec = record["recommendation"]
    if not rec["ranks"]:
        raise SolaError(f"calibration {path} found no steps and seeds that rank placements ({rec.get('reason', '')});"
                        " run without --calibration")
    steps = cfg.steps if cfg.steps is not None else rec["steps"]
    seeds = cfg.seeds if cfg.seeds is not None else rec["seeds"]
    won = [f"--{k} {v}" for k, v in (("steps", cfg.steps), ("seeds", cfg.seeds)) if v is not None]
    note = {"file": str(Path(path).resolve()), "recommended": {"steps": rec["steps"], "seeds": rec["seeds"]},
            "expected_tau": rec.get("expected_tau"), "given": won, "steps": steps, "seeds": seeds}
    line = (f"calibration {path}: {rec['steps']} steps x {rec['seeds']} seeds (expected tau "
            f"{rec['expected_tau']:.2f} against its top rung)")
    if won:
        line += f"; {' and '.join(won)} given: {'they win' if len(won) > 1 else 'it wins'} over the calibration's"
    # The recommendation holds for the batch size and learning rate it was measured with: the run trains so too.
    out = replace(cfg, variant=cfg.variant or ident["variant"], data=cfg.data or measured_on,
                  preset=cfg.preset or ident["preset"], batch_size=cfg.batch_size or ident.get("batch_size"),
                  lr=cfg.lr or ident.get("lr"), steps=steps, seeds=seeds, calibration=note,
                  objectives=cfg.objectives or (None if score == "val_top1" else [score, "gmacs"]))
    ranked = "" if score == "val_top1" else f", ranking by {score}"
    return out, [line + f"; running {steps} steps x {seeds} seeds{ranked}"]

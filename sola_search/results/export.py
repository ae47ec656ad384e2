"""From a run to a backbone: pick one trial (`knee`, `best`, `trial:N`, `under:<budget>`), write it as a
self-contained pattern file, and build the model from such a file."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

from sola_search.errors import SolaError, ascii_int
from sola_search.files import missing_parents, output_parents
from sola_search.results.patterns import load_pattern_file

PICKS = "knee, best, trial:N or under:<budget> (e.g. under:2.5gmacs, under:4softmax,3gmacs)"


def pick_trial(study: Any, pick: str) -> int:
    """The trial number a pick names. `knee`/`best` choose from the Pareto front (best: highest top-1,
    ties to the cheaper); `under:<budget>` the most accurate feasible trial within the budget;
    `trial:N` a completed trial, whatever its place."""
    from sola_search.results.front import best_first, frame_objectives, knee, pareto_front, trials_frame
    from sola_search.space.budget import Budget

    frame = trials_frame(study)
    if frame.empty:
        raise SolaError(f"--pick {pick}: the study has no completed feasible trial yet (no trials at all)")
    front = pareto_front(frame)
    by, ascending = best_first(frame_objectives(frame), ["number"])  # the most accurate, ties to the cheaper
    text = pick.strip().lower()
    if text in ("knee", "best"):
        if front.empty:
            raise SolaError(f"--pick {pick}: the study has no completed feasible trial yet")
        if text == "knee":
            return int(knee(front)["number"])
        return int(front.sort_values(by, ascending=ascending).iloc[0]["number"])
    if text.startswith("trial:"):
        try:
            n = ascii_int(text.removeprefix("trial:"))
        except ValueError:
            raise SolaError(f"--pick {pick}: expected trial:N with N a trial number") from None
        rows = frame[frame["number"] == n]
        if rows.empty:
            raise SolaError(f"--pick {pick}: no trial {n} (the study has trials 0 to {len(frame) - 1})")
        row = rows.iloc[0]
        if row["state"] != "COMPLETE":
            why = f": {row['reason']}" if isinstance(row["reason"], str) else ""
            raise SolaError(f"--pick {pick}: trial {n} is {row['state']}{why}, not completed")
        return n
    if text.startswith("under:"):
        budget = Budget.parse(text.removeprefix("under:"))
        if budget.max_ms is not None and not frame["latency_ms"].notna().any():
            raise SolaError(f"--pick {pick}: run {study.study_name} recorded no latency (it was made without "
                            "--latency FILE): pick under a softmax, gmacs or mparams limit")
        ok = frame[frame["feasible"]]
        ok = ok.loc[[budget.within(row) for row in ok.to_dict("records")]]  # a cost the trial lacks is not within
        if ok.empty:
            raise SolaError(f"--pick {pick}: no completed feasible trial within {budget}")
        return int(ok.sort_values(by, ascending=ascending).iloc[0]["number"])
    raise SolaError(f"--pick {pick!r} not understood: expected {PICKS}")


def tie_note(study: Any, number: int) -> str | None:
    """One line when trial `number` is statistically tied with trials of the front on a seeded
    objective (`front.ties`): the pick was made on means, which do not separate them. None in a run
    without seeds, or with no tie."""
    from sola_search.results.front import pareto_front, seeded, tie_phrase, ties, trials_frame

    frame = trials_frame(study)
    tied = ties(pareto_front(frame), frame[frame["number"] == number].iloc[0])
    return f"trial {number} is {tie_phrase(tied, seeded(frame))}: the pick is made on means" if tied else None


def export_pattern(study: Any, pick: str, out: str | os.PathLike | None = None,
                   name: str | None = None) -> tuple[Path, dict[str, Any]]:
    """Write the picked trial's pattern file to `out` (atomically); returns the path and the record.
    `out` None, a directory or a path ending in '/' means `<name>-trial<N>.json` in that directory
    (`name` defaults to the study's); a missing directory is made, but only once everything is checked."""
    from sola_search.results.patterns import pattern_record_from_trial, write_pattern_file

    text = "" if out is None else os.fspath(out)
    n = None
    if not text or text.endswith(("/", os.sep)) or os.path.isdir(text):  # a directory: the default name in it
        n = pick_trial(study, pick)
        text = os.path.join(text, f"{name or study.study_name}-trial{n}.json")
    target = _check_out(Path(text))
    n = pick_trial(study, pick) if n is None else n
    trial = next(t for t in study.get_trials(deepcopy=False) if t.number == n)
    record = pattern_record_from_trial(study, trial)
    record["provenance"]["pick"] = pick
    with output_parents(target, "--out"):  # missing folders made now that everything is checked
        write_pattern_file(target, record)
    return Path(text), record


def _check_out(out: Path) -> Path:
    """An export writes a new pattern file or replaces an exported one, never a run's own files: its
    study database, run.json, or the pattern files its search wrote; never anything but a regular file
    (a device node, a FIFO). Checked where the path leads, symlinks resolved: that is what is written."""
    real = Path(os.path.realpath(out))
    if real.parent.name == "patterns" and (real.parent.parent / "run.json").is_file():
        via = f" (through a symlink, {real})" if str(real) != os.path.abspath(out) else ""
        raise SolaError(f"--out {out}: that is where run {real.parent.parent.name} keeps its trials' pattern files"
                        f"{via}; export elsewhere")
    try:
        mode = os.stat(real).st_mode
    except (FileNotFoundError, NotADirectoryError):
        missing_parents(out, "--out")  # a new file: a file on the way to it is refused here, in these words
        return real
    except OSError as e:
        raise SolaError(f"--out {out}: cannot check it ({e.strerror or e})") from None
    if stat.S_ISDIR(mode):
        raise SolaError(f"--out {out}: that is a directory; name a file, or end the path with '/'")
    if not stat.S_ISREG(mode):
        raise SolaError(f"--out {out}: not a regular file (a device, a FIFO or a socket); not replaced")
    try:
        load_pattern_file(real)
    except SolaError:
        raise SolaError(f"--out {out}: the file exists and is not a pattern file; not overwritten") from None
    return real


def load_backbone(path: str | os.PathLike, **kwargs: Any):
    """The backbone a pattern file describes (validated first): `build_backbone(variant, pattern,
    **kwargs)` with the file's variant, e.g. `load_backbone("knee.json", num_classes=100)`."""
    from sola_search.space import build_backbone

    record = load_pattern_file(path)
    for key in ("variant", "pattern"):
        if key in kwargs:
            raise SolaError(f"load_backbone({os.fspath(path)}): the {key} comes from the file "
                            f"({record[key]}); do not pass {key}=")
    # Built from the file as timm.create_model builds it: the same pattern and data config (resolution).
    return build_backbone(record["variant"], os.path.abspath(path), **kwargs)  # absolute: never read as a name

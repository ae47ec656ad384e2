"""Writing files so that a reader (or a crash) never sees half of one; reading JSON a user handed over."""

from __future__ import annotations

import json
import os
import secrets
import stat
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sola_search.errors import SolaError


def write_atomic(path: str | os.PathLike, text: str | bytes) -> Path:
    """Write `text` (or bytes: a supernet's safetensors) to `path` through a temporary file in the
    same directory, flushed and fsynced, then `os.replace`d: readers see the old file or the new one,
    never half. Creates the parent directory; leaves no temporary file behind on failure."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Not mkstemp: its 0600 mode would survive the rename; O_EXCL with 0666 honours the umask.
    tmp = path.parent / f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        binary = isinstance(text, bytes)
        with os.fdopen(fd, "wb") if binary else os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    return path


# A pattern file nests three levels (record → proxy → config); anything far deeper is hostile.
MAX_JSON_DEPTH = 32


def parse_json(text: str, source: str) -> object:
    """Parse JSON from a file a user handed over; raises only `SolaError` (naming `source`): not
    JSON, a number too long to convert (Python stops at 4,300 digits) or lists and objects nested so
    deep that parsing, or anything walking the result, would end in a RecursionError."""
    deep = SolaError(f"{source}: nested too deeply (more than {MAX_JSON_DEPTH} levels of lists and objects)")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise SolaError(f"{source}: not JSON ({e})") from None
    except ValueError:  # the only other ValueError json raises: int() of a too long number
        raise SolaError(f"{source}: a number of more than {sys.get_int_max_str_digits()} digits") from None
    except RecursionError:
        raise deep from None
    level, depth = [data], 0  # breadth-first, without recursion
    while level:
        depth += 1
        if depth > MAX_JSON_DEPTH:
            raise deep
        level = [v for x in level if isinstance(x, (list, dict))
                 for v in (x.values() if isinstance(x, dict) else x) if isinstance(v, (list, dict))]
    return data


# Every file sola-search reads back (pattern, run, calibration, supernet and latency records) is far smaller.
MAX_READ_BYTES = 64 << 20


def read_text(path: str | os.PathLike, source: str, missing: str = "no such file") -> str:
    """The UTF-8 text of a file a user handed over; raises only `SolaError` naming `source` (`missing`
    says what to do when there is no file). Only a regular file of at most `MAX_READ_BYTES` is read: a
    FIFO or a device (/dev/zero) would block or never end, a huge file fill the memory."""
    try:
        st = os.stat(path)
        if not stat.S_ISREG(st.st_mode):
            kind = "a directory" if stat.S_ISDIR(st.st_mode) else "not a regular file"
            raise SolaError(f"{source}: {kind}; expected a file")
        if st.st_size > MAX_READ_BYTES:
            raise SolaError(f"{source}: {st.st_size:,} bytes, more than the {MAX_READ_BYTES >> 20} MiB a file of "
                            "sola-search holds")
        return Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SolaError(f"{source}: {missing}") from None
    except (OSError, UnicodeDecodeError) as e:
        raise SolaError(f"{source}: cannot read it ({type(e).__name__}: {e})") from None


def read_json(path: str | os.PathLike, source: str, missing: str = "no such file") -> object:
    """Read and parse a JSON file a user handed over (`read_text`, then `parse_json`)."""
    return parse_json(read_text(path, source, missing), source)


# --- output files ---------------------------------------------------------------------------------
# A command that writes a file a user names (`pareto --plot`, `compare --plot`, `export --out`,
# `latency --out`, `calibrate --out`) makes the missing directories above it, as `mkdir -p` would, but
# only once its input is checked: a command that fails on bad input creates nothing.
def deepest_existing(path: str | os.PathLike) -> Path | None:
    """The deepest of `path` (made absolute) and the directories above it that exists, a link to nothing
    included: where a path that is not there yet would be made, and what could stand in its way."""
    p = Path(path).absolute()
    return next((d for d in (p, *p.parents) if d.exists() or d.is_symlink()), None)


def missing_parents(path: str | os.PathLike, option: str) -> list[Path]:
    """The directories above output file `path` that do not exist yet, outermost first; none is made
    here. Raises `SolaError` (naming `option` and `path`) when something on the way is not a directory."""
    parent = Path(path).absolute().parent
    there = deepest_existing(parent)
    if there is not None and not there.is_dir():  # a file, or a link to nothing
        raise SolaError(f"{option} {os.fspath(path)}: {there} is not a directory; expected a file name in a folder")
    depth = len(there.parts) if there is not None else 0
    return [d for d in (*reversed(parent.parents), parent) if len(d.parts) > depth]


@contextmanager
def output_parents(path: str | os.PathLike, option: str) -> Iterator[None]:
    """Make the missing directories above output file `path` (`missing_parents`) for the writes in
    the body; when the body fails, the directories made here are removed again (those left empty)."""
    made: list[Path] = []
    try:
        for d in missing_parents(path, option):
            try:
                d.mkdir(exist_ok=True)
            except OSError as e:
                raise SolaError(f"{option} {os.fspath(path)}: cannot make directory {d} ({e.strerror or e})") from None
            made.append(d)
        yield
    except BaseException:
        for d in reversed(made):
            try:
                d.rmdir()
            except OSError:  # something was written there after all: left as it is
                break
        raise

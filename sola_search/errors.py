"""User-facing errors: the CLI prints their message as one line and exits with status 2 (bad input)
or 1 (`StateError`: a state of the machine the user must fix); and the numbers a user types, in ASCII."""


class SolaError(ValueError):
    """Bad input from a user (a pattern, a budget, a file, an option): the message says what and why."""


class StateError(SolaError):
    """Not bad input: the machine stopped a command (a read-only or full file system, a failing study
    storage). The message says what happened, where, and how to continue; the CLI exits with status 1."""


def ascii_int(text: str) -> int:
    """`int(text)` for a number a user typed (an option, a term of a spec or a budget): ASCII digits only.
    Python's int() also takes the digits of other scripts (full-width `８`, Arabic-Indic `٨`), which
    sola-search would then store and print as other text than was typed. Raises ValueError as int() does,
    so each caller's one-line error for a bad number covers these too."""
    if not str(text).isascii():
        raise ValueError(f"{text!r}: expected the ASCII digits 0-9")
    return int(text)


def ascii_float(text: str) -> float:
    """`float(text)` for a number a user typed, ASCII only (see `ascii_int`)."""
    if not str(text).isascii():
        raise ValueError(f"{text!r}: expected the ASCII digits 0-9")
    return float(text)


def one_line(e: BaseException) -> str:
    """An exception as one line for a status `reason`: its type and the first line of its message."""
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0] if text else ''}".strip().rstrip(":")[:300]


def is_oom(e: BaseException) -> bool:
    """Out of memory on the device (or the host) rather than another failure."""
    import torch

    return isinstance(e, torch.OutOfMemoryError) or (
        isinstance(e, RuntimeError) and ("can't allocate memory" in str(e) or "out of memory" in str(e)))


def redact_url(url: str) -> str:
    """A storage URL without its password, for messages."""
    if "://" in url and "@" in url:
        scheme, rest = url.split("://", 1)
        cred, host = rest.rsplit("@", 1)
        return f"{scheme}://{cred.split(':', 1)[0]}:***@{host}"
    return url

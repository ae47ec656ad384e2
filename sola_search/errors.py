"""User-facing errors: the CLI prints their message as one line and exits with status 2."""


class SolaError(ValueError):
    """Bad input from a user (a pattern, a budget, a file, an option): the message says what and why."""

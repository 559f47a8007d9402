"""User-facing errors: one line naming what was wrong and what was expected."""


class UserError(Exception):
    """Bad input from the user (file, option, checkpoint). The CLI prints it as one line, no traceback."""


def expect(condition: bool, message: str) -> None:
    if not condition:
        raise UserError(message)


def shown(text: str) -> str:
    """Text safe to print or write as UTF-8: undecodable bytes of a path (surrogate escapes) become \\xNN."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")

"""User-facing errors: one line naming what was wrong and what was expected."""


class UserError(Exception):
    """Bad input from the user (file, option, checkpoint). The CLI prints it as one line, no traceback."""


def expect(condition: bool, message: str) -> None:
    if not condition:
        raise UserError(message)


def shown(text: str) -> str:
    """Text safe to print or write as UTF-8: undecodable bytes of a path (surrogate escapes) become \\xNN."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def first_line(exc: BaseException, limit: int | None = None) -> str:
    """The first line of an exception's message (its type's name when the message is empty), cut at a word
    before `limit` characters: for the parenthesis of a one-line error. `str(exc).splitlines()[0]` raised
    IndexError on an empty message, inside the very path that should have printed one line."""
    lines = str(exc).strip().splitlines()
    text = lines[0].strip() if lines else type(exc).__name__
    if limit is not None and len(text) > limit:
        text = text[:limit].rsplit(" ", 1)[0] + " …"
    return text

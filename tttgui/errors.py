"""User-facing errors: one line naming what was wrong and what was expected."""


class UserError(Exception):
    """Bad input from the user (file, option, checkpoint). The CLI prints it as one line, no traceback."""


def expect(condition: bool, message: str) -> None:
    if not condition:
        raise UserError(message)

"""
The one exception a user's mistake raises: entry points print it as one line and exit with code 2
(configurator.exit_on_user_error). The bottom of the package: it imports nothing of the project.
"""


class UserError(ValueError):
    """Bad input: a key, a value, a file or a folder that the run cannot use, with what is allowed."""


def require(ok, message):
    """Raise UserError(message) unless ok."""
    if not ok:
        raise UserError(message)

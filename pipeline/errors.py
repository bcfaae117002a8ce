"""Errors a user can fix: the CLI prints them on one line and exits with code 2."""


class UserError(Exception):
    """Bad input from the user (file, column, value); the message says what and where."""

    exit_code = 2

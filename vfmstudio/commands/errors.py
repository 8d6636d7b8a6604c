"""Errors the command line turns into exit status 2 with a one-line message."""


class UsageError(Exception):
    """Bad input from the user: unknown tool, unreadable file, bad parameter, model not available."""

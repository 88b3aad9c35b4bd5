"""Errors a user can act on. The CLI prints them as one line and exits with code 2."""


class WmbenchError(Exception):
    """Base class: the message is complete and names the bad file or field."""


class SuiteError(WmbenchError):
    """The suite file (or a path it names) is invalid; nothing has run yet."""


class SampleError(WmbenchError):
    """One sample cannot be used; recorded as the error of that sample's cells."""

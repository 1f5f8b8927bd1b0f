"""User-facing errors: one line naming the problem and the fix, no traceback."""


class HgxError(Exception):
    """A problem the user can fix (bad option, missing file, unknown experiment...).

    The CLI prints ``str(err)`` on one line and exits with ``exit_code``.
    """

    exit_code = 1


class UsageError(HgxError):
    """A malformed command line or option value."""

    exit_code = 2

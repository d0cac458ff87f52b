"""Errors shown to users: one line that names the problem and the fix."""


class ModelsyncError(Exception):
    """Bad input or configuration. The CLI prints `modelsync: error: <message>` and exits 2."""

    exit_code = 2


class JobFailed(ModelsyncError):
    """The job ran but failed (verification problems, failed transfers). Exit code 1."""

    exit_code = 1

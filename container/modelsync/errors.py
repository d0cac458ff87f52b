"""Errors shown to users: one line that names the problem and the fix."""


class ModelsyncError(Exception):
    """Bad input or configuration. The CLI prints `modelsync: error: <message>` and exits 2."""

    exit_code = 2


class JobFailed(ModelsyncError):
    """The job ran but failed (verification problems, failed transfers). Exit code 1."""

    exit_code = 1


class PullFailed(JobFailed):
    """Some models of a pull failed after the others were done; .result is the pull's partial result."""

    def __init__(self, message: str, result):
        super().__init__(message)
        self.result = result

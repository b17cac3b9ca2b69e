"""User-facing errors. Each carries the exit code the CLI returns (DESIGN.md §6).

Exit codes: 0 ok; 1 a check or accuracy budget failed; 2 usage error (bad option, bad or
missing input file, unsupported model); 3 internal error (a bug in dsedge: please report).
"""
from __future__ import annotations


class DseError(Exception):
    """An error the user can act on: the message names the file/node and the fix."""

    exit_code = 2

    def __init__(self, message: str, *, hint: str | None = None):
        super().__init__(message)
        self.hint = hint

    def __str__(self) -> str:
        msg = super().__str__()
        return f"{msg} ({self.hint})" if self.hint else msg


class ModelError(DseError):
    """The model file is unreadable, corrupt, or uses something unsupported."""


class UnsupportedOpError(ModelError):
    pass


class FeedError(DseError):
    """A calibration/evaluation feed does not fit the model."""


class CheckFailed(DseError):
    """A check or accuracy budget failed (exit code 1)."""

    exit_code = 1


class DseWarning(UserWarning):
    """Something the user should know that does not stop the command (the CLI prints it as
    one `dsedge: warning:` line on stderr, once per distinct message)."""

"""One exception type for every user-facing error: a location and a one-line message."""

from __future__ import annotations


class PausectlError(Exception):
    """An error the CLI prints as one line (`file:line:col: message`) and exits 1 on."""

    exit_code = 1

    def __init__(self, message: str, file: str | None = None, line: int | None = None,
                 col: int | None = None):
        super().__init__(message)
        self.message = message
        self.file = file
        self.line = line
        self.col = col

    def location(self) -> str:
        if not self.file:
            return ""
        parts = [self.file]
        if self.line is not None:
            parts.append(str(self.line))
            if self.col is not None:
                parts.append(str(self.col))
        return ":".join(parts)

    def __str__(self) -> str:
        loc = self.location()
        return f"{loc}: {self.message}" if loc else self.message


class BackendError(PausectlError):
    """Talking to Airflow failed in a way retries could not fix (auth, permission, TLS, 404...)."""


class GateFailed(PausectlError):
    """A health gate failed during a staged apply (exit code 3)."""

    exit_code = 3

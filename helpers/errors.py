"""Every error the playbook raises on purpose. Each message names the problem and the fix.

Catch :class:`PlaybookError` to handle them all; the CLI prints them without a traceback.
"""

from __future__ import annotations


class PlaybookError(Exception):
    """Base class: a problem the user can act on. ``fix`` says what to do."""

    def __init__(self, problem: str, fix: str | None = None):
        self.problem = problem
        self.fix = fix
        super().__init__(problem if not fix else f"{problem}\n  fix: {fix}")


class ParameterError(PlaybookError):
    """A parameter, profile or command-line value is unknown, mistyped or out of range."""


class ProfileError(ParameterError):
    """A profile file cannot be read or parsed."""


class ArtifactError(PlaybookError):
    """The run directory cannot be written, read, or is locked by another run."""


class RunLockedError(ArtifactError):
    """Another run is using the same run directory or workspace."""


class ModelError(PlaybookError):
    """A model directory or catalog name cannot be resolved, or its config lacks a field."""


class ServerError(PlaybookError):
    """A vLLM server could not be started, reached or stopped."""


class ServerStartError(ServerError):
    """A managed server exited or did not become healthy; carries the log tail."""

    def __init__(self, problem: str, fix: str | None = None, log_tail: str = ""):
        self.log_tail = log_tail
        if log_tail:
            problem = f"{problem}\n--- last lines of the server log ---\n{log_tail}"
        super().__init__(problem, fix)


class ServerUnreachableError(ServerError):
    """A URL did not answer in time."""


class SpecConfigError(PlaybookError):
    """A speculative-decoding configuration is invalid for the installed vLLM."""


class MetricsError(PlaybookError):
    """/metrics is missing, unparsable, or lacks the counters needed."""


class CounterResetError(MetricsError):
    """A counter went backwards between two scrapes: the server restarted in between."""


class WorkloadError(PlaybookError):
    """A workload name or prompts file is unknown, empty or malformed."""


class MeasurementError(PlaybookError):
    """A measurement phase failed; what was measured before the failure is on disk."""


class ImportFileError(PlaybookError):
    """Another tool's result file cannot be imported (playbook import)."""

"""One root exception for the package, children that also inherit the matching built-in."""

from __future__ import annotations


class SurrogateEMOError(Exception):
    """Root of every error raised on purpose by surrogate_emo."""


class ConfigError(SurrogateEMOError, ValueError):
    """A configuration value or file is malformed, or names something unknown."""


class SearchSpaceError(SurrogateEMOError, ValueError):
    """A genome does not fit the search space (length, bounds, NaN)."""


class DataError(SurrogateEMOError, FileNotFoundError):
    """A data set could not be found or read."""


class FineTuneDiverged(SurrogateEMOError, ArithmeticError):
    """Fine-tuning produced a non-finite loss or weights."""


class SearchExhausted(SurrogateEMOError, RuntimeError):
    """A search can propose no genome that builds a model it has not evaluated yet."""


class StudyMismatchError(SurrogateEMOError, ValueError):
    """A study on disk was written by a different configuration than the one resuming it."""


class StudyError(SurrogateEMOError, ValueError):
    """A study file exists but is not a readable SQLite study (garbage bytes, truncated); it is left untouched."""


class OutputError(SurrogateEMOError, OSError):
    """An output location (run folder, study, cache) cannot be written."""

    @classmethod
    def writing(cls, path: object, error: BaseException) -> OutputError:
        """``cannot write to <path>: <reason>`` from the `OSError` (or SQLite error) that said so."""
        reason = getattr(error, "strerror", None) or str(error)
        return cls(f"cannot write to {path}: {reason}")


class ClusterError(SurrogateEMOError, ConnectionError):
    """A cluster that was asked for (a dask scheduler) cannot be reached or has no worker."""


class SurrogateEMOWarning(UserWarning):
    """Soft problems: something was skipped or adjusted, the run goes on."""


class RunInterrupted(KeyboardInterrupt):
    """A run stopped by Ctrl-C or SIGTERM. Everything it finished is in the study; rerunning resumes it.

    A `KeyboardInterrupt`, so that nothing that catches `Exception` (an experiment going on to its next run)
    swallows it.
    """

    def __init__(self, evaluated: int) -> None:
        super().__init__(f"interrupted after {evaluated} evaluations; rerun the same command to resume")
        self.evaluated = evaluated

"""amk's error hierarchy: every error a user can cause derives from :class:`AmkError`. Each message is one
sentence that names the bad value and says what to do next; the CLI prints it without a traceback and exits
1 (2 for usage errors). Every amk error class lives in this module."""

from __future__ import annotations


class AmkError(Exception):
    """Base of every error amk raises for bad input or an unusable environment."""


class LeftOutWarning(UserWarning):
    """Data amk read but did not use (seeds, rows, entries), with how many and why: never left out silently.
    The ``amk`` command prints each as one ``amk: note:`` line; a library caller sees a Python warning."""


class Interrupted(KeyboardInterrupt):
    """Ctrl-C during a long operation that keeps what it had done: a KeyboardInterrupt (uncaught, it ends
    the program as Ctrl-C does) carrying ``result``, the operation's result so far (``amk.tuning.tune``:
    its TuneResult, whose state is saved and resumable), for the caller to report."""

    def __init__(self, result: object, message: str = "interrupted") -> None:
        super().__init__(message)
        self.result = result


class ConfigError(AmkError):
    """A config file, section, key or value is wrong."""


class PluginError(AmkError):
    """A plugin could not be loaded, is registered twice, or is not installed."""


class UnknownNameError(PluginError):
    """A store, featurizer, ranker or backend name that no installed plugin provides."""


class UnsupportedOperationError(AmkError):
    """An implementation was asked for an optional capability it does not have (saving, URLs, ...)."""


class MissingDependencyError(AmkError):
    """An optional dependency an implementation needs is not installed."""


class ValidationError(AmkError):
    """A value (a shape, a config, a device spec) is outside its legal range."""


class InputLimitError(ValidationError):
    """A value breaks one of amk's input limits (``amk.core.inputs``: size, nesting, integers, strings)."""


class RecordError(AmkError):
    """A corpus record is malformed; the message says where it came from."""


class SchemaVersionError(RecordError):
    """A record was written by a newer amk than this one."""


class StoreError(AmkError):
    """A corpus store cannot be opened, read or written."""


class ImportFormatError(AmkError):
    """A file given to ``amk corpus import`` is not in a format amk can read."""


class BackendError(AmkError):
    """A kernel backend cannot run here, or refused a workload or config."""


class InvalidConfigError(BackendError):
    """A backend refused one config (outside the search space or breaking a constraint)."""


class WrongAnswerError(BackendError):
    """A config ran but computed a wrong result: an objective (``amk.tune``, the Optuna bridge) raises it
    to have the config recorded as FAIL rather than CRASH."""


class NotFittedError(AmkError):
    """A ranker or featurizer was used before ``fit`` (see :func:`amk.core.implementation.check_is_fitted`)."""


class ModelFileError(AmkError):
    """A saved model is missing, unreadable, damaged, or was written for another ranker."""


class ExportError(AmkError):
    """Records cannot be written in the requested format."""


class FileWriteError(AmkError):
    """A file amk creates (an export, a backup, a model, a tune state, report or plot) cannot be written."""


class TuneStateError(AmkError):
    """A tune state file is unreadable or belongs to another target."""

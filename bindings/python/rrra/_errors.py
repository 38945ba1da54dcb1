"""Exceptions: one class per rrra_status, each carrying the library's message and status code."""

from __future__ import annotations

from typing import Optional

from . import _lib


class RrraError(Exception):
    """A call into the rrra library failed.

    Attributes:
        message: rrra_last_error() of the failed call: it names the argument and the problem.
        status: the rrra_status code (e.g. 1003 for RRRA_STATUS_DIMENSION_MISMATCH).
        status_name: the status as the header spells it, e.g. "RRRA_STATUS_DIMENSION_MISMATCH".
    """

    status: int = -1

    def __init__(self, message: str, status: Optional[int] = None) -> None:
        super().__init__(message)
        self.message = message
        if status is not None:
            self.status = status

    @property
    def status_name(self) -> str:
        """The status code's name (rrra_status_name)."""
        return _lib.status_name(self.status)

    def __str__(self) -> str:
        return self.message


class NullPointerError(RrraError):
    """RRRA_STATUS_NULL_POINTER: a required pointer was NULL (a bug in the binding; please report it)."""

    status = _lib.RRRA_STATUS_NULL_POINTER


class InvalidArgumentError(RrraError, ValueError):
    """RRRA_STATUS_INVALID_ARGUMENT: a length, stride, id, flag or option value is wrong."""

    status = _lib.RRRA_STATUS_INVALID_ARGUMENT


class DimensionMismatchError(RrraError, ValueError):
    """RRRA_STATUS_DIMENSION_MISMATCH: an embedding width disagrees with the adapter's d."""

    status = _lib.RRRA_STATUS_DIMENSION_MISMATCH


class NonFiniteInputError(RrraError, ValueError):
    """RRRA_STATUS_NON_FINITE_INPUT: NaN or ±Inf in queries, candidates or base scores.

    The message names the argument, the query and the position.
    """

    status = _lib.RRRA_STATUS_NON_FINITE_INPUT


class InvalidModelError(RrraError, ValueError):
    """RRRA_STATUS_INVALID_MODEL: the adapter file breaks SPEC §2; the message names the tensor or key."""

    status = _lib.RRRA_STATUS_INVALID_MODEL


class IoError(RrraError, OSError):
    """RRRA_STATUS_IO: a file could not be read. Also an OSError (``filename`` is set)."""

    status = _lib.RRRA_STATUS_IO


class NumericError(RrraError, ArithmeticError):
    """RRRA_STATUS_NUMERIC: the forward pass overflowed on finite input of absurd magnitude."""

    status = _lib.RRRA_STATUS_NUMERIC


class UnsupportedError(RrraError):
    """RRRA_STATUS_UNSUPPORTED: the request needs something this build or machine lacks (e.g. a forced engine)."""

    status = _lib.RRRA_STATUS_UNSUPPORTED


class InternalError(RrraError):
    """RRRA_STATUS_INTERNAL: a bug in rrra (a caught panic); the message says where. Please report it."""

    status = _lib.RRRA_STATUS_INTERNAL


_BY_STATUS = {
    cls.status: cls
    for cls in (
        NullPointerError,
        InvalidArgumentError,
        DimensionMismatchError,
        NonFiniteInputError,
        InvalidModelError,
        IoError,
        NumericError,
        UnsupportedError,
        InternalError,
    )
}


def error_for(status: int, message: Optional[str] = None) -> RrraError:
    """The exception for a non-OK status, with this thread's rrra_last_error() unless `message` is given."""
    if message is None:
        message = _lib.last_error() or _lib.status_name(status)
    cls = _BY_STATUS.get(status, RrraError)
    return cls(message, status)


def check(status: int) -> None:
    """Raises the matching RrraError for a non-OK status; call right after the foreign call, on the same thread."""
    if status != _lib.RRRA_STATUS_OK:
        raise error_for(status)

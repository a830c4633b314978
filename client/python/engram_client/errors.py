"""Exceptions of the engramd client.

Every error is an EngramError with .status (the daemon's Status number, or
None for an error of the client side: connection, timeout, protocol) and
.message (what went wrong, in words a person can act on). Each daemon status
has its own subclass, so callers can catch e.g. OutOfRange alone.
"""

# The daemon's Status enum (proto/engram.proto); kept here as plain ints so
# that this module needs no generated code.
OK = 0
BAD_REQUEST = 1
NOT_FOUND = 2
OUT_OF_RANGE = 3
TOO_LARGE = 4
UNAVAILABLE = 5
INTERNAL = 6

STATUS_NAMES = {
    OK: "OK", BAD_REQUEST: "BAD_REQUEST", NOT_FOUND: "NOT_FOUND",
    OUT_OF_RANGE: "OUT_OF_RANGE", TOO_LARGE: "TOO_LARGE",
    UNAVAILABLE: "UNAVAILABLE", INTERNAL: "INTERNAL",
}


class EngramError(Exception):
    """Base of every client error. status: daemon Status or None."""

    status = None

    def __init__(self, message, status=None):
        if status is not None:
            self.status = status
        self.message = message
        super().__init__(message)

    def __str__(self):
        if self.status is None:
            return self.message
        name = STATUS_NAMES.get(self.status, str(self.status))
        return f"{name}: {self.message}"


class BadRequest(EngramError):
    status = BAD_REQUEST


class NotFound(EngramError):
    status = NOT_FOUND


class OutOfRange(EngramError):
    status = OUT_OF_RANGE


class TooLarge(EngramError):
    status = TOO_LARGE


class Unavailable(EngramError):
    status = UNAVAILABLE


class Internal(EngramError):
    status = INTERNAL


class EngramConnectionError(EngramError, ConnectionError):
    """The connection failed or broke; the next call reconnects."""


class EngramTimeout(EngramError, TimeoutError):
    """A connect or wait took longer than the timeout. The connection is
    dropped (a half-read response cannot be resumed); the next call
    reconnects."""


class ProtocolError(EngramError):
    """The daemon sent something this client cannot parse or did not ask
    for. The connection is dropped."""


_BY_STATUS = {c.status: c for c in (BadRequest, NotFound, OutOfRange, TooLarge,
                                     Unavailable, Internal)}


def from_status(status, message):
    """The exception for a daemon response with status != OK."""
    cls = _BY_STATUS.get(status)
    if cls is None:
        return EngramError(message or "unknown status", status=status)
    return cls(message or STATUS_NAMES[status].lower().replace("_", " "))

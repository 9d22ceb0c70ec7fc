"""Protocol errors: each carries the wire `code` of docs/protocol.md ("Requests and responses")."""

from __future__ import annotations


class ProtocolError(Exception):
    """A request the server refuses; nothing changed. `extra` fields go into the response."""

    code = "internal"

    def __init__(self, message: str, **extra: object) -> None:
        super().__init__(message)
        self.message = message
        self.extra = extra

    def to_wire(self) -> dict:
        """The `error` object of an error response."""
        return {"code": self.code, "message": self.message}


class BadRequest(ProtocolError):
    code = "bad_request"


class InvalidChange(ProtocolError):
    code = "invalid_change"


class Stale(ProtocolError):
    code = "stale"

    def __init__(self, message: str, *, gone: bool = False, **extra: object) -> None:
        super().__init__(message, **extra)
        self.gone = gone
        if gone:
            self.extra["gone"] = True


class UnknownCell(ProtocolError):
    code = "unknown_cell"


class Forbidden(ProtocolError):
    code = "forbidden"


class TooLarge(ProtocolError):
    code = "too_large"


class RateLimited(ProtocolError):
    code = "rate_limited"


class KernelError(ProtocolError):
    code = "kernel_error"


class Internal(ProtocolError):
    code = "internal"

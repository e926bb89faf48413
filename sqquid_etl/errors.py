"""One exception hierarchy. Every message names the field, record or endpoint it is about."""


class SqquidError(Exception):
    """Base class of every error sqquid-etl raises on purpose."""

    exit_code = 1


class ConfigError(SqquidError):
    """Bad options, credentials missing, a stream definition that does not validate."""

    exit_code = 2


class AuthError(SqquidError):
    """Login refused or a token that cannot be renewed."""

    exit_code = 3


class ApiError(SqquidError):
    """The API answered with an error, or kept failing after every retry."""

    exit_code = 4

    def __init__(self, message: str, *, status: int | None = None, endpoint: str | None = None):
        super().__init__(message)
        self.status = status
        self.endpoint = endpoint


class SchemaError(SqquidError):
    """A record from the API does not fit its stream's schema."""

    exit_code = 5


class InputError(SqquidError):
    """Input given to a reverse load does not validate; nothing was sent."""

    exit_code = 6


class StateError(SqquidError):
    """Stored state is corrupt or held by another run."""

    exit_code = 7


def unexpected(exc: BaseException) -> str:
    """The message of an error no part of the tool raised on purpose: an OSError is the
    machine's (a full disk, a file that vanished), said with its file; anything else is a bug,
    said as one."""
    if isinstance(exc, OSError):
        where = f" ({exc.filename})" if exc.filename else ""
        return f"{exc.strerror or exc}{where}"
    return f"unexpected {type(exc).__name__}: {exc} (a bug of sqquid-etl: please report it; -vv shows where)"

"""Small named exceptions with actionable messages. Nothing returns an empty result to hide a failure."""


class TechnicError(Exception):
    """Base class for every error this package raises on purpose."""


class ConfigError(TechnicError, ValueError):
    """A configuration or environment value is invalid; the message names the variable and the fix."""


class DataSourceError(TechnicError):
    """A market-data source failed in a way retrying will not fix."""


class APIError(DataSourceError):
    """The HTTP API answered with an error. The request path is in the message, never the API key."""

    def __init__(self, message: str, *, status: int | None = None, path: str | None = None):
        super().__init__(message)
        self.status = status
        self.path = path


class AuthError(APIError):
    """401/403: the key is unknown or the plan does not cover the endpoint. Never retried."""


class BadResponse(APIError):
    """The body could not be parsed or had an unexpected shape after all retries."""


class RetryExhausted(APIError):
    """429/5xx/timeouts/`results: null` persisted past the retry budget."""


class StoreLockTimeout(TechnicError, TimeoutError):
    """Another scan holds the bar-store lock for longer than the configured timeout."""


class DeadlineExceeded(RetryExhausted):
    """A request got no usable answer within its total deadline (TECHNIC_REQUEST_DEADLINE), retries included."""


class StoreCorruption(TechnicError):
    """A stored file failed its check (checksum, row count) and could not be repaired from its source; the message
    names the file and the fix."""


class StoreWriteError(TechnicError, OSError):
    """Writing a file failed (disk full, permissions, ...); the message names the path and, for a full disk, the
    space needed and free. `errno` is the OS error's."""

    def __str__(self) -> str:  # the message, not OSError's "[Errno N] strerror: filename"
        return str(self.args[0]) if self.args else super().__str__()

    def __reduce__(self):  # pickled across processes (Ray, the warm scanner) with its message and errno
        return _rebuild_write_error, (str(self), self.errno, self.filename)


def _rebuild_write_error(message: str, errno: int | None, filename: str | None) -> StoreWriteError:
    err = StoreWriteError(message)
    err.errno, err.filename = errno, filename
    return err

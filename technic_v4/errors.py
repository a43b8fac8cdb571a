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

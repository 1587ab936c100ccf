"""The service's own exception types: it shares no code with the harness that tests it."""


class ServiceError(Exception):
    """Base of the errors the service raises on purpose."""


class ConfigurationError(ServiceError, ValueError):
    """The service was started with something that cannot work; the message says what to change."""


class ServiceUnavailable(ServiceError):
    """PostgreSQL or Redis could not be reached; the message names the address (password masked)."""

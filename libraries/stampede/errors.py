"""Exception types of the engine.

``StampedeError`` is the base; ``ConfigurationError`` means the caller asked for
something that cannot work (bad input: say what to fix), ``ServiceUnavailable``
means a service could not be reached or started (say what was tried).
"""


class StampedeError(Exception):
    """Base of every error the engine raises on purpose."""

    ROBOT_SUPPRESS_NAME = True


class ConfigurationError(StampedeError, ValueError):
    """The caller's input cannot work; the message says what to change."""


class ServiceUnavailable(StampedeError):
    """A service could not be reached or started; the message names what was tried."""

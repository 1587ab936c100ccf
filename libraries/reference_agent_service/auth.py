"""JWTs of the reference agent service: HS256, one secret per service start, user id in ``sub``.

The secret is chosen by whoever starts the service and reaches it through the
environment (:data:`SECRET_ENV`), never argv, so it shows up neither in ``ps``
nor in a log. Whoever holds it issues the tokens; the service only verifies them.
"""

from __future__ import annotations

from dataclasses import dataclass

import jwt

from .errors import ConfigurationError

SECRET_ENV = "AGENT_SERVICE_JWT_SECRET"
ISSUER = "stampede-agent-service"
ALGORITHM = "HS256"
MIN_SECRET_LENGTH = 32  # RFC 7518 asks for a key at least as long as the hash (256 bits)
MAX_USER_ID_LENGTH = 200


class TokenError(Exception):
    """A token the service refuses; ``reason`` is short and safe to send to the client."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Identity:
    """Who a verified token speaks for."""

    user_id: str


def check_secret(secret: str | None) -> str:
    """Return ``secret`` if it is long enough to sign with, else raise ConfigurationError."""
    if not secret or len(secret) < MIN_SECRET_LENGTH:
        raise ConfigurationError(
            f"The JWT secret must be at least {MIN_SECRET_LENGTH} characters: set "
            f"{SECRET_ENV} to a random string (python -c 'import secrets; print(secrets.token_urlsafe(32))')."
        )
    return secret


def check_user_id(user_id: str) -> str:
    """Return ``user_id`` if a token may carry it: 1 to 200 characters, not blank."""
    if not isinstance(user_id, str) or not user_id.strip() or len(user_id) > MAX_USER_ID_LENGTH:
        raise ConfigurationError(f"A user id must be 1 to {MAX_USER_ID_LENGTH} characters, got {user_id!r}")
    return user_id


def verify_token(secret: str, token: str) -> Identity:
    """Return who ``token`` speaks for, or raise TokenError saying why it is refused."""
    try:
        claims = jwt.decode(
            token, secret, algorithms=[ALGORITHM], issuer=ISSUER, options={"require": ["sub", "iss", "iat", "exp"]}
        )
    except jwt.ExpiredSignatureError:
        raise TokenError("the token has expired") from None
    except jwt.InvalidSignatureError:
        raise TokenError("the token's signature does not match this service's secret") from None
    except jwt.MissingRequiredClaimError as error:
        raise TokenError(f"the token has no {error.claim!r} claim") from None
    except jwt.InvalidIssuerError:
        raise TokenError(f"the token was not issued by {ISSUER}") from None
    except jwt.InvalidAlgorithmError:
        raise TokenError(f"the token is not signed with {ALGORITHM}") from None
    except jwt.InvalidTokenError:
        raise TokenError("the token is not a well-formed JWT") from None
    user_id = claims["sub"]
    try:
        check_user_id(user_id)
    except ConfigurationError:
        raise TokenError(f"the token's subject must be a user id of 1 to {MAX_USER_ID_LENGTH} characters") from None
    return Identity(user_id=user_id)

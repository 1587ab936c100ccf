"""The JWTs Stampede signs for an agent service's users: HS256, user id in ``sub``.

For the bundled reference service the secret is new at every start; for a
user's own service it is the secret that service verifies with, from
:data:`SECRET_ENV` or ``${AGENT_SERVICE_JWT_SECRET}``.
"""

from __future__ import annotations

import secrets
import time
from datetime import timedelta

import jwt

from ..errors import ConfigurationError

SECRET_ENV = "STAMPEDE_AGENT_JWT_SECRET"
ISSUER = "stampede-agent-service"
"""The ``iss`` claim; the reference service requires it, and most services ignore a claim they do not check."""
ALGORITHM = "HS256"
MIN_SECRET_LENGTH = 32  # RFC 7518 asks for a key at least as long as the hash (256 bits)
MAX_USER_ID_LENGTH = 200


def new_secret() -> str:
    """A fresh random signing secret (43 URL-safe characters)."""
    return secrets.token_urlsafe(32)


def check_secret(secret: str | None) -> str:
    """Return ``secret`` if it is long enough to sign with, else raise ConfigurationError saying how to make one."""
    if not secret or len(secret) < MIN_SECRET_LENGTH:
        raise ConfigurationError(
            f"The JWT secret must be at least {MIN_SECRET_LENGTH} characters: set "
            f"{SECRET_ENV} to a random string (python -c 'import secrets; print(secrets.token_urlsafe(32))')."
        )
    return secret


def issue_token(secret: str, user_id: str, *, ttl: timedelta = timedelta(hours=1), now: float | None = None) -> str:
    """Return an HS256 JWT for ``user_id`` valid for ``ttl`` (a negative ``ttl`` makes an expired one)."""
    if not isinstance(user_id, str) or not user_id.strip() or len(user_id) > MAX_USER_ID_LENGTH:
        raise ConfigurationError(f"A user id must be 1 to {MAX_USER_ID_LENGTH} characters, got {user_id!r}")
    issued = int(time.time() if now is None else now)
    claims = {"sub": user_id, "iss": ISSUER, "iat": issued, "exp": issued + int(ttl.total_seconds())}
    return jwt.encode(claims, check_secret(secret), algorithm=ALGORITHM)

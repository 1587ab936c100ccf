"""The JWTs Stampede signs for an agent service's users, and what goes in them (:class:`TokenSpec`).

For the bundled reference service the secret is new at every start; for a
user's own service it is the secret that service verifies with, from
:data:`SECRET_ENV` or ``${AGENT_SERVICE_JWT_SECRET}``. The claims are
configuration (a WebSocket protocol's ``"token"`` object); the defaults are
what the reference service checks: the user id in ``sub``, issuer
``stampede-agent-service``, HS256, valid for 1 h.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from datetime import timedelta
from types import MappingProxyType
from typing import Any, Self

import jwt

from ..errors import ConfigurationError
from ..units import parse_positive_duration

SECRET_ENV = "STAMPEDE_AGENT_JWT_SECRET"
ISSUER = "stampede-agent-service"
"""The default ``iss`` claim; the reference service requires it, and most services ignore a claim they do not check."""
ALGORITHMS = ("HS256", "HS384", "HS512")
"""Stampede signs with a shared secret, so HMAC algorithms only."""
MIN_SECRET_LENGTH = 32  # RFC 7518 asks for a key at least as long as the hash (256 bits)
_MIN_SECRET_LENGTHS = {"HS256": MIN_SECRET_LENGTH, "HS384": 48, "HS512": 64}
MAX_USER_ID_LENGTH = 200
_TIMES = ("iat", "exp")


@dataclass(frozen=True)
class TokenSpec:
    """The JWT of one user: its user id under ``subject_claim``, ``iss``/``aud`` when set, ``claims`` besides.

    ``iat`` and ``exp`` (now + ``lifetime`` seconds) are always set.
    """

    subject_claim: str = "sub"
    issuer: str | None = ISSUER
    audience: str | tuple[str, ...] | None = None
    claims: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    algorithm: str = "HS256"
    lifetime: float = 3600.0

    def __post_init__(self) -> None:
        if not isinstance(self.subject_claim, str) or not self.subject_claim.strip():
            raise _bad(f"subject_claim must name the claim that carries the user id, got {self.subject_claim!r}")
        for name in ("issuer", "audience"):
            value = getattr(self, name)
            if isinstance(value, list):
                object.__setattr__(self, name, value := tuple(value))
            items = value if isinstance(value, tuple) else (value,)
            if value is not None and not all(isinstance(item, str) and item for item in items):
                raise _bad(f"{name} must be a string (the audience: or a list of strings) or null, got {value!r}")
        if not isinstance(self.claims, Mapping):
            raise _bad(f"claims must be an object of extra claims, got {self.claims!r}")
        taken = {self.subject_claim: "subject_claim", "iss": "issuer", "aud": "audience"}
        taken.update({name: "lifetime" for name in _TIMES})
        clash = sorted(set(self.claims) & set(taken))
        if clash:
            raise _bad(
                f"claims sets {', '.join(clash)}, which Stampede sets itself: use "
                f"{', '.join(sorted({taken[name] for name in clash}))} instead"
            )
        object.__setattr__(self, "claims", MappingProxyType(dict(self.claims)))
        if self.algorithm not in ALGORITHMS:
            raise _bad(
                f"algorithm must be one of {', '.join(ALGORITHMS)} (Stampede signs with a shared secret), "
                f"got {self.algorithm!r}"
            )
        if isinstance(self.lifetime, bool) or not isinstance(self.lifetime, (int, float)) or self.lifetime <= 0:
            raise _bad(f"lifetime must be longer than 0 s, got {self.lifetime!r}")

    def __reduce__(self) -> tuple[Any, ...]:
        # Its claims are read-only (a mappingproxy, which pickle cannot take): pickled as a dict, made read-only again.
        return (type(self), tuple(dict(value) if isinstance(value, Mapping) else value for value in self._values()))

    def _values(self) -> list[Any]:
        return [getattr(self, spec_field.name) for spec_field in fields(self)]

    @classmethod
    def from_dict(cls, data: Any, *, protocol: str = "WebSocket") -> Self:
        """A spec from a protocol's ``"token"`` object; what it leaves out keeps its default.

        ``protocol`` names the protocol configuration in errors (``WebSocket``, ``HTTP``).
        """
        where = f"{protocol} protocol"
        if not isinstance(data, Mapping):
            raise ConfigurationError(
                f'{where}: token must be an object such as {{"subject_claim": "user_id"}}, got {data!r}'
            )
        known = [spec.name for spec in fields(cls)]
        unknown = sorted(set(data) - set(known))
        if unknown:
            raise _bad(f"unknown key(s) {', '.join(map(repr, unknown))}; known keys are {', '.join(known)}", where)
        values = dict(data)
        if "lifetime" in values:
            values["lifetime"] = parse_positive_duration(values["lifetime"], what=f"{where}: token.lifetime")
        try:
            return cls(**values)
        except ConfigurationError as error:
            raise ConfigurationError(str(error).replace("WebSocket protocol: token.", f"{where}: token.", 1)) from None

    def claims_for(self, user_id: str, *, ttl: float | None = None, now: float | None = None) -> dict[str, Any]:
        """The claims of ``user_id``'s token, valid for ``ttl`` seconds (default ``lifetime``; negative: expired)."""
        if not isinstance(user_id, str) or not user_id.strip() or len(user_id) > MAX_USER_ID_LENGTH:
            raise ConfigurationError(f"A user id must be 1 to {MAX_USER_ID_LENGTH} characters, got {user_id!r}")
        issued = int(time.time() if now is None else now)
        claims = {**self.claims, self.subject_claim: user_id}
        if self.issuer is not None:
            claims["iss"] = self.issuer
        if self.audience is not None:
            claims["aud"] = list(self.audience) if isinstance(self.audience, tuple) else self.audience
        return {**claims, "iat": issued, "exp": issued + int(self.lifetime if ttl is None else ttl)}

    def describe(self) -> str:
        """``user id in sub, iss stampede-agent-service, HS256, valid 1.0 h``: for the tool's log table."""
        parts = [f"user id in {self.subject_claim}"]
        if self.issuer is not None:
            parts.append(f"iss {self.issuer}")
        if self.audience is not None:
            parts.append(f"aud {', '.join(self.audience) if isinstance(self.audience, tuple) else self.audience}")
        parts += [f"{name}={value!r}" for name, value in self.claims.items()]
        return ", ".join([*parts, self.algorithm, f"valid {_lifetime_text(self.lifetime)}"])


DEFAULT_TOKEN = TokenSpec()


def _lifetime_text(seconds: float) -> str:
    """``1 h``, ``15 min``, ``90 s``: a lifetime as a user would write it."""
    for unit, size in (("h", 3600), ("min", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds / size:g} {unit}"
    return f"{seconds:g} s"


def _bad(problem: str, where: str = "WebSocket protocol") -> ConfigurationError:
    return ConfigurationError(f"{where}: token.{problem}")


def new_secret() -> str:
    """A fresh random signing secret (43 URL-safe characters)."""
    return secrets.token_urlsafe(32)


def check_secret(secret: str | None, algorithm: str = "HS256") -> str:
    """Return ``secret`` if it is long enough to sign with, else raise ConfigurationError saying how to make one."""
    least = _MIN_SECRET_LENGTHS.get(algorithm, MIN_SECRET_LENGTH)
    if not secret or len(secret) < least:
        for_what = "" if least == MIN_SECRET_LENGTH else f" for {algorithm}"
        raise ConfigurationError(
            f"The JWT secret must be at least {least} characters{for_what}: set "
            f"{SECRET_ENV} to a random string (python -c 'import secrets; print(secrets.token_urlsafe({least}))')."
        )
    return secret


class TokenIssuer:
    """Each user's JWT as ``spec`` says, signed with the secret ``secret()`` gives at the time (a service's start's).

    Picklable, for a worker process that signs its own users' tokens: it takes
    the secret of that moment with it. Its repr never shows the secret.
    """

    def __init__(
        self, secret: Callable[[], str], spec: TokenSpec = DEFAULT_TOKEN, ttl: timedelta | None = None
    ) -> None:
        self.secret = secret
        self.spec = spec
        self.ttl = ttl

    def __call__(self, user_id: str) -> str:
        return issue_token(self.secret(), user_id, ttl=self.ttl, spec=self.spec)

    def __reduce__(self) -> tuple[Any, ...]:
        return (TokenIssuer, (FixedSecret(self.secret()), self.spec, self.ttl))

    def __repr__(self) -> str:
        return f"<TokenIssuer {self.spec.describe()}>"


class FixedSecret:
    """A secret known now, picklable, never shown."""

    def __init__(self, secret: str) -> None:
        self._secret = secret

    def __call__(self) -> str:
        return self._secret

    def __repr__(self) -> str:
        return "<secret>"


def issue_token(
    secret: str,
    user_id: str,
    *,
    ttl: timedelta | None = None,
    spec: TokenSpec = DEFAULT_TOKEN,
    now: float | None = None,
) -> str:
    """Return a JWT for ``user_id`` as ``spec`` says, valid for ``ttl`` (default: the spec's lifetime)."""
    seconds = None if ttl is None else ttl.total_seconds()
    claims = spec.claims_for(user_id, ttl=seconds, now=now)
    return jwt.encode(claims, check_secret(secret, spec.algorithm), algorithm=spec.algorithm)

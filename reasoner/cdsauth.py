"""CDS Hooks 2.0 authentication: the EHR (the CDS client) signs a JWT the service verifies.

The client sends ``Authorization: Bearer <JWT>``. The service accepts it only when:

- the header's ``alg`` is RS384 or ES384 (the algorithms the specification names) and, if it names
  a ``jku``, that is exactly the JWKS URL configured for the issuer (a ``jku`` is never fetched
  because a token names it);
- ``iss`` is one of the configured trusted issuers, and the signature verifies with a key of that
  issuer's JWKS, read from a configured file (or fetched from the issuer's configured URL, the
  allow-list: no other URL is ever fetched);
- ``aud`` is the URL of the service being called (the configured public base URL + the path);
- ``exp`` and ``iat`` are present, ``iat`` is not in the future, the token has not expired and
  lived at most :data:`MAX_LIFETIME` seconds (the specification: 5 minutes at most);
- ``jti`` is present and not seen before while the token could still be valid (replay check).

PyJWT (with ``cryptography``) does the cryptography and the standard claims.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jwt
from jwt import PyJWK, PyJWKClient, PyJWKSet

from reasoner.errors import InputError

ALGORITHMS = ("RS384", "ES384")
MAX_LIFETIME = 300
LEEWAY = 30  # seconds of clock skew tolerated


class AuthError(Exception):
    """A request whose JWT is refused (answered with 401 and this message)."""


@dataclass
class Issuer:
    """A trusted issuer and where its public keys come from (a JWKS file or its allow-listed URL)."""

    iss: str
    jwks_file: Path | None = None
    jwks_url: str | None = None
    _keys: PyJWKSet | None = None
    _client: PyJWKClient | None = None

    def key(self, kid: str | None) -> PyJWK:
        if self.jwks_url is not None:
            if self._client is None:
                self._client = PyJWKClient(self.jwks_url, cache_keys=True, lifespan=600, timeout=10)
            keys = self._client.get_signing_keys()
        else:
            if self._keys is None:
                assert self.jwks_file is not None
                self._keys = read_jwks(self.jwks_file)
            keys = self._keys.keys
        matching = [k for k in keys if kid is None or k.key_id == kid]
        if kid is None and len(matching) != 1:
            raise AuthError("the token names no key (kid) and the issuer has several")
        if not matching:
            raise AuthError("the token's key (kid) is not among the issuer's keys")
        return matching[0]


def read_jwks(path: Path) -> PyJWKSet:
    try:
        return PyJWKSet.from_dict(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError, jwt.PyJWTError) as exc:
        raise InputError(f"{path}: not a readable JWKS: {' '.join(str(exc).split())[:200]}") from None


def parse_issuer(spec: str) -> Issuer:
    """``ISSUER=JWKS`` from the command line: JWKS is a file, or an https URL (then the allow-listed one)."""
    iss, sep, source = spec.partition("=")
    if not sep or not iss or not source:
        raise InputError(f"--trusted-issuer {spec[:80]!r}: give ISSUER=JWKS-FILE or ISSUER=https://…/jwks.json")
    if source.startswith("https://"):
        return Issuer(iss, jwks_url=source)
    if source.startswith("http://"):
        raise InputError(f"--trusted-issuer {iss}: a JWKS URL must be https")
    issuer = Issuer(iss, jwks_file=Path(source))
    issuer._keys = read_jwks(issuer.jwks_file)  # type: ignore[arg-type]  # read now: a bad file stops the start
    return issuer


@dataclass
class JwtVerifier:
    """Verifies the CDS client's JWT for a request to ``base_url + path``."""

    issuers: dict[str, Issuer]
    base_url: str
    _seen: dict[str, float] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def verify(self, authorization: str | None, path: str) -> dict[str, Any]:
        scheme, _, token = (authorization or "").partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise AuthError("a JWT signed by a trusted CDS client is required (Authorization: Bearer …)")
        try:
            header = jwt.get_unverified_header(token)
            claims = jwt.decode(token, options={"verify_signature": False})
        except jwt.PyJWTError as exc:
            raise AuthError(f"the token is not a JWT: {exc}") from None
        if header.get("alg") not in ALGORITHMS:
            raise AuthError(f"the token's algorithm must be one of {', '.join(ALGORITHMS)}")
        issuer = self.issuers.get(claims.get("iss")) if isinstance(claims.get("iss"), str) else None
        if issuer is None:
            raise AuthError("the token's issuer (iss) is not a trusted CDS client")
        if "jku" in header and header["jku"] != issuer.jwks_url:
            raise AuthError("the token's jku is not the JWKS URL configured for its issuer")
        audience = self.base_url.rstrip("/") + path
        try:
            key = issuer.key(header.get("kid") if isinstance(header.get("kid"), str) else None)
            verified = jwt.decode(token, key, algorithms=[header["alg"]], audience=audience, issuer=issuer.iss,
                                  leeway=LEEWAY, options={"require": ["iss", "aud", "exp", "iat", "jti"]})
        except jwt.PyJWTError as exc:
            raise AuthError(f"the token is refused: {exc}") from None
        now = time.time()
        if not isinstance(verified["jti"], str) or not verified["jti"]:
            raise AuthError("the token's jti is not a string")
        if verified["exp"] - verified["iat"] > MAX_LIFETIME:
            raise AuthError(f"the token lives more than {MAX_LIFETIME} s (exp - iat)")
        with self._lock:
            for jti in [j for j, expiry in self._seen.items() if expiry + LEEWAY < now]:
                del self._seen[jti]
            key_id = f"{issuer.iss}\x00{verified['jti']}"
            if key_id in self._seen:
                raise AuthError("the token was already used (jti replay)")
            self._seen[key_id] = float(verified["exp"])
        return verified

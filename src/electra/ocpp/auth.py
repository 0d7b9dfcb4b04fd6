"""Charger passwords for OCPP security profiles 1 and 2 (HTTP Basic auth on the websocket handshake).

Only a slow hash is stored: scrypt (RFC 7914) with a random salt, in the form
``scrypt$N$r$p$salt_hex$hash_hex``. Passwords are generated here, 24 random bytes, shown once.

A reconnect storm (every charger of a site after a power cut) would cost one scrypt per charger;
after a successful check the central system remembers a fast keyed digest of (stored hash, password)
for the life of the process, so the same charger reconnecting costs one indexed read, a wrong
password still costs a full scrypt, and a rotation (a new stored hash) invalidates the memory.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from electra.domain.station import check_charger_id
from electra.errors import InvalidInput
from electra.store.models import ChargerCredential

SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1
# OCPP 1.6 security whitepaper / 2.0.1 BasicAuthPassword: 16 to 40 characters.
MIN_PASSWORD, MAX_PASSWORD = 16, 40


def hash_password(password: str, salt: bytes | None = None) -> str:
    salt = salt if salt is not None else secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P, dklen=32)
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${salt.hex()}${digest.hex()}"


def check_password(password: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt_hex, hash_hex = stored.split("$")
        if scheme != "scrypt":
            return False
        digest = hashlib.scrypt(password.encode(), salt=bytes.fromhex(salt_hex), n=int(n), r=int(r), p=int(p), dklen=32)
    except ValueError:
        return False
    return hmac.compare_digest(digest.hex(), hash_hex)


def parse_basic_auth(header: str | None) -> tuple[str, str] | None:
    """``Basic base64(user:password)`` to (user, password), or None when absent or malformed."""
    if not header or not header.startswith("Basic "):
        return None
    try:
        raw = base64.b64decode(header[6:].strip(), validate=True).decode()
    except (ValueError, UnicodeDecodeError):
        return None
    user, sep, password = raw.partition(":")
    return (user, password) if sep else None


def basic_auth_header(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


class CredentialStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._key = secrets.token_bytes(32)
        self._verified: dict[str, bytes] = {}

    def rotate(self, charger_id: str, password: str | None = None) -> str:
        """Sets a new password for the charger and returns it (the only time it is visible)."""
        check_charger_id(charger_id)
        if password is None:
            password = secrets.token_urlsafe(24)
        if not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
            raise InvalidInput(
                f"a charger password has {MIN_PASSWORD} to {MAX_PASSWORD} characters, not {len(password)}",
                "leave it out to have one generated",
            )
        row = ChargerCredential(
            charger_id=charger_id, password_hash=hash_password(password), rotated_at_ms=int(time.time() * 1000)
        )
        with Session(self.engine) as s, s.begin():
            s.merge(row)
        self._verified.pop(charger_id, None)
        return password

    def has_password(self, charger_id: str) -> bool:
        return self._stored(charger_id) is not None

    def verify(self, charger_id: str, password: str) -> bool:
        stored = self._stored(charger_id)
        if stored is None:
            return False
        fast = hmac.new(self._key, f"{charger_id}\0{stored}\0{password}".encode(), hashlib.sha256).digest()
        known = self._verified.get(charger_id)
        if known is not None and hmac.compare_digest(known, fast):
            return True  # the same password against the same stored hash: checked before
        if not check_password(password, stored):
            return False
        self._verified[charger_id] = fast
        return True

    def forget(self, charger_id: str) -> None:
        self._verified.pop(charger_id, None)

    def _stored(self, charger_id: str) -> str | None:
        with Session(self.engine) as s:
            return s.scalar(select(ChargerCredential.password_hash).where(ChargerCredential.charger_id == charger_id))

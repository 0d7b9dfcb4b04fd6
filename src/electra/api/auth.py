"""Who is calling: SIWE nonces and sessions, API keys, and the roles of a signed-in address.

    Principal
    ├── anonymous        no credentials
    ├── address          a bearer token from POST /api/v1/auth/siwe: a driver of the vehicles it
    │                    owns (VehicleLedger), a host of the chargers it holds (StationRegistry)
    └── api-key          ``elk_<id>_<secret>``: role operator or admin (``electra api-key``)

Secrets are random 256-bit values, stored as their SHA-256 only, and compared in constant time.
A signed-in address's roles are read from the chain; lists (its vehicles, its chargers) are cached
for a few seconds, checks of one vehicle or one charger are asked of the chain each time.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from electra.chain.bindings import Electra
from electra.errors import ContractReverted, InvalidInput
from electra.store.models import ApiKeyRecord, AuthNonceRecord, AuthSessionRecord

ROLES = ("operator", "admin")
TOKEN_PREFIX = "elt_"
KEY_PREFIX = "elk_"
NONCE_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
NONCE_LENGTH = 24  # 142 bits
NONCE_TTL_S = 300
SESSION_TTL_S = 12 * 3600


def sha256_hex(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _now_ms(clock: Callable[[], float]) -> int:
    return int(clock() * 1000)


@dataclass(frozen=True)
class Principal:
    kind: str  # anonymous | address | api-key
    address: str | None = None
    role: str | None = None  # operator | admin, for API keys
    key_id: str | None = None
    token_hash: str | None = None

    @property
    def staff(self) -> bool:
        return self.kind == "api-key" and self.role in ROLES

    @property
    def admin(self) -> bool:
        return self.kind == "api-key" and self.role == "admin"

    @property
    def rate_key(self) -> tuple[str, str] | None:
        """The bucket this principal draws from (None: anonymous, drawn per IP)."""
        if self.kind == "api-key" and self.key_id:
            return ("key", self.key_id)
        if self.kind == "address" and self.address:
            return ("address", self.address)
        return None

    def describe(self) -> dict[str, Any]:
        """What a log line says of the caller: never a secret."""
        return {"principal": self.kind, "address": self.address, "key_id": self.key_id, "role": self.role}


ANONYMOUS = Principal("anonymous")


class CredentialRejected(InvalidInput):
    """A bearer token or API key that is unknown, expired or revoked."""

    code = "credentials-invalid"


# ---------------------------------------------------------------- nonces


class NonceBook:
    def __init__(self, engine: Engine, clock: Callable[[], float] = time.time, ttl_s: int = NONCE_TTL_S) -> None:
        self.engine = engine
        self.clock = clock
        self.ttl_s = ttl_s

    def issue(self) -> tuple[str, int]:
        """A fresh nonce and when it expires (ms). Expired nonces are swept as new ones are made."""
        nonce = "".join(secrets.choice(NONCE_CHARS) for _ in range(NONCE_LENGTH))
        now = _now_ms(self.clock)
        expires = now + self.ttl_s * 1000
        with Session(self.engine) as s, s.begin():
            s.execute(delete(AuthNonceRecord).where(AuthNonceRecord.expires_at_ms < now - 3_600_000))
            s.add(AuthNonceRecord(nonce=nonce, issued_at_ms=now, expires_at_ms=expires))
        return nonce, expires

    def consume(self, nonce: str) -> bool:
        """Marks the nonce used; False if it is unknown, used or expired. Atomic: of two requests
        with the same nonce, one wins."""
        now = _now_ms(self.clock)
        with Session(self.engine) as s, s.begin():
            done = s.execute(
                update(AuthNonceRecord)
                .where(
                    AuthNonceRecord.nonce == nonce,
                    AuthNonceRecord.used_at_ms.is_(None),
                    AuthNonceRecord.expires_at_ms > now,
                )
                .values(used_at_ms=now)
            )
            return bool(done.rowcount == 1)  # type: ignore[attr-defined]


# ---------------------------------------------------------------- signed-in sessions


@dataclass(frozen=True)
class SignedIn:
    token: str  # shown once, to the caller
    address: str
    expires_at_ms: int
    wallet: str


class SessionBook:
    def __init__(self, engine: Engine, clock: Callable[[], float] = time.time, ttl_s: int = SESSION_TTL_S) -> None:
        self.engine = engine
        self.clock = clock
        self.ttl_s = ttl_s

    def open(self, address: str, chain_id: int, wallet: str, nonce: str, until_ms: int | None = None) -> SignedIn:
        now = _now_ms(self.clock)
        expires = now + self.ttl_s * 1000
        if until_ms is not None:
            expires = min(expires, until_ms)  # never beyond the message's own expiration time
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        row = AuthSessionRecord(
            token_hash=sha256_hex(token),
            address=address,
            chain_id=chain_id,
            wallet=wallet,
            nonce=nonce,
            created_at_ms=now,
            expires_at_ms=expires,
        )
        try:
            with Session(self.engine) as s, s.begin():
                s.add(row)
        except IntegrityError as exc:
            raise InvalidInput("this nonce already opened a session", "ask for a new nonce") from exc
        return SignedIn(token, address, expires, wallet)

    def principal(self, token: str) -> Principal:
        token_hash = sha256_hex(token)
        now = _now_ms(self.clock)
        with Session(self.engine) as s:
            row = s.get(AuthSessionRecord, token_hash)
        if row is None or row.revoked_at_ms is not None or row.expires_at_ms <= now:
            raise CredentialRejected("the bearer token is unknown, expired or logged out", "sign in again")
        return Principal("address", address=row.address, token_hash=token_hash)

    def close(self, token_hash: str) -> bool:
        now = _now_ms(self.clock)
        with Session(self.engine) as s, s.begin():
            done = s.execute(
                update(AuthSessionRecord)
                .where(AuthSessionRecord.token_hash == token_hash, AuthSessionRecord.revoked_at_ms.is_(None))
                .values(revoked_at_ms=now)
            )
            return bool(done.rowcount == 1)  # type: ignore[attr-defined]


# ---------------------------------------------------------------- API keys


@dataclass(frozen=True)
class ApiKey:
    key_id: str
    name: str
    role: str
    created_at_ms: int
    expires_at_ms: int | None
    revoked_at_ms: int | None
    last_used_at_ms: int | None
    replaced_by: str | None

    @classmethod
    def of(cls, r: ApiKeyRecord) -> ApiKey:
        return cls(
            r.key_id,
            r.name,
            r.role,
            r.created_at_ms,
            r.expires_at_ms,
            r.revoked_at_ms,
            r.last_used_at_ms,
            r.replaced_by,
        )

    def active(self, now_ms: int) -> bool:
        return self.revoked_at_ms is None and (self.expires_at_ms is None or self.expires_at_ms > now_ms)

    def to_json(self, now_ms: int) -> dict[str, Any]:
        return {**self.__dict__, "active": self.active(now_ms)}


@dataclass(frozen=True)
class IssuedKey:
    key: ApiKey
    secret: str  # the whole ``elk_...`` string: shown once


def _check_role(role: str) -> str:
    if role not in ROLES:
        raise InvalidInput(f"role {role!r}", f"API keys are for {' or '.join(ROLES)}")
    return role


class ApiKeyBook:
    # last_used_at is written at most this often per key, so a busy integration does not make a
    # write of every request
    TOUCH_EVERY_MS = 60_000

    def __init__(self, engine: Engine, clock: Callable[[], float] = time.time) -> None:
        self.engine = engine
        self.clock = clock

    def create(self, name: str, role: str) -> IssuedKey:
        if not 1 <= len(name.strip()) <= 128:
            raise InvalidInput("an API key needs a name of 1 to 128 characters", "say who or what uses it")
        _check_role(role)
        key_id = secrets.token_hex(8)
        secret = secrets.token_urlsafe(32)
        now = _now_ms(self.clock)
        row = ApiKeyRecord(
            key_id=key_id,
            name=name.strip(),
            role=role,
            secret_hash=sha256_hex(secret),
            created_at_ms=now,
        )
        with Session(self.engine, expire_on_commit=False) as s, s.begin():
            s.add(row)
        return IssuedKey(ApiKey.of(row), f"{KEY_PREFIX}{key_id}_{secret}")

    def list(self, include_inactive: bool = False) -> list[ApiKey]:
        now = _now_ms(self.clock)
        with Session(self.engine) as s:
            keys = [ApiKey.of(r) for r in s.scalars(select(ApiKeyRecord).order_by(ApiKeyRecord.created_at_ms))]
        return keys if include_inactive else [k for k in keys if k.active(now)]

    def get(self, key_id: str) -> ApiKey:
        with Session(self.engine) as s:
            row = s.get(ApiKeyRecord, key_id)
            if row is None:
                raise InvalidInput(f"no API key {key_id}", "list them with `electra api-key list`")
            return ApiKey.of(row)

    def revoke(self, key_id: str) -> ApiKey:
        self.get(key_id)
        now = _now_ms(self.clock)
        with Session(self.engine) as s, s.begin():
            s.execute(
                update(ApiKeyRecord)
                .where(ApiKeyRecord.key_id == key_id, ApiKeyRecord.revoked_at_ms.is_(None))
                .values(revoked_at_ms=now)
            )
        return self.get(key_id)

    def rotate(self, key_id: str, grace_s: int = 0) -> IssuedKey:
        """A new key with the same name and role; the old one works ``grace_s`` more seconds."""
        old = self.get(key_id)
        now = _now_ms(self.clock)
        if not old.active(now):
            raise InvalidInput(f"API key {key_id} is revoked or expired", "create a new one instead")
        if grace_s < 0:
            raise InvalidInput(f"a grace of {grace_s} s", "give 0 or more seconds")
        new = self.create(old.name, old.role)
        with Session(self.engine) as s, s.begin():
            row = s.get(ApiKeyRecord, key_id)
            assert row is not None
            row.replaced_by = new.key.key_id
            if grace_s == 0:
                row.revoked_at_ms = now
            else:
                row.expires_at_ms = now + grace_s * 1000
        return new

    def principal(self, presented: str) -> Principal:
        key_id, secret = _split_key(presented)
        now = _now_ms(self.clock)
        with Session(self.engine) as s:
            row = s.get(ApiKeyRecord, key_id)
        expected = row.secret_hash if row is not None else sha256_hex("absent")
        matches = hmac.compare_digest(sha256_hex(secret), expected)
        if row is None or not matches or not ApiKey.of(row).active(now):
            raise CredentialRejected("the API key is unknown, revoked or expired", "ask an admin for a key")
        if row.last_used_at_ms is None or now - row.last_used_at_ms > self.TOUCH_EVERY_MS:
            with Session(self.engine) as s, s.begin():
                s.execute(update(ApiKeyRecord).where(ApiKeyRecord.key_id == key_id).values(last_used_at_ms=now))
        return Principal("api-key", role=row.role, key_id=key_id)


def _split_key(presented: str) -> tuple[str, str]:
    body = presented.removeprefix(KEY_PREFIX)
    key_id, sep, secret = body.partition("_")
    if not presented.startswith(KEY_PREFIX) or not sep or len(key_id) != 16 or not secret:
        raise CredentialRejected("the API key is malformed", f"API keys look like {KEY_PREFIX}<id>_<secret>")
    return key_id, secret


# ---------------------------------------------------------------- roles of an address


class Roles:
    """A signed-in address's vehicles and chargers, from the chain.

    Lists are cached ``ttl_s`` (a charger sold a moment ago may still be listed that long);
    :meth:`owns_vehicle` and :meth:`holds_charger` ask the chain each time."""

    def __init__(
        self, electra: Callable[[], Electra | None], ttl_s: float = 10.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._electra = electra
        self.ttl_s = ttl_s
        self.clock = clock
        self._lock = threading.Lock()
        self._vehicles: dict[str, tuple[float, Any]] = {}
        self._chargers: dict[str, tuple[float, Any]] = {}
        self._charger_ids: dict[int, str] = {}  # token id -> charger id, fixed at registration

    def _chain(self) -> Electra:
        from electra.errors import DeploymentMissing

        e = self._electra()
        if e is None:
            raise DeploymentMissing("no Electra deployment is known", "deploy first; roles are read from the chain")
        return e

    def _cached(self, table: dict[str, tuple[float, Any]], address: str, load: Callable[[], Any]) -> Any:
        now = self.clock()
        with self._lock:
            hit = table.get(address)
        if hit is not None and now - hit[0] < self.ttl_s:
            return hit[1]
        value = load()
        with self._lock:
            table[address] = (now, value)
        return value

    def vehicles_of(self, address: str) -> frozenset[int]:
        """The vehicle ids the address owns (VehicleLedger owners never change hands)."""

        def load() -> frozenset[int]:
            e = self._chain()
            return frozenset(e.vehicles.owned_by(address, e.deployment.block_number))

        return frozenset(self._cached(self._vehicles, address, load))

    def holdings(self, address: str) -> dict[int, str]:
        """The charger NFTs the address holds now (token id to charger id): every token ever sent
        to it that is still its own."""

        def load() -> dict[int, str]:
            e = self._chain()
            held = e.stations.token_ids_held_by(address, e.deployment.block_number)
            for token_id in held:  # a charger's id never changes: each token is read once per process
                if token_id not in self._charger_ids:
                    self._charger_ids[token_id] = e.stations.station(token_id).charger_id
            return {t: self._charger_ids[t] for t in held}

        return dict(self._cached(self._chargers, address, load))

    def chargers_of(self, address: str) -> frozenset[str]:
        return frozenset(self.holdings(address).values())

    def owns_vehicle(self, address: str, vehicle_id: int) -> bool:
        e = self._chain()
        if not 1 <= vehicle_id <= e.vehicles.total():
            return False
        return e.vehicles.vehicle(vehicle_id).owner == address

    def charger_token(self, charger_id: str) -> int | None:
        """The charger's NFT id, or None if no such charger is registered."""
        e = self._chain()
        try:
            token_id = e.stations.token_id_of(charger_id)
        except ContractReverted:
            return None
        return token_id or None

    def charger_holder(self, charger_id: str) -> str | None:
        e = self._chain()
        token_id = self.charger_token(charger_id)
        if token_id is None:
            return None
        return str(e.client.call(e.stations.contract.functions.ownerOf(token_id)))

    def holds_charger(self, address: str, charger_id: str) -> bool:
        return self.charger_holder(charger_id) == address

    def forget(self, address: str) -> None:
        with self._lock:
            self._vehicles.pop(address, None)
            self._chargers.pop(address, None)

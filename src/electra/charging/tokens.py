"""Id tokens (OCPP 1.6 idTag, 2.0.1 idToken): which vehicle or driver a charger is talking about.

A vehicle's token maps to its VehicleLedger id; a driver's token (an RFID card, an app token) maps
to the driver's wallet address. Unknown tokens are Invalid; blocked ones are Blocked.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from sqlalchemy import Engine, bindparam, select
from sqlalchemy.orm import Session

from electra.errors import InvalidInput
from electra.store.models import IdTokenRecord
from electra.store.prepared import Prepared

TOKENS = IdTokenRecord.__table__
TOKEN_LOOKUP = Prepared(
    "token lookup",
    lambda d: select(TOKENS.c.status, TOKENS.c.kind, TOKENS.c.vehicle_id, TOKENS.c.owner).where(
        TOKENS.c.id_token == bindparam("token")
    ),
)

ACCEPTED, BLOCKED, INVALID = "Accepted", "Blocked", "Invalid"
MAX_TOKEN = 36  # OCPP 2.0.1 IdTokenType.idToken; 1.6 idTag is at most 20
TOKEN_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.:*")


@dataclass(frozen=True)
class TokenInfo:
    id_token: str
    status: str  # Accepted | Blocked | Invalid
    kind: str | None = None
    vehicle_id: int | None = None
    owner: str | None = None

    @property
    def accepted(self) -> bool:
        return self.status == ACCEPTED


def check_id_token(id_token: str) -> str:
    if not 1 <= len(id_token) <= MAX_TOKEN or not set(id_token) <= TOKEN_CHARS:
        raise InvalidInput(
            f"id token {id_token!r} must be 1-{MAX_TOKEN} characters of A-Z a-z 0-9 - _ . : *",
            "OCPP 1.6 chargers take at most 20",
        )
    return id_token


class TokenRegistry:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def issue(
        self, id_token: str, vehicle_id: int | None = None, owner: str | None = None, *, replace: bool = False
    ) -> TokenInfo:
        check_id_token(id_token)
        if vehicle_id is None and owner is None:
            raise InvalidInput("a token belongs to a vehicle or a driver", "give a vehicle id or an owner address")
        kind = "vehicle" if vehicle_id is not None else "driver"
        row = IdTokenRecord(
            id_token=id_token,
            kind=kind,
            vehicle_id=vehicle_id,
            owner=owner,
            status=ACCEPTED,
            created_at_ms=int(time.time() * 1000),
        )
        with Session(self.engine) as s, s.begin():
            existing = s.get(IdTokenRecord, id_token)
            if existing is not None and not replace:
                same = (existing.vehicle_id, existing.owner) == (vehicle_id, owner)
                if not same:
                    raise InvalidInput(f"id token {id_token} is already issued to someone else", "pick another token")
                return _info(existing)
            s.merge(row)
        return TokenInfo(id_token, ACCEPTED, kind, vehicle_id, owner)

    def set_status(self, id_token: str, status: str) -> TokenInfo:
        if status not in (ACCEPTED, BLOCKED):
            raise InvalidInput(f"token status {status!r}", f"use {ACCEPTED} or {BLOCKED}")
        with Session(self.engine) as s, s.begin():
            row = s.get(IdTokenRecord, id_token)
            if row is None:
                raise InvalidInput(f"id token {id_token} is not known", "issue it first")
            row.status = status
            return _info(row)

    def lookup(self, id_token: str) -> TokenInfo:
        with self.engine.connect() as conn:
            row = TOKEN_LOOKUP.run(conn, {"token": id_token}).first()
        if row is None:
            return TokenInfo(id_token, INVALID)
        return TokenInfo(id_token, str(row[0]), row[1], row[2], row[3])

    def all(self) -> list[TokenInfo]:
        with Session(self.engine) as s:
            return [_info(r) for r in s.scalars(select(IdTokenRecord).order_by(IdTokenRecord.id_token))]


def _info(row: IdTokenRecord) -> TokenInfo:
    return TokenInfo(row.id_token, row.status, row.kind, row.vehicle_id, row.owner)

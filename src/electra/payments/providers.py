"""Fiat top-up providers: a checkout for a vehicle's wallet, then the provider's webhook once paid.

A provider is a tiny interface (:class:`PaymentProvider`): make a checkout intent for a vehicle and
an amount in cents, and turn a webhook (headers + raw body) into a verified :class:`TopUpEvent`.
Two implementations:

    PaymentProvider (protocol)
    ├── SandboxProvider   works locally like a real provider: it signs its webhooks with
    │                     HMAC-SHA256 over ``timestamp.body`` (header ``Electra-Signature:
    │                     t=<unix s>,v1=<hex>``) and refuses a bad signature or a timestamp
    │                     outside five minutes
    └── MemoryProvider    the in-memory twin for unit tests: no keys, no clock; it accepts
                          exactly the webhooks it produced itself

Replays of an event are not a provider matter: the top-up service credits each ``provider_ref``
once, through the store (electra.payments.topup).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

from electra.errors import ConfigError, InvalidInput

SIGNATURE_HEADER = "Electra-Signature"
TOLERANCE_S = 300
CURRENCIES = frozenset({"EUR", "USD"})
MAX_TOPUP_CENTS = 10_000_000  # 100,000.00 per top-up: beyond it, a typo is likelier than a purchase
MAX_WEBHOOK_BYTES = 64 * 1024
MIN_SECRET_BYTES = 16

TopUpStatus = Literal["succeeded", "failed"]


class WebhookRejected(InvalidInput):
    """A webhook that does not verify. ``code`` says why: bad_signature, stale, malformed, unknown_event."""

    def __init__(self, code: str, cause: str, fix: str | None = None) -> None:
        super().__init__(cause, fix)
        self.code = code


@dataclass(frozen=True)
class CheckoutIntent:
    """A payment the driver is asked to make; ``provider_ref`` names it at the provider."""

    provider: str
    provider_ref: str
    vehicle_id: int
    amount_cents: int
    currency: str
    checkout_url: str
    created_at_s: int


@dataclass(frozen=True)
class TopUpEvent:
    """A verified webhook: the provider says the intent ``provider_ref`` was paid (or failed)."""

    provider_ref: str
    vehicle_id: int
    amount_cents: int
    currency: str
    status: TopUpStatus
    event_id: str = ""


@dataclass(frozen=True)
class WebhookRequest:
    """What a provider POSTs: headers and the raw body, exactly as sent (the signature covers bytes)."""

    headers: Mapping[str, str]
    body: bytes


class PaymentProvider(Protocol):
    name: str

    def create_intent(self, vehicle_id: int, amount_cents: int, currency: str) -> CheckoutIntent: ...

    def parse_webhook(self, headers: Mapping[str, str], body: bytes) -> TopUpEvent: ...


def check_topup(vehicle_id: int, amount_cents: int, currency: str) -> str:
    """Validates what a top-up asks for; returns the currency in upper case."""
    if isinstance(vehicle_id, bool) or not isinstance(vehicle_id, int) or vehicle_id < 1:
        raise InvalidInput(f"vehicle id {vehicle_id!r}", "vehicle ids start at 1")
    if isinstance(amount_cents, bool) or not isinstance(amount_cents, int) or not 0 < amount_cents <= MAX_TOPUP_CENTS:
        raise InvalidInput(
            f"top-up amount {amount_cents!r} cents", f"top up between 0.01 and {MAX_TOPUP_CENTS // 100:,} at a time"
        )
    code = str(currency).upper()
    if code not in CURRENCIES:
        raise InvalidInput(f"currency {currency!r} is not supported", f"use one of {', '.join(sorted(CURRENCIES))}")
    return code


def _lower_keys(headers: Mapping[str, str]) -> dict[str, str]:
    return {str(k).lower(): str(v) for k, v in headers.items()}


def _event_from_json(body: bytes) -> TopUpEvent:
    """The sandbox's (and MemoryProvider's) webhook body, checked field by field."""
    if len(body) > MAX_WEBHOOK_BYTES:
        raise WebhookRejected("malformed", f"webhook body of {len(body)} bytes is too large")
    try:
        doc: dict[str, Any] = json.loads(body)
        kind = doc["type"]
        data = doc["data"]
        event_id = doc["id"]
        ref, vehicle_id, cents, currency = data["intent"], data["vehicle_id"], data["amount_cents"], data["currency"]
    except (ValueError, KeyError, TypeError) as exc:
        raise WebhookRejected("malformed", f"webhook body is not a top-up event: {exc}") from exc
    status = {"topup.succeeded": "succeeded", "topup.failed": "failed"}.get(kind)
    if status is None:
        raise WebhookRejected("malformed", f"unknown webhook event type {kind!r}")
    if not (isinstance(ref, str) and 0 < len(ref) <= 128 and isinstance(event_id, str) and 0 < len(event_id) <= 128):
        raise WebhookRejected("malformed", "webhook intent and event ids must be strings of 1 to 128 characters")
    try:
        code = check_topup(vehicle_id, cents, currency)
    except InvalidInput as exc:
        raise WebhookRejected("malformed", f"webhook event: {exc.cause}") from exc
    return TopUpEvent(ref, vehicle_id, cents, code, status, event_id)  # type: ignore[arg-type]


def _event_body(event_id: str, intent: CheckoutIntent, status: TopUpStatus, created_s: int) -> bytes:
    return json.dumps(
        {
            "id": event_id,
            "type": f"topup.{status}",
            "created": created_s,
            "data": {
                "intent": intent.provider_ref,
                "vehicle_id": intent.vehicle_id,
                "amount_cents": intent.amount_cents,
                "currency": intent.currency,
            },
        },
        separators=(",", ":"),
    ).encode()


def sign(secret: bytes, timestamp: int, body: bytes) -> str:
    """The ``Electra-Signature`` header value for ``body`` sent at ``timestamp``."""
    mac = hmac.new(secret, str(timestamp).encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def verify(secret: bytes, header: str | None, body: bytes, now: float, tolerance_s: int = TOLERANCE_S) -> int:
    """Checks an ``Electra-Signature`` header against the raw body; returns its timestamp.

    Several ``v1`` entries may be present (a provider rotating its secret signs with both); one
    matching is enough. The comparison is constant-time.
    """
    if not header:
        raise WebhookRejected("bad_signature", f"no {SIGNATURE_HEADER} header", "the provider must sign its webhooks")
    timestamp: int | None = None
    macs: list[str] = []
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        if key == "t" and value.isdigit() and len(value) <= 12:
            timestamp = int(value)
        elif key == "v1":
            macs.append(value)
    if timestamp is None or not macs:
        raise WebhookRejected("bad_signature", f"malformed {SIGNATURE_HEADER} header", "expected t=<unix s>,v1=<hex>")
    expected = sign(secret, timestamp, body).rpartition("v1=")[2]
    if not any(hmac.compare_digest(expected.encode(), m.encode()) for m in macs):
        raise WebhookRejected("bad_signature", "webhook signature does not match its body", "check the shared secret")
    if abs(now - timestamp) > tolerance_s:
        raise WebhookRejected(
            "stale",
            f"webhook timestamp {timestamp} is {int(now - timestamp)} s away from now (tolerance {tolerance_s} s)",
            "check the clocks; a replayed old webhook is refused",
        )
    return timestamp


def _new_id() -> str:
    return secrets.token_hex(12)


class SandboxProvider:
    """A provider that works locally: checkout intents and HMAC-signed webhooks, like a real one."""

    name = "sandbox"

    def __init__(
        self,
        secret: bytes,
        clock: Callable[[], float] = time.time,
        new_id: Callable[[], str] = _new_id,
        tolerance_s: int = TOLERANCE_S,
    ) -> None:
        if len(secret) < MIN_SECRET_BYTES:
            raise ConfigError(f"a webhook secret of {len(secret)} bytes is too short", "use at least 16 random bytes")
        self._secret = secret
        self._clock = clock
        self._new_id = new_id
        self.tolerance_s = tolerance_s

    def __repr__(self) -> str:
        return f"SandboxProvider(tolerance_s={self.tolerance_s})"  # never the secret

    def create_intent(self, vehicle_id: int, amount_cents: int, currency: str) -> CheckoutIntent:
        code = check_topup(vehicle_id, amount_cents, currency)
        ref = f"sbx_pi_{self._new_id()}"
        return CheckoutIntent(
            self.name, ref, vehicle_id, amount_cents, code, f"sandbox://checkout/{ref}", int(self._clock())
        )

    def complete(self, intent: CheckoutIntent, succeeded: bool = True, at: int | None = None) -> WebhookRequest:
        """The driver paid (or the payment failed): the webhook the provider now posts, signed."""
        timestamp = int(self._clock()) if at is None else at
        body = _event_body(f"sbx_evt_{self._new_id()}", intent, "succeeded" if succeeded else "failed", timestamp)
        headers = {"Content-Type": "application/json", SIGNATURE_HEADER: sign(self._secret, timestamp, body)}
        return WebhookRequest(headers, body)

    def parse_webhook(self, headers: Mapping[str, str], body: bytes) -> TopUpEvent:
        verify(self._secret, _lower_keys(headers).get(SIGNATURE_HEADER.lower()), body, self._clock(), self.tolerance_s)
        return _event_from_json(body)


class MemoryProvider:
    """The in-memory twin: accepts exactly the webhooks it produced, with no keys and no clock."""

    name = "memory"

    def __init__(self) -> None:
        self.intents: dict[str, CheckoutIntent] = {}
        self._issued: set[bytes] = set()
        self._count = 0

    def create_intent(self, vehicle_id: int, amount_cents: int, currency: str) -> CheckoutIntent:
        code = check_topup(vehicle_id, amount_cents, currency)
        self._count += 1
        ref = f"mem_pi_{self._count}"
        intent = CheckoutIntent(self.name, ref, vehicle_id, amount_cents, code, f"memory://checkout/{ref}", 0)
        self.intents[ref] = intent
        return intent

    def complete(self, intent: CheckoutIntent, succeeded: bool = True) -> WebhookRequest:
        self._count += 1
        body = _event_body(f"mem_evt_{self._count}", intent, "succeeded" if succeeded else "failed", 0)
        self._issued.add(body)
        return WebhookRequest({"Content-Type": "application/json"}, body)

    def parse_webhook(self, headers: Mapping[str, str], body: bytes) -> TopUpEvent:
        if body not in self._issued:
            raise WebhookRejected("bad_signature", "this webhook was not issued by the memory provider")
        return _event_from_json(body)


def load_or_create_secret(path: Path) -> bytes:
    """The sandbox's webhook secret, kept in a file only its owner reads (created on first use)."""
    try:
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:
                fd = -1  # another process made it first: use theirs
            if fd >= 0:
                with os.fdopen(fd, "w") as f:
                    f.write(secrets.token_bytes(32).hex() + "\n")
        secret = bytes.fromhex(path.read_text().strip())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read or create the webhook secret {path}: {exc}", "fix or delete the file") from exc
    if len(secret) < MIN_SECRET_BYTES:
        raise ConfigError(f"the webhook secret in {path} is too short", "delete it; a new one is made")
    return secret

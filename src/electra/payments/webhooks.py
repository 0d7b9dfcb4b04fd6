"""The fiat top-up webhook: ``POST /webhooks/{provider}``.

:class:`WebhookReceiver` does the work on (provider, headers, raw body) and answers with a status
code and a JSON body; :func:`webhook_router` puts it behind a FastAPI ``APIRouter`` that any app
can mount. The CLI's sandbox top-up calls the receiver directly: the same path as over HTTP.

Answers, chosen so that a provider (which retries anything but a 2xx) does the right thing:

    200  {"status": "credited" | "duplicate" | "failed", ...}  handled; a repeat is harmless
    400  {"error": "bad_signature" | "stale" | "malformed" | "conflict", "detail": ...}
    404  {"error": "unknown_provider", ...}
    413  {"error": "too_large", ...}
    503  {"error": "unavailable", ...}  verified but not credited yet (chain down): retry later
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import requests
from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from electra.errors import ElectraError, InvalidInput
from electra.payments.providers import MAX_WEBHOOK_BYTES, PaymentProvider, WebhookRejected
from electra.payments.topup import TopUpOutcome, TopUpService


@dataclass(frozen=True)
class WebhookAnswer:
    status_code: int
    body: dict[str, Any]
    outcome: TopUpOutcome | None = field(default=None, compare=False)


def _error(status_code: int, code: str, detail: str, fix: str | None = None) -> WebhookAnswer:
    body: dict[str, Any] = {"error": code, "detail": detail}
    if fix:
        body["fix"] = fix
    return WebhookAnswer(status_code, body)


class WebhookReceiver:
    def __init__(self, providers: Mapping[str, PaymentProvider] | list[PaymentProvider], topups: TopUpService) -> None:
        self.providers = dict(providers) if isinstance(providers, Mapping) else {p.name: p for p in providers}
        self.topups = topups

    def receive(self, provider: str, headers: Mapping[str, str], body: bytes) -> WebhookAnswer:
        p = self.providers.get(provider)
        if p is None:
            return _error(
                404, "unknown_provider", f"no payment provider {provider!r}", f"one of {sorted(self.providers)}"
            )
        if len(body) > MAX_WEBHOOK_BYTES:
            return _error(413, "too_large", f"webhook body of {len(body)} bytes")
        try:
            event = p.parse_webhook(headers, body)
        except WebhookRejected as exc:
            return _error(400, exc.code, exc.cause, exc.fix)
        try:
            outcome = self.topups.handle(p.name, event)
        except InvalidInput as exc:
            return _error(400, "conflict", exc.cause, exc.fix)
        except (ElectraError, requests.RequestException) as exc:
            detail = exc.one_line() if isinstance(exc, ElectraError) else f"chain RPC failed: {exc}"
            return _error(503, "unavailable", detail, "the provider's retry will credit it")
        return WebhookAnswer(200, outcome.to_json(), outcome)


def webhook_router(receiver: WebhookReceiver) -> APIRouter:
    """``POST /webhooks/{provider}``; mount it with ``app.include_router(webhook_router(...))``."""
    router = APIRouter(tags=["payments"])

    @router.post("/webhooks/{provider}", summary="A payment provider's top-up webhook")
    async def receive_webhook(provider: str, request: Request) -> JSONResponse:
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > MAX_WEBHOOK_BYTES:
            a = _error(413, "too_large", f"webhook body of {declared} bytes")
        else:
            body = await request.body()
            # Chain calls block: keep them off the event loop.
            a = await run_in_threadpool(receiver.receive, provider, dict(request.headers), body)
        return JSONResponse(a.body, status_code=a.status_code)

    return router

"""Sign-In with Ethereum: a nonce, a signed EIP-4361 message, a bearer token; and who am I."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from eth_utils.address import to_checksum_address
from fastapi import APIRouter, Body, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response
from web3.exceptions import BadFunctionCallOutput, ContractLogicError

from electra.api import siwe
from electra.api.context import ApiContext, ApiProblem
from electra.api.deps import AddressCaller, Ctx, SignedIn
from electra.api.routes import COMMON
from electra.api.schemas import MePublic, NonceCreate, NoncePublic, SessionTokenPublic, SiweCreate
from electra.chain.bindings import Electra

router = APIRouter(prefix="/api/v1/auth", tags=["auth"], responses=COMMON)

ERC1271_ABI = [
    {
        "name": "isValidSignature",
        "type": "function",
        "stateMutability": "view",
        "inputs": [{"name": "hash", "type": "bytes32"}, {"name": "signature", "type": "bytes"}],
        "outputs": [{"name": "", "type": "bytes4"}],
    }
]
STATUS_OF = {"siwe-malformed": 400}


def _domain(ctx: ApiContext, request: Request) -> str:
    return ctx.siwe_domain or request.headers.get("host") or "localhost"


def _iso_ms(at_ms: int) -> str:
    return dt.datetime.fromtimestamp(at_ms / 1000, dt.UTC).isoformat().replace("+00:00", "Z")


def erc1271_check(e: Electra) -> Any:
    """Asks a contract wallet whether it signed (EIP-1271); an account without code did not. A
    chain that does not answer raises (the caller answers 503), it is not a 'no'."""

    def check(address: str, digest: bytes, signature: bytes) -> bool:
        w3 = e.client.w3
        if not w3.eth.get_code(to_checksum_address(address)):
            return False
        wallet = w3.eth.contract(address=to_checksum_address(address), abi=ERC1271_ABI)
        try:
            answer = wallet.functions.isValidSignature(digest, signature).call()
        except (ContractLogicError, BadFunctionCallOutput):
            return False  # a wallet that reverts, or answers nonsense, did not sign
        return bytes(answer) == siwe.ERC1271_MAGIC

    return check


@router.post("/nonce", summary="A fresh single-use nonce for an EIP-4361 message (valid 5 minutes)")
async def nonce(ctx: Ctx, request: Request, body: Annotated[NonceCreate | None, Body()] = None) -> NoncePublic:
    value, expires_ms = await run_in_threadpool(ctx.nonces.issue)
    domain = _domain(ctx, request)
    uri = f"{request.url.scheme}://{domain}"
    chain_id: int | None
    try:
        e = await run_in_threadpool(ctx.electra)
        chain_id = e.client.chain_id if e is not None else None
    except Exception:  # noqa: BLE001 - a nonce does not need the chain; the message will
        chain_id = None
    issued = dt.datetime.fromtimestamp(ctx.clock(), dt.UTC).replace(microsecond=0)
    message = None
    if body is not None and body.address is not None and chain_id is not None:
        try:
            address = to_checksum_address(body.address)
        except ValueError as exc:
            raise ApiProblem(400, "bad-request", f"{body.address} is not an address") from exc
        message = siwe.SiweMessage(
            domain=domain,
            address=address,
            uri=uri,
            version="1",
            chain_id=chain_id,
            nonce=value,
            issued_at=issued,
            statement=body.statement if body.statement is not None else "Sign in to Electra.",
        ).text()
    return NoncePublic(
        nonce=value,
        issued_at=issued.isoformat().replace("+00:00", "Z"),
        expires_at=_iso_ms(expires_ms),
        domain=domain,
        uri=uri,
        chain_id=chain_id,
        message=message,
    )


@router.post("/siwe", summary="Sign in: an EIP-4361 message and its signature give a bearer token")
def sign_in(ctx: Ctx, request: Request, body: SiweCreate) -> SessionTokenPublic:
    try:
        msg = siwe.parse(body.message)
        signature = siwe.signature_bytes(body.signature)
        e = ctx.chain()
        now = dt.datetime.fromtimestamp(ctx.clock(), dt.UTC)
        siwe.check(msg, siwe.Expected(_domain(ctx, request), e.client.chain_id, now))
        wallet = siwe.verify_signature(body.message, msg.address, signature, erc1271_check(e))
    except siwe.SiweRejected as exc:
        raise ApiProblem(STATUS_OF.get(exc.code, 401), exc.code, exc.cause, exc.fix) from exc
    if not ctx.nonces.consume(msg.nonce):
        raise ApiProblem(401, "siwe-nonce", "the nonce is unknown, used or expired", "ask for a new one")
    until = int(msg.expiration_time.timestamp() * 1000) if msg.expiration_time is not None else None
    opened = ctx.sessions.open(msg.address, msg.chain_id, wallet, msg.nonce, until)
    ctx.roles.forget(msg.address)
    return SessionTokenPublic(
        token=opened.token,
        address=opened.address,
        wallet=wallet,  # type: ignore[arg-type]
        expires_at_ms=opened.expires_at_ms,
        vehicles=sorted(ctx.roles.vehicles_of(msg.address)),
        chargers=sorted(ctx.roles.chargers_of(msg.address)),
    )


@router.post("/logout", status_code=204, summary="Ends this session token", response_class=Response)
def logout(ctx: Ctx, caller: AddressCaller) -> Response:
    assert caller.token_hash is not None
    ctx.sessions.close(caller.token_hash)
    return Response(status_code=204)


@router.get("/me", summary="Who the credentials are, and their roles")
def me(ctx: Ctx, caller: SignedIn) -> MePublic:
    if caller.kind == "api-key":
        return MePublic(principal="api-key", role=caller.role, key_id=caller.key_id, roles=[str(caller.role)])
    assert caller.address is not None
    vehicles = sorted(ctx.roles.vehicles_of(caller.address))
    chargers = sorted(ctx.roles.chargers_of(caller.address))
    roles = [r for r, has in (("driver", vehicles), ("host", chargers)) if has]
    return MePublic(principal="address", address=caller.address, roles=roles, vehicles=vehicles, chargers=chargers)

"""The web app's pages (``/``, ``/driver``, ``/host``, ``/dao``) and the JSON routes they need
beyond the REST API, under ``/api/v1/web`` (docs/web.md).

The pages use the REST API's own routes where they exist (discovery, prices, proofs, maintenance
tickets) and these where it has none yet: what an address owns, a vehicle's sessions and history,
a session as it charges, a host's earnings and utilization, the DAO's proposals; the wallet
transactions the pages hand to the user's wallet (electra.web.transactions); and the signed
actions for what changes off-chain (electra.web.actions).

What is someone's own takes the API's guards (electra.api.deps): a driver's vehicles, sessions and
history, and a host's earnings and utilization, answer only that signed-in wallet or staff.
Errors are ``application/problem+json`` like the rest of the API.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, Literal

import requests
from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field
from sqlalchemy import Engine

from electra.api.app import problem
from electra.api.context import ApiProblem
from electra.api.deps import Ctx, OwnCharger, OwnVehicle, SessionAccess, SignedIn, check_vehicle, not_yours
from electra.chain.bindings import Electra
from electra.config import Settings, load_settings
from electra.domain.station import CONNECTOR_ALIASES, OCPP_ALIASES
from electra.errors import ChainError, ContractReverted, DeploymentMissing, ElectraError, InvalidInput
from electra.ocpp.commands import ChargerUnavailable
from electra.payments.amounts import format_units
from electra.payments.wallet import WalletService
from electra.web import PAGES, STATIC_DIR, transactions, views
from electra.web.actions import ActionBook, ActionRefused, ActionUnknown, checksum_account
from electra.web.operations import NotFound, WebOperations

PREFIX = "/api/v1/web"
# Everything the pages load comes from this origin: no CDN, no tile server, no external font.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'"
)
Address = Annotated[str, Path(pattern="^0x[0-9a-fA-F]{40}$", description="An account address")]


def account_access(address: Address, caller: SignedIn) -> str:
    """The signed-in wallet itself (checksummed), or staff: a driver's vehicles and balances and a
    host's earnings are theirs to see."""
    who = checksum_account(address)
    if caller.staff or (caller.kind == "address" and caller.address == who):
        return who
    raise not_yours("account")


OwnAccount = Annotated[str, Depends(account_access)]


# ---------------------------------------------------------------- request schemas


class ActionCreate(BaseModel):
    kind: Literal["topup", "tariff", "lease", "stop"]
    account: str = Field(description="The wallet address that will sign")
    params: dict[str, Any] = Field(default_factory=dict)


class ActionConfirm(BaseModel):
    signature: str = Field(description="personal_sign of the action's message, 0x hex")


class AuthorizationCreate(BaseModel):
    vehicle_id: int = Field(ge=1)
    charger_id: str = Field(min_length=1, max_length=64)
    max_amount: str = Field(default="20", description="Most the session may cost, in the asset's units")
    asset: Literal["EUSD", "ELC"] = "EUSD"


class ChargeStart(BaseModel):
    charger_id: str = Field(min_length=1, max_length=64)
    connector_id: int | None = Field(default=None, ge=1)
    authorization: dict[str, Any] = Field(description="The signed ChargeAuthorization (vehicleId, ..., signature)")


class RegistrationCreate(BaseModel):
    owner: str
    charger_id: str = Field(min_length=1, max_length=48)
    latitude: str
    longitude: str
    power_kw: str = "22"
    connectors: list[str] = Field(default_factory=lambda: ["type2"])
    ocpp_versions: list[str] = Field(default_factory=lambda: ["1.6", "2.0.1"])
    operator_id: str = "DE*ELC"


class StakingCreate(BaseModel):
    account: str
    charger_id: str = Field(min_length=1, max_length=64)
    action: Literal["stake", "unstake", "withdraw"] = "stake"
    amount: str | None = Field(default=None, description="ELC, e.g. 1000")


class ParameterChange(BaseModel):
    name: str
    value: str


class ProposalCreate(BaseModel):
    proposer: str
    changes: list[ParameterChange] = Field(min_length=1)
    description: str = Field(min_length=1, max_length=2000)


class VoteCreate(BaseModel):
    voter: str
    proposal_id: str = Field(pattern="^[0-9]{1,78}$")
    support: Literal["for", "against", "abstain"]
    reason: str = Field(default="", max_length=500)


class ProposalStepCreate(BaseModel):
    sender: str
    proposal_id: str = Field(pattern="^[0-9]{1,78}$")
    step: Literal["queue", "execute"]


class DelegationCreate(BaseModel):
    account: str
    delegatee: str | None = None


# ---------------------------------------------------------------- errors as problems


def _problem_of(exc: Exception) -> JSONResponse:
    if isinstance(exc, ActionUnknown):
        return problem(410, "action-unknown", exc.cause, exc.fix)
    if isinstance(exc, NotFound):
        return problem(404, "not-found", exc.cause, exc.fix)
    if isinstance(exc, ActionRefused):
        return problem(403, "action-refused", exc.cause, exc.fix)
    if isinstance(exc, InvalidInput):
        return problem(400, "bad-request", exc.cause, exc.fix)
    if isinstance(exc, DeploymentMissing):
        return problem(503, "deployment-missing", exc.cause, exc.fix)
    if isinstance(exc, ContractReverted):
        return problem(409, "contract-reverted", exc.cause, exc.fix)
    if isinstance(exc, ChargerUnavailable):
        return problem(409, "charger-unavailable", exc.cause, exc.fix)
    if isinstance(exc, ChainError):
        return problem(503, "chain-unavailable", exc.cause, exc.fix)
    if isinstance(exc, requests.RequestException):
        return problem(503, "chain-unavailable", f"the chain RPC failed: {exc}", "retry when the chain is back")
    assert isinstance(exc, ElectraError)
    return problem(409, "refused", exc.cause, exc.fix)


_EXPECTED = (ElectraError, requests.RequestException)


def _answer(work: Callable[[], Any]) -> Any:
    try:
        return work()
    except _EXPECTED as exc:
        return _problem_of(exc)


async def _answer_async(work: Callable[[], Awaitable[Any]]) -> Any:
    try:
        return await work()
    except _EXPECTED as exc:
        return _problem_of(exc)


def static_files() -> StaticFiles:
    """The pages' scripts, styles, icons and vendored libraries, at ``/static``."""
    return StaticFiles(directory=STATIC_DIR)


# ---------------------------------------------------------------- the router


def web_router(
    engine: Engine | None,
    electra: Callable[[], Electra | None],
    stations: Callable[[], Any] | None = None,
    settings: Settings | None = None,
) -> APIRouter:
    """The pages and ``/api/v1/web``. ``settings`` (default: ELECTRA_* and the settings file) say
    where the central system's control channel, the sandbox provider's secret and the device keys
    are."""
    cfg = settings if settings is not None else load_settings()
    router = APIRouter()
    book = ActionBook(engine=engine)  # in the store: any API process confirms, a restart keeps them

    def chain() -> Electra:
        e = electra()
        if e is None:
            raise DeploymentMissing("no Electra deployment is known", "run `electra deploy` (or `electra up`)")
        return e

    def store() -> Engine:
        if engine is None:
            raise DeploymentMissing("this process has no database", "run the API from `electra up`")
        return engine

    ops = WebOperations(engine, chain, cfg) if engine is not None else None

    def operations() -> WebOperations:
        if ops is None:
            raise DeploymentMissing("this process has no database", "run the API from `electra up`")
        return ops

    # ------------------------------------------------------------ pages

    def page(name: str) -> Callable[[], FileResponse]:
        def serve() -> FileResponse:
            return FileResponse(
                STATIC_DIR / name,
                media_type="text/html",
                headers={
                    "Content-Security-Policy": CSP,
                    "Cache-Control": "no-cache",
                    "X-Content-Type-Options": "nosniff",
                },
            )

        return serve

    for path, name in PAGES.items():
        router.add_api_route(path, page(name), methods=["GET"], include_in_schema=False)

    # ------------------------------------------------------------ what the pages need to start

    @router.get(f"{PREFIX}/config", tags=["web"], summary="Chain, contracts, assets and which API features exist")
    def config(request: Request) -> Any:
        paths = set(request.app.openapi().get("paths", {}))  # what the API serves, routers included

        def work() -> dict[str, Any]:
            e = chain()
            wallet = WalletService(store(), e)
            return {
                "chain_id": e.client.chain_id,
                "dev_chain": e.client.is_anvil,
                "contracts": dict(e.deployment.addresses),
                "assets": {s: {"address": a.address, "decimals": a.decimals} for s, a in wallet.assets.items()},
                "connectors": list(CONNECTOR_ALIASES),
                "connector_bits": {name: int(bit) for name, bit in CONNECTOR_ALIASES.items()},
                "ocpp_versions": list(OCPP_ALIASES),
                "features": {
                    "siwe": "/api/v1/auth/nonce" in paths and "/api/v1/auth/siwe" in paths,
                    "events": "/api/v1/events" in paths,
                    "discovery": stations is not None,
                },
            }

        return _answer(work)

    @router.get(f"{PREFIX}/accounts/{{address}}", tags=["web"], summary="An account: checksummed, ETH, ELC and votes")
    def account(address: Address) -> Any:
        def work() -> dict[str, Any]:
            e, who = chain(), checksum_account(address)
            elc, votes = e.token.balance_of(who), e.token.votes(who)
            return {
                "address": who,
                "eth_wei": str(e.client.w3.eth.get_balance(who)),
                "elc": {"base_units": str(elc), "amount": format_units(elc, 18)},
                "votes": {"base_units": str(votes), "amount": format_units(votes, 18)},
            }

        return _answer(work)

    # ------------------------------------------------------------ drivers

    @router.get(
        f"{PREFIX}/drivers/{{address}}", tags=["web"], summary="A driver's vehicles (a page of them) and their balances"
    )
    def driver(
        who: OwnAccount,
        offset: Annotated[int, Query(ge=0, le=10**9)] = 0,
        limit: Annotated[int, Query(ge=1, le=200)] = 50,
    ) -> Any:
        def work() -> dict[str, Any]:
            e = chain()
            wallet = WalletService(store(), e)
            owned = views.vehicle_ids_of(e, who)
            out = []
            for v in (e.vehicles.vehicle(i) for i in owned[offset : offset + limit]):
                balances = wallet.balances(v.vehicle_id)
                alerts = {a.asset: a for a in wallet.check_alerts(v.vehicle_id)}
                out.append(
                    {
                        **views.vehicle_json(v),
                        "balances": {
                            s: {
                                "base_units": str(units),
                                "amount": format_units(units, wallet.assets[s].decimals),
                                "alert_below": format_units(alerts[s].threshold, wallet.assets[s].decimals)
                                if s in alerts
                                else None,
                                "alert_firing": alerts[s].firing if s in alerts else False,
                            }
                            for s, units in balances.items()
                        },
                        "id_tokens": views.id_tokens_of(store(), v.vehicle_id),
                    }
                )
            return {"address": who, "page": {"offset": offset, "limit": limit, "total": len(owned)}, "vehicles": out}

        return _answer(work)

    @router.get(
        f"{PREFIX}/vehicles/{{vehicle_id}}/sessions", tags=["web"], summary="A vehicle's sessions, newest first"
    )
    def vehicle_sessions(vehicle_id: OwnVehicle, limit: Annotated[int, Query(ge=1, le=200)] = 20) -> Any:
        return _answer(lambda: {"items": views.sessions_of_vehicle(store(), vehicle_id, limit)})

    @router.get(f"{PREFIX}/vehicles/{{vehicle_id}}/history", tags=["web"], summary="A vehicle's wallet history")
    def vehicle_history(vehicle_id: OwnVehicle, limit: Annotated[int, Query(ge=1, le=200)] = 20) -> Any:
        def work() -> dict[str, Any]:
            wallet = WalletService(store(), chain())
            page_ = wallet.history(vehicle_id=vehicle_id, limit=limit)
            return {
                "events": [
                    {**ev.to_json(), "shown": format_units(ev.amount, views.DECIMALS.get(ev.asset, 0))}
                    for ev in page_.events
                ],
                "next_before": page_.next_before,
            }

        return _answer(work)

    @router.get(
        f"{PREFIX}/sessions/{{session_id}}",
        tags=["web"],
        summary="A session as it charges (energy, power, readings) and after (receipt, anchoring)",
    )
    def session(grant: SessionAccess) -> Any:
        session_id = grant.row.id

        def work() -> Any:
            view = views.session_view(store(), session_id)
            if view is None:
                raise NotFound(f"no session {session_id}", "see your sessions on the driver page")
            return view

        return _answer(work)

    @router.post(
        f"{PREFIX}/charges/authorization",
        tags=["web"],
        summary="The EIP-712 ChargeAuthorization for the driver's wallet to sign",
    )
    def charge_authorization(body: AuthorizationCreate, caller: SignedIn, ctx: Ctx) -> Any:
        check_vehicle(ctx, caller, body.vehicle_id)
        return _answer(
            lambda: operations().charge_authorization(body.vehicle_id, body.charger_id, body.max_amount, body.asset)
        )

    @router.post(
        f"{PREFIX}/charges",
        tags=["web"],
        summary="Start a charge: submit the signed authorization, then ask the charger to start (OCPP remote start)",
    )
    async def charge_start(body: ChargeStart, caller: SignedIn, ctx: Ctx) -> Any:
        vehicle = body.authorization.get("vehicleId")
        if not isinstance(vehicle, int | str) or not str(vehicle).isdecimal() or not 1 <= int(vehicle) <= 2**63 - 1:
            raise ApiProblem(422, "invalid-request", "the authorization has no vehicleId", "sign it again")
        await asyncio.to_thread(check_vehicle, ctx, caller, int(vehicle))

        async def work() -> dict[str, Any]:
            ops_ = operations()
            authorization_id, vehicle_id, token = await asyncio.to_thread(ops_.submit_authorization, body.authorization)
            answer = await ops_.remote_start(body.charger_id, token, body.connector_id)
            if answer.get("status") != "Accepted":
                raise ElectraError(
                    f"{body.charger_id} answered the remote start with {answer.get('status')}",
                    "the charger may be busy: pick a free one or try again",
                )
            return {
                "authorization_id": authorization_id,
                "vehicle_id": vehicle_id,
                "id_token": token,
                "charger_id": body.charger_id,
                "charger_answer": answer,
            }

        return await _answer_async(work)

    # ------------------------------------------------------------ signed actions

    @router.post(
        f"{PREFIX}/actions",
        tags=["web"],
        summary="Ask for an off-chain change; answers the message the wallet must sign (personal_sign)",
    )
    def action_create(body: ActionCreate, request: Request) -> Any:
        def work() -> dict[str, Any]:
            prepared = operations().prepare(body.kind, body.account, body.params)
            action = book.issue(request.url.netloc, body.kind, body.account, prepared.params, prepared.statement)
            return action.to_json()

        return _answer(work)

    @router.post(
        f"{PREFIX}/actions/{{nonce}}",
        tags=["web"],
        summary="Confirm an action with its signature; the server checks the signer and does it",
    )
    async def action_confirm(nonce: Annotated[str, Path(pattern="^[0-9a-f]{32}$")], body: ActionConfirm) -> Any:
        async def work() -> dict[str, Any]:
            action = book.take(nonce, body.signature)
            result = await operations().execute(action.kind, action.account, action.params)
            return {"kind": action.kind, "account": action.account, "result": result}

        return await _answer_async(work)

    # ------------------------------------------------------------ hosts

    @router.get(
        f"{PREFIX}/hosts/{{address}}",
        tags=["web"],
        summary="A host's chargers (a page of them, newest first), earnings and staking",
    )
    def host(
        who: OwnAccount,
        offset: Annotated[int, Query(ge=0, le=10**9)] = 0,
        limit: Annotated[int, Query(ge=1, le=200)] = 50,
    ) -> Any:
        def work() -> dict[str, Any]:
            e = chain()
            held = views.charger_tokens_of(e, who)[::-1]  # newest first: a charger just registered leads
            records = [e.stations.station(t) for t in held[offset : offset + limit]]
            wallet = WalletService(store(), e)
            earnings = wallet.earnings(who)
            return {
                "address": who,
                "page": {"offset": offset, "limit": limit, "total": len(held)},
                "chargers": views.charger_details(store(), e, records),
                "earnings": {
                    s: {"base_units": str(u), "amount": format_units(u, wallet.assets[s].decimals)}
                    for s, u in earnings.items()
                },
                "tariff_bounds": views.tariff_bounds(e),
                "staking": views.staking_overview(e, who),
                "positions": views.positions(e, who, records),
            }

        return _answer(work)

    @router.get(
        f"{PREFIX}/hosts/{{address}}/earnings",
        tags=["web"],
        summary="What a host was paid for settled sessions, per charger, over time",
    )
    def host_earnings(
        who: OwnAccount, bucket: Literal["auto", "hour", "day"] = "auto", top: Annotated[int, Query(ge=1, le=50)] = 8
    ) -> Any:
        return _answer(lambda: views.earnings_series(store(), who, bucket, top))

    @router.get(
        f"{PREFIX}/chargers/{{charger_id}}/utilization",
        tags=["web"],
        summary="Busy share of each hour of the week (UTC) over the last four weeks",
    )
    def charger_utilization(charger_id: OwnCharger) -> Any:
        def work() -> dict[str, Any]:
            e = chain()
            token_id = e.stations.token_id_of(charger_id)
            if token_id == 0:
                raise NotFound(f"no charger {charger_id!r} is registered", "pick one of your chargers")
            return views.utilization(store(), charger_id, e.stations.station(token_id).registered_at)

        return _answer(work)

    @router.post(
        f"{PREFIX}/stations/registration",
        tags=["web"],
        summary="A charger registration for the host's wallet to send (the device key signs it)",
    )
    def station_registration(body: RegistrationCreate) -> Any:
        return _answer(
            lambda: transactions.registration(
                chain(),
                cfg.keys_dir,
                body.owner,
                body.charger_id,
                body.latitude,
                body.longitude,
                body.power_kw,
                body.connectors,
                body.ocpp_versions,
                body.operator_id,
            )
        )

    @router.post(f"{PREFIX}/staking/transactions", tags=["web"], summary="Staking transactions for the wallet to send")
    def staking_transactions(body: StakingCreate) -> Any:
        return _answer(
            lambda: {
                "transactions": transactions.staking(chain(), body.account, body.charger_id, body.action, body.amount)
            }
        )

    # ------------------------------------------------------------ the DAO

    @router.get(f"{PREFIX}/dao", tags=["web"], summary="Governed parameters and proposals with state and votes")
    def dao(account: Annotated[str | None, Query(pattern="^0x[0-9a-fA-F]{40}$")] = None) -> Any:
        return _answer(lambda: views.dao_overview(chain(), checksum_account(account) if account else None))

    @router.post(f"{PREFIX}/dao/proposals", tags=["web"], summary="A parameter-change proposal for the wallet to send")
    def dao_propose(body: ProposalCreate) -> Any:
        return _answer(
            lambda: transactions.proposal(
                chain(), body.proposer, [(c.name, c.value) for c in body.changes], body.description
            )
        )

    @router.post(f"{PREFIX}/dao/votes", tags=["web"], summary="A vote for the wallet to send")
    def dao_vote(body: VoteCreate) -> Any:
        return _answer(lambda: transactions.vote(chain(), body.voter, int(body.proposal_id), body.support, body.reason))

    @router.post(f"{PREFIX}/dao/steps", tags=["web"], summary="Queue or execute a proposal: the wallet's transaction")
    def dao_step(body: ProposalStepCreate) -> Any:
        return _answer(lambda: transactions.proposal_step(chain(), body.sender, int(body.proposal_id), body.step))

    @router.post(f"{PREFIX}/dao/delegation", tags=["web"], summary="Delegate ELC votes: the wallet's transaction")
    def dao_delegation(body: DelegationCreate) -> Any:
        return _answer(lambda: transactions.delegation(chain(), body.account, body.delegatee))

    return router

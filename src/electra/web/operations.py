"""What the signed web actions do (electra.web.actions): top up a vehicle through the sandbox fiat
provider, set a charger's tariff or lease, stop a charge; and starting a charge, which the
driver's EIP-712 charge authorization itself authorizes.

Each action is checked twice with the same rules: when the page asks for it (so that a mistake is
reported before the wallet is asked to sign) and when the signature arrives (the charger or the
vehicle may have changed hands in between).
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from electra.chain.bindings import Electra
from electra.chain.payments import SignedAuthorization
from electra.charging.tokens import TokenRegistry
from electra.config import Settings
from electra.domain.tariff import Tariff
from electra.errors import InvalidInput
from electra.ocpp.control import ControlClient, read_token
from electra.payments.amounts import FIAT_DECIMALS, format_units, parse_units
from electra.payments.providers import SandboxProvider, load_or_create_secret
from electra.payments.tariffs import LeaseBook, TariffBook, Window, governed_bounds
from electra.payments.topup import TopUpFailed, TopUpService
from electra.payments.wallet import WalletService
from electra.payments.webhooks import WebhookReceiver
from electra.store.models import SessionRecord
from electra.web.actions import KINDS, ActionRefused, checksum_account
from electra.web.views import DECIMALS, id_tokens_of, tariff_json

MAX_TOPUP_CENTS = 100_000  # 1,000.00 per top-up through the web app


class NotFound(InvalidInput):
    """The thing asked about does not exist."""


@dataclass(frozen=True)
class Prepared:
    statement: str
    params: dict[str, Any]


def control_client(settings: Settings) -> ControlClient:
    """The central system's control channel, as `electra ocpp` reaches it."""
    token = (
        settings.control_token.get_secret_value()
        if settings.control_token is not None
        else read_token(settings.control_token_file)
    )
    tls = ssl.create_default_context(cafile=str(settings.ocpp_tls_cert)) if settings.ocpp_tls_cert else None
    scheme = "wss" if settings.ocpp_tls_cert else "ws"
    return ControlClient(f"{scheme}://{settings.csms_host}:{settings.csms_port}", token, tls)


def _int(params: dict[str, Any], name: str, low: int = 0) -> int:
    value = params.get(name)
    if isinstance(value, bool) or not isinstance(value, int | str) or not str(value).strip().isdigit():
        raise InvalidInput(f"{name} must be a whole number, not {value!r}")
    number = int(str(value).strip())
    if number < low:
        raise InvalidInput(f"{name} must be at least {low}")
    return number


def _text(params: dict[str, Any], name: str, default: str | None = None) -> str:
    value = params.get(name, default)
    if not isinstance(value, str | int) or isinstance(value, bool) or str(value).strip() == "":
        raise InvalidInput(f"{name} is missing", f"give {name}")
    return str(value).strip()


class WebOperations:
    def __init__(self, engine: Engine, electra: Callable[[], Electra], settings: Settings) -> None:
        self.engine = engine
        self.electra = electra
        self.settings = settings

    # ------------------------------------------------------------ who may

    def charger_holder(self, e: Electra, charger_id: str) -> str:
        token_id = e.stations.token_id_of(charger_id)
        if token_id == 0:
            raise NotFound(f"no charger {charger_id!r} is registered", "pick one of your chargers")
        return str(e.client.call(e.stations.contract.functions.ownerOf(token_id)))

    def vehicle_owner(self, e: Electra, vehicle_id: int) -> str:
        if not 1 <= vehicle_id <= e.vehicles.total():
            raise NotFound(f"no vehicle with id {vehicle_id}", "pick one of your vehicles")
        return e.vehicles.vehicle(vehicle_id).owner

    def _require(self, holder: str, account: str, what: str) -> None:
        if holder.lower() != account.lower():
            raise ActionRefused(
                f"{account} does not hold {what} (its holder is {holder})", "connect the holder's wallet"
            )

    # ------------------------------------------------------------ prepare: check and say what it does

    def prepare(self, kind: str, account: str, params: dict[str, Any]) -> Prepared:
        who = checksum_account(account)
        if kind not in KINDS:
            raise InvalidInput(f"unknown action {kind!r}", f"one of {', '.join(KINDS)}")
        prepared = getattr(self, f"_prepare_{kind}")(params)
        self.check_allowed(kind, who, prepared.params)
        return prepared

    def check_allowed(self, kind: str, account: str, params: dict[str, Any]) -> None:
        e = self.electra()
        if kind in ("tariff", "lease"):
            self._require(self.charger_holder(e, params["charger_id"]), account, f"charger {params['charger_id']}")
        elif kind == "topup":
            self._require(self.vehicle_owner(e, params["vehicle_id"]), account, f"vehicle {params['vehicle_id']}")
        elif kind == "stop":
            vehicle_id = params["vehicle_id"]
            if vehicle_id is None:
                raise ActionRefused(f"session {params['session_id']} has no vehicle", "stop it at the charger")
            self._require(self.vehicle_owner(e, vehicle_id), account, f"vehicle {vehicle_id}")

    def _prepare_topup(self, params: dict[str, Any]) -> Prepared:
        vehicle_id = _int(params, "vehicle_id", 1)
        amount = _text(params, "amount")
        currency = _text(params, "currency", "EUR").upper()
        cents = parse_units(amount, FIAT_DECIMALS, what="top-up amount")
        if not 0 < cents <= MAX_TOPUP_CENTS:
            raise InvalidInput(
                f"a top-up of {amount} {currency}",
                f"top up more than 0 and at most {MAX_TOPUP_CENTS // 100} {currency} at a time",
            )
        shown = f"{cents // 100}.{cents % 100:02d}"
        return Prepared(
            f"Top up vehicle {vehicle_id} with {shown} {currency} through the sandbox payment provider; "
            "it is credited as ElectraUSD on PaymentHub.",
            {"vehicle_id": vehicle_id, "amount": shown, "currency": currency},
        )

    def _tariff_of(self, params: dict[str, Any]) -> Tariff:
        asset = _text(params, "asset", "EUSD").upper()
        d = DECIMALS.get(asset)
        if d is None:
            raise InvalidInput(f"asset {asset}", "use EUSD or ELC")
        per_kwh = parse_units(_text(params, "per_kwh"), d, what="price per kWh")
        if per_kwh % 1000:
            raise InvalidInput(f"{params['per_kwh']} per kWh is not a whole number of base units per Wh", "round it")
        return Tariff(
            asset,
            per_kwh // 1000,
            parse_units(_text(params, "per_hour", "0"), d, what="price per hour"),
            parse_units(_text(params, "idle_per_hour", "0"), d, what="idle fee per hour"),
            _int({"v": params.get("idle_grace_min", 0)}, "v") * 60,
            parse_units(_text(params, "session_fee", "0"), d, what="session fee"),
        )

    def _prepare_tariff(self, params: dict[str, Any]) -> Prepared:
        charger_id = _text(params, "charger_id")
        tariff = self._tariff_of(params)
        e = self.electra()
        bounds = governed_bounds(e.payments.tariff_bounds, {"EUSD": e.stablecoin.address, "ELC": e.token.address})
        limit = bounds(tariff.asset)
        if limit is None:
            raise InvalidInput(f"no tariff bounds for {tariff.asset}", "price in EUSD or ELC")
        tariff.check_within(limit)
        t = tariff_json(tariff.__dict__)
        return Prepared(
            f"Set the tariff of {charger_id}: {t['per_kwh']} {tariff.asset} per kWh, {t['per_hour']} per hour, "
            f"idle {t['idle_per_hour']} per hour after {t['idle_grace_min']} min, {t['session_fee_text']} per session.",
            {
                "charger_id": charger_id,
                "asset": tariff.asset,
                "per_kwh": t["per_kwh"],
                "per_hour": t["per_hour"],
                "idle_per_hour": t["idle_per_hour"],
                "idle_grace_min": t["idle_grace_min"],
                "session_fee": t["session_fee_text"],
            },
        )

    def _prepare_lease(self, params: dict[str, Any]) -> Prepared:
        charger_id = _text(params, "charger_id")
        public = params.get("public")
        if not isinstance(public, bool):
            raise InvalidInput("public must be true or false")
        windows_in = params.get("windows") or []
        allowed_in = params.get("allowed_vehicles") or []
        if not isinstance(windows_in, list) or not isinstance(allowed_in, list):
            raise InvalidInput("windows and allowed_vehicles are lists")
        windows = [Window.parse(str(w)).text() for w in windows_in if str(w).strip()]
        allowed = sorted({_int({"v": v}, "v", 1) for v in allowed_in})
        hours = ", ".join(windows) if windows else "at any time"
        who = "the public" if public else "only the listed vehicles"
        extra = f"; always admit vehicles {', '.join(map(str, allowed))}" if allowed else ""
        return Prepared(
            f"Lease {charger_id} to {who}, {hours}{extra}.",
            {"charger_id": charger_id, "public": public, "windows": windows, "allowed_vehicles": allowed},
        )

    def _prepare_stop(self, params: dict[str, Any]) -> Prepared:
        session_id = _int(params, "session_id", 1)
        with Session(self.engine) as s:
            row = s.get(SessionRecord, session_id)
            if row is None:
                raise NotFound(f"no session {session_id}", "pick one of your sessions")
            if row.status != "active":
                raise InvalidInput(f"session {session_id} is {row.status}", "only a running session can be stopped")
            charger_id, transaction, vehicle_id = row.charger_id, row.transaction_uid, row.vehicle_id
        return Prepared(
            f"Stop charging session {session_id} at {charger_id}.",
            {"session_id": session_id, "charger_id": charger_id, "transaction": transaction, "vehicle_id": vehicle_id},
        )

    # ------------------------------------------------------------ execute

    async def execute(self, kind: str, account: str, params: dict[str, Any]) -> dict[str, Any]:
        """Does a signed action, checked once more against the chain (in a thread: it blocks)."""
        await asyncio.to_thread(self.check_allowed, kind, account, params)
        if kind == "stop":
            answer = await control_client(self.settings).request(
                "remote_stop", charger_id=params["charger_id"], transaction=params["transaction"]
            )
            return {"session_id": params["session_id"], "charger_answer": answer}
        return await asyncio.to_thread(self._execute_blocking, kind, account, params)

    def _execute_blocking(self, kind: str, account: str, params: dict[str, Any]) -> dict[str, Any]:
        e = self.electra()
        if kind == "tariff":
            bounds = governed_bounds(e.payments.tariff_bounds, {"EUSD": e.stablecoin.address, "ELC": e.token.address})
            t = TariffBook(self.engine, bounds).set(params["charger_id"], self._tariff_of(params), by=account)
            return {"charger_id": params["charger_id"], "tariff": tariff_json(t.__dict__)}
        if kind == "lease":
            lease = LeaseBook(self.engine).set(
                params["charger_id"], params["public"], params["windows"], params["allowed_vehicles"]
            )
            return {
                "charger_id": lease.charger_id,
                "public": lease.public,
                "windows": [w.text() for w in lease.windows],
                "allowed_vehicles": sorted(lease.allowed_vehicles),
            }
        if kind == "topup":
            return self._top_up(e, params["vehicle_id"], params["amount"], params["currency"])
        raise InvalidInput(f"unknown action {kind!r}")

    def _top_up(self, e: Electra, vehicle_id: int, amount: str, currency: str) -> dict[str, Any]:
        """What `electra wallet topup` does: checkout at the sandbox provider, its signed webhook,
        ElectraUSD minted and deposited for the vehicle."""
        cents = parse_units(amount, FIAT_DECIMALS, what="top-up amount")
        wallet = WalletService(self.engine, e)
        provider = SandboxProvider(load_or_create_secret(self.settings.data_dir / "payments" / "sandbox.secret"))
        topups = TopUpService(self.engine, e, wallet=wallet)
        intent = topups.checkout(provider, vehicle_id, cents, currency)
        request = provider.complete(intent)
        answer = WebhookReceiver([provider], topups).receive(provider.name, request.headers, request.body)
        if answer.outcome is None or answer.outcome.status != "credited":
            raise TopUpFailed(
                f"the webhook was answered {answer.status_code}: {answer.body.get('detail', answer.body)}",
                str(answer.body.get("fix", "retry the top-up")),
            )
        o = answer.outcome
        balance = wallet.balance(vehicle_id, "EUSD")
        return {
            "vehicle_id": vehicle_id,
            "paid": f"{amount} {currency}",
            "provider_ref": o.provider_ref,
            "credited": format_units(o.amount, DECIMALS["EUSD"]),
            "balance": format_units(balance, DECIMALS["EUSD"]),
            "balance_base_units": str(balance),
            "tx_hash": o.tx_hash,
        }

    # ------------------------------------------------------------ starting a charge

    def charge_authorization(self, vehicle_id: int, charger_id: str, max_amount: str, asset: str) -> dict[str, Any]:
        """The EIP-712 ChargeAuthorization the driver's wallet signs (eth_signTypedData_v4), with
        the next free nonce; integers as decimal strings, as wallets take uint256."""
        from electra.chain.payments import ChargeAuthorization
        from electra.web.views import next_authorization_nonce

        e = self.electra()
        self.vehicle_owner(e, vehicle_id)
        symbol = asset.upper()
        address = {"EUSD": e.stablecoin.address, "ELC": e.token.address}.get(symbol)
        if address is None:
            raise InvalidInput(f"asset {asset}", "authorize EUSD or ELC")
        token_id = e.stations.token_id_of(charger_id)
        if token_id == 0:
            raise NotFound(f"no charger {charger_id!r} is registered", "pick a charger on the map")
        units = parse_units(max_amount, DECIMALS[symbol], what="maximum amount")
        if units == 0:
            raise InvalidInput("an authorization of 0", "allow a positive maximum")
        balance = e.payments.balance(vehicle_id, address)
        if balance < units:
            raise InvalidInput(
                f"vehicle {vehicle_id} holds {format_units(balance, DECIMALS[symbol])} {symbol}, "
                f"less than {max_amount}",
                "top up first, or authorize less",
            )
        nonce = next_authorization_nonce(self.engine, e, vehicle_id, address)
        expiry = int(e.client.w3.eth.get_block("latest")["timestamp"]) + 24 * 3600
        auth = ChargeAuthorization(vehicle_id, token_id, address, units, expiry, nonce)
        typed = auth.typed_data(e.client.chain_id, e.payments.address)
        message = {k: (str(v) if isinstance(v, int) else v) for k, v in typed["message"].items()}
        return {"typed_data": {**typed, "message": message}, "authorization": SignedAuthorization(auth, b"").to_json()}

    def submit_authorization(self, signed_json: dict[str, Any]) -> tuple[int, int, str]:
        """Stores the signed authorization (AuthorizationBook checks the signer is the vehicle's
        device or owner) and gives (authorization id, vehicle id, id token to start with)."""
        from electra.payments.service import payments_for

        e = self.electra()
        signed = SignedAuthorization.from_json(signed_json)
        stored = payments_for(e, self.engine).authorizations.submit(signed)
        vehicle_id = signed.authorization.vehicle_id
        tokens = id_tokens_of(self.engine, vehicle_id)
        if tokens:
            token = tokens[0]
        else:  # the owner just proved they hold the vehicle: give it a token to charge with
            token = f"WEB-V{vehicle_id}"
            TokenRegistry(self.engine).issue(token, vehicle_id=vehicle_id, owner=e.vehicles.vehicle(vehicle_id).owner)
        return stored.id, vehicle_id, token

    async def remote_start(self, charger_id: str, id_token: str, connector_id: int | None) -> dict[str, Any]:
        answer = await control_client(self.settings).request(
            "remote_start", charger_id=charger_id, id_token=id_token, connector_id=connector_id
        )
        return dict(answer)

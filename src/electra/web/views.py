"""What the web pages show, read from the store and the chain: a driver's vehicles and sessions, a
session as it charges and after (receipt, anchoring), a host's chargers, earnings over time and
utilization by hour of the week, and the DAO's parameters and proposals.

Balances, ownership and votes are read from the chain; history, sessions and settlements from the
store. Finding what an address owns scans the registries (one call per charger or vehicle), which
is fine for a dev network of hundreds; an indexer of Transfer events replaces it at scale.
"""

from __future__ import annotations

import time
from collections import defaultdict
from typing import Any

from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from electra.chain.bindings import Electra, StationRecord, VehicleRecord
from electra.chain.governance import PARAMETERS, Dao, ProposalState
from electra.chain.settlement import receipt_of
from electra.chain.staking import Tier
from electra.domain.geo import e6_to_text
from electra.domain.station import connector_names, ocpp_version_names
from electra.domain.utilization import DAY_MS, HOUR_MS, weekly_occupancy
from electra.errors import DeploymentMissing
from electra.payments.amounts import format_units
from electra.payments.tariffs import LeaseBook, TariffBook, governed_bounds
from electra.store.models import (
    AnchorBatchRecord,
    ChargeAuthorizationRecord,
    ChargerState,
    ConnectorState,
    IdTokenRecord,
    MeterValueRecord,
    SessionLogRecord,
    SessionRecord,
    SettlementRecord,
)

DECIMALS = {"EUSD": 6, "ELC": 18}
UTILIZATION_WINDOW_MS = 28 * DAY_MS
MAX_BUCKETS = 400
LIVE_READINGS = 120


def _now_ms() -> int:
    return int(time.time() * 1000)


# ---------------------------------------------------------------- who owns what


def vehicle_ids_of(e: Electra, owner: str) -> list[int]:
    """The owner's vehicle ids, read fresh from the indexed VehicleRegistered logs (a page shows a
    vehicle the moment it is registered, and reads only the vehicles it shows)."""
    return e.vehicles.owned_by(owner, e.deployment.block_number)


def charger_tokens_of(e: Electra, owner: str) -> list[int]:
    """The token ids of the chargers the owner holds, read fresh from its Transfer logs (not a scan
    of the registry, and no read per token: a page then reads only the chargers it shows)."""
    return e.stations.token_ids_held_by(owner, e.deployment.block_number)


def station_json(r: StationRecord) -> dict[str, Any]:
    return {
        "token_id": r.token_id,
        "charger_id": r.charger_id,
        "owner": r.owner,
        "latitude": e6_to_text(r.latitude_e6),
        "longitude": e6_to_text(r.longitude_e6),
        "max_power_w": r.max_power_w,
        "connector_types": connector_names(r.connector_types),
        "ocpp_versions": ocpp_version_names(r.ocpp_versions),
        "operator_id": r.operator_id,
        "device": r.device,
        "registered_at": r.registered_at,
        "active": r.active,
    }


def vehicle_json(v: VehicleRecord) -> dict[str, Any]:
    return {
        "vehicle_id": v.vehicle_id,
        "owner": v.owner,
        "device": v.device,
        "registered_at": v.registered_at,
        "active": v.active,
    }


def id_tokens_of(engine: Engine, vehicle_id: int) -> list[str]:
    with Session(engine) as s:
        return list(
            s.scalars(
                select(IdTokenRecord.id_token)
                .where(IdTokenRecord.vehicle_id == vehicle_id, IdTokenRecord.status == "Accepted")
                .order_by(IdTokenRecord.created_at_ms, IdTokenRecord.id_token)
            )
        )


# ---------------------------------------------------------------- live charger state


def connectors_of(engine: Engine, charger_ids: list[str]) -> dict[str, dict[str, Any]]:
    """Per charger: its connectors as the central system last saw them, when it was last seen, and
    one word for the map and the tables (available, charging, faulted, unavailable, unknown)."""
    out: dict[str, dict[str, Any]] = {
        c: {"connectors": [], "last_seen_ms": None, "status": "unknown"} for c in charger_ids
    }
    if not charger_ids:
        return out
    with Session(engine) as s:
        for row in s.scalars(
            select(ConnectorState)
            .where(ConnectorState.charger_id.in_(charger_ids))
            .order_by(ConnectorState.charger_id, ConnectorState.connector_id)
        ):
            if row.connector_id == 0:
                continue  # the charger as a whole (1.6); its connectors say more
            out[row.charger_id]["connectors"].append(
                {
                    "connector_id": row.connector_id,
                    "status": row.status,
                    "error_code": row.error_code,
                    "updated_at_ms": row.updated_at_ms,
                }
            )
        for c in s.scalars(select(ChargerState).where(ChargerState.charger_id.in_(charger_ids))):
            out[c.charger_id]["last_seen_ms"] = c.last_seen_ms
    for v in out.values():
        v["status"] = overall_status([c["status"] for c in v["connectors"]])
    return out


def overall_status(statuses: list[str]) -> str:
    if not statuses:
        return "unknown"
    if "Available" in statuses:
        return "available"
    if any(s in ("Charging", "Preparing", "SuspendedEV", "SuspendedEVSE", "Finishing", "Occupied") for s in statuses):
        return "charging"
    if "Faulted" in statuses:
        return "faulted"
    return "unavailable"


# ---------------------------------------------------------------- sessions


def _anchoring(s: Session, session_id: int) -> dict[str, Any]:
    record = s.scalar(select(SessionLogRecord).where(SessionLogRecord.session_id == session_id))
    if record is None:
        return {"recorded": False, "anchored": False, "seq": None, "batch_id": None, "anchor_tx": None}
    batch = s.get(AnchorBatchRecord, record.batch_id) if record.batch_id is not None else None
    anchored = batch is not None and batch.status == "anchored"
    return {
        "recorded": True,
        "anchored": anchored,
        "seq": record.seq,
        "batch_id": record.batch_id,
        "anchor_tx": batch.tx_hash if anchored and batch is not None else None,
    }


def _session_row(row: SessionRecord, bill: SettlementRecord | None) -> dict[str, Any]:
    return {
        "session_id": row.id,
        "charger_id": row.charger_id,
        "connector_id": row.connector_id,
        "transaction": row.transaction_uid,
        "vehicle_id": row.vehicle_id,
        "status": row.status,
        "started_at_ms": row.started_at_ms,
        "stopped_at_ms": row.stopped_at_ms,
        "stop_reason": row.stop_reason,
        "energy_wh": row.energy_wh,
        "meter_data": row.meter_data,
        "settlement": bill.status if bill is not None else None,
        "asset": bill.asset if bill is not None else None,
        "amount": bill.amount if bill is not None else None,
    }


def sessions_of_vehicle(engine: Engine, vehicle_id: int, limit: int = 20) -> list[dict[str, Any]]:
    """Newest first, with each one's bill and whether its record is anchored yet."""
    with Session(engine) as s:
        rows = list(
            s.scalars(
                select(SessionRecord)
                .where(SessionRecord.vehicle_id == vehicle_id)
                .order_by(SessionRecord.id.desc())
                .limit(limit)
            )
        )
        out = []
        for row in rows:
            item = _session_row(row, s.get(SettlementRecord, row.id))
            item["anchoring"] = _anchoring(s, row.id)
            out.append(item)
    return out


def session_view(engine: Engine, session_id: int) -> dict[str, Any] | None:
    """A session as it charges (energy so far, power, the register readings) and after it (the
    receipt, the anchoring of its record)."""
    with Session(engine) as s:
        row = s.get(SessionRecord, session_id)
        if row is None:
            return None
        readings = list(
            s.scalars(
                select(MeterValueRecord)
                .where(MeterValueRecord.session_id == session_id)
                .order_by(MeterValueRecord.timestamp_ms.desc(), MeterValueRecord.id.desc())
                .limit(LIVE_READINGS)
            )
        )[::-1]
        view = _session_row(row, s.get(SettlementRecord, session_id))
        view["anchoring"] = _anchoring(s, session_id)
        connector = s.get(ConnectorState, (row.charger_id, row.connector_id))
    start_wh = row.meter_start_wh if row.meter_start_wh is not None else (readings[0].register_wh if readings else 0)
    delivered = (readings[-1].register_wh - start_wh) if readings else 0
    power_w = None
    if len(readings) >= 2 and readings[-1].timestamp_ms > readings[-2].timestamp_ms:
        a, b = readings[-2], readings[-1]
        power_w = (b.register_wh - a.register_wh) * HOUR_MS // (b.timestamp_ms - a.timestamp_ms)
    view.update(
        {
            "energy_so_far_wh": row.energy_wh if row.energy_wh is not None else max(0, delivered),
            "power_w": power_w if row.status == "active" else 0,
            "connector_status": connector.status if connector is not None else None,
            "readings": [{"at_ms": r.timestamp_ms, "energy_wh": r.register_wh - start_wh} for r in readings],
            "receipt": receipt_of(engine, session_id),
        }
    )
    return view


def next_authorization_nonce(engine: Engine, e: Electra, vehicle_id: int, asset: str) -> int:
    """The nonce a new charge authorization takes: above the last one settled on-chain and every
    one submitted (what AuthorizationBook.ensure counts from)."""
    settled = e.payments.account(vehicle_id, asset)[1]
    with Session(engine) as s:
        submitted = s.scalar(
            select(func.max(ChargeAuthorizationRecord.nonce)).where(
                ChargeAuthorizationRecord.vehicle_id == vehicle_id, ChargeAuthorizationRecord.asset == asset
            )
        )
    return max(settled, submitted or 0) + 1


# ---------------------------------------------------------------- a host's chargers


def _tier_json(t: Tier) -> dict[str, Any]:
    return {**t.to_json(), "min_stake_elc": format_units(t.min_stake, 18)}


def charger_details(engine: Engine, e: Electra, records: list[StationRecord]) -> list[dict[str, Any]]:
    """Each charger with its live state, tariff, lease and staking tier."""
    tariffs = TariffBook(engine)
    leases = LeaseBook(engine)
    live = connectors_of(engine, [r.charger_id for r in records])
    staking = _staking(e)
    out = []
    for r in records:
        t = tariffs.get(r.charger_id)
        lease = leases.get(r.charger_id)
        tier = staking.tier_of(r.token_id) if staking is not None else None
        out.append(
            {
                **station_json(r),
                **live[r.charger_id],
                "tariff": tariff_json(t.__dict__),
                "lease": {
                    "public": lease.public,
                    "windows": [w.text() for w in lease.windows],
                    "allowed_vehicles": sorted(lease.allowed_vehicles),
                },
                "stake": None
                if tier is None
                else {
                    "holder": tier.holder,
                    "bonded": str(tier.bonded),
                    "bonded_elc": format_units(tier.bonded, 18),
                    "tier": tier.tier,
                    "discount_bps": tier.discount_bps,
                    "boost_bps": tier.boost_bps,
                },
            }
        )
    return out


def _staking(e: Electra) -> Any:
    return e.staking if "StakingManager" in e.deployment.addresses else None


def tariff_json(t: dict[str, Any]) -> dict[str, Any]:
    """A tariff in base units and as people write it (per kWh, per hour)."""
    d = DECIMALS.get(t["asset"], 0)
    return {
        **{k: (str(v) if isinstance(v, int) and k != "idle_grace_s" else v) for k, v in t.items()},
        "per_kwh": format_units(int(t["energy_price_per_wh"]) * 1000, d),
        "per_hour": format_units(int(t["time_price_per_hour"]), d),
        "idle_per_hour": format_units(int(t["idle_price_per_hour"]), d),
        "idle_grace_min": int(t["idle_grace_s"]) // 60,
        "session_fee_text": format_units(int(t["session_fee"]), d),
    }


def tariff_bounds(e: Electra) -> dict[str, Any]:
    """The DAO's ceilings per asset, in base units and as people write them."""
    assets = {"EUSD": e.stablecoin.address, "ELC": e.token.address}
    bounds = governed_bounds(e.payments.tariff_bounds, assets)
    out = {}
    for symbol, d in DECIMALS.items():
        b = bounds(symbol)
        if b is None:
            continue
        out[symbol] = {
            "decimals": d,
            "max_energy_price_per_wh": str(b.max_energy_price_per_wh),
            "max_per_kwh": format_units(b.max_energy_price_per_wh * 1000, d),
            "max_per_hour": format_units(b.max_time_price_per_hour, d),
            "max_idle_per_hour": format_units(b.max_idle_price_per_hour, d),
            "max_session_fee": format_units(b.max_session_fee, d),
        }
    return out


def staking_overview(e: Electra, account: str) -> dict[str, Any] | None:
    staking = _staking(e)
    if staking is None:
        return None
    return {
        "address": staking.address,
        "tiers": [_tier_json(t) for t in staking.tiers()],
        "unbonding_delay_s": staking.unbonding_delay(),
        "protocol_fee_bps": int(e.client.call(e.payments.contract.functions.protocolFeeBps())),
        "elc_balance": str(e.token.balance_of(account)),
    }


def positions(e: Electra, account: str, records: list[StationRecord]) -> dict[str, dict[str, Any]]:
    staking = _staking(e)
    if staking is None:
        return {}
    out = {}
    for r in records:
        p = staking.position(r.token_id, account)
        out[r.charger_id] = {
            "bonded": str(p.bonded),
            "unbonding": str(p.unbonding),
            "release_at": p.release_at,
        }
    return out


# ---------------------------------------------------------------- earnings and utilization


def _bucket_of(span_ms: int, wanted: str) -> tuple[str, int]:
    if wanted == "hour" or (wanted == "auto" and span_ms <= 2 * DAY_MS):
        return "hour", HOUR_MS
    return "day", DAY_MS


def earnings_series(engine: Engine, payee: str, bucket: str = "auto", top: int = 8) -> dict[str, Any]:
    """What a host was paid for settled sessions (amount less the protocol fee), per charger and
    asset, in hour or day buckets by when each session stopped; at most :data:`MAX_BUCKETS`, the
    latest. Per asset, the ``top`` chargers that earned most in those buckets get a series each and
    the rest one series together (``others``: how many), so that a chart of 5,000 chargers stays
    readable and small."""
    with Session(engine) as s:
        rows = s.execute(
            select(
                SettlementRecord.charger_id,
                SettlementRecord.asset,
                SettlementRecord.amount,
                SettlementRecord.fee,
                SessionRecord.stopped_at_ms,
                SettlementRecord.updated_at_ms,
            )
            .join(SessionRecord, SessionRecord.id == SettlementRecord.session_id)
            .where(func.lower(SettlementRecord.payee) == payee.lower(), SettlementRecord.status == "settled")
        ).all()
    points = [(c, a, int(amount) - int(fee or 0), stopped or updated) for c, a, amount, fee, stopped, updated in rows]
    if not points:
        return {"bucket": "day", "bucket_ms": DAY_MS, "buckets": [], "series": [], "totals": {}, "sessions": 0}
    first, last = min(p[3] for p in points), max(p[3] for p in points)
    name, size = _bucket_of(last - first, bucket)
    end = last // size
    start = max(first // size, end - MAX_BUCKETS + 1)
    sums: dict[tuple[str, str], dict[int, int]] = defaultdict(lambda: defaultdict(int))
    totals: dict[str, int] = defaultdict(int)
    for charger_id, asset, net, at in points:
        totals[asset] += net
        b = at // size
        if b >= start:
            sums[(charger_id, asset)][b] += net
    window = range(start, end + 1)
    series = []
    for asset in sorted({a for _, a in sums}):
        ranked = sorted((c for c, a in sums if a == asset), key=lambda c: (-sum(sums[(c, asset)].values()), c))
        for c in sorted(ranked[:top]):
            series.append({"charger_id": c, "asset": asset, "amounts": [str(sums[(c, asset)][b]) for b in window]})
        rest = ranked[top:]
        if rest:
            amounts = [str(sum(sums[(c, asset)][b] for c in rest)) for b in window]
            label = f"{len(rest)} other chargers"
            series.append({"charger_id": label, "asset": asset, "others": len(rest), "amounts": amounts})
    return {
        "bucket": name,
        "bucket_ms": size,
        "buckets": [b * size for b in window],
        "series": series,
        "totals": {a: str(v) for a, v in sorted(totals.items())},
        "sessions": len(points),
    }


def utilization(engine: Engine, charger_id: str, registered_at_s: int, now_ms: int | None = None) -> dict[str, Any]:
    """Busy share of each hour of the week (UTC) over the last four weeks, or since the charger
    was registered."""
    now = _now_ms() if now_ms is None else now_ms
    with Session(engine) as s:
        sessions = list(
            s.execute(
                select(SessionRecord.started_at_ms, SessionRecord.stopped_at_ms).where(
                    SessionRecord.charger_id == charger_id
                )
            ).all()
        )
        connectors = s.scalar(
            select(func.max(ConnectorState.connector_id)).where(ConnectorState.charger_id == charger_id)
        )
    intervals = [(a, b if b is not None else now) for a, b in sessions]
    end = max([now, *(b for _, b in intervals)])
    begin = min([registered_at_s * 1000, *(a for a, _ in intervals)]) if intervals else registered_at_s * 1000
    begin = max(begin, end - UTILIZATION_WINDOW_MS)
    occ = weekly_occupancy(intervals, begin, end, max(1, connectors or 1))
    return {
        "charger_id": charger_id,
        "from_ms": begin,
        "to_ms": end,
        "connectors": max(1, connectors or 1),
        "sessions": len(intervals),
        "days": ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"],
        "permille": occ.by_day(),
    }


# ---------------------------------------------------------------- the DAO


def _value_json(value: Any) -> Any:
    if isinstance(value, list):
        return [t.to_json() if isinstance(t, Tier) else t for t in value]
    if isinstance(value, int):
        return str(value)
    return value


def _decode(e: Electra, names: dict[str, str], target: str, calldata: bytes) -> dict[str, Any]:
    name = names.get(target.lower())
    action: dict[str, Any] = {"target": target, "contract": name, "calldata": "0x" + calldata.hex()}
    if name is None:
        return action
    try:
        fn, args = e.client.contract(name, target).decode_function_input(calldata)
    except ValueError:
        return action  # not one of the contract's functions; the raw calldata says what it is
    action["function"] = fn.fn_name
    action["args"] = {k: _arg_json(v) for k, v in args.items()}
    return action


def _arg_json(v: Any) -> Any:
    if isinstance(v, bytes):
        return "0x" + v.hex()
    if isinstance(v, int) and not isinstance(v, bool):
        return str(v)
    if isinstance(v, list | tuple):
        return [_arg_json(x) for x in v]
    return v


def dao_overview(e: Electra, account: str | None = None) -> dict[str, Any]:
    dao = Dao(e)
    g = dao.governor.functions
    names = {a.lower(): n for n, a in e.deployment.addresses.items()}
    parameters = []
    for p in PARAMETERS.values():
        try:
            value = dao.parameter_value(p.name)
        except DeploymentMissing:
            value = None  # the deployment predates the contract that holds it
        parameters.append(
            {
                "name": p.name,
                "contract": p.contract,
                "unit": p.unit,
                "kind": p.kind,
                "description": p.description,
                "value": _value_json(value),
                "shown": p.show(value) if value is not None else None,
            }
        )
    proposals = []
    for p in reversed(dao.proposals()):
        st = dao.status(p.proposal_id).to_json()
        item = {
            **st,
            "proposer": p.proposer,
            "actions": [_decode(e, names, t, c) for t, c in zip(p.targets, p.calldatas, strict=True)],
            "can_vote": st["state"] == ProposalState.ACTIVE.name.lower(),
            "can_queue": st["state"] == ProposalState.SUCCEEDED.name.lower(),
            "can_execute": st["state"] == ProposalState.QUEUED.name.lower(),
        }
        if account:
            item["has_voted"] = bool(e.client.call(g.hasVoted(p.proposal_id, account)))
        proposals.append(item)
    out: dict[str, Any] = {
        "governor": dao.governor.address,
        "timelock": e.deployment.addresses.get("ElectraTimelock"),
        "voting_delay_s": int(e.client.call(g.votingDelay())),
        "voting_period_s": int(e.client.call(g.votingPeriod())),
        "proposal_threshold": str(e.client.call(g.proposalThreshold())),
        "chain_time": dao.chain_time(),
        "parameters": parameters,
        "proposals": proposals,
    }
    if account:
        token = e.token.contract.functions
        out["account"] = {
            "address": account,
            "elc_balance": str(e.token.balance_of(account)),
            "votes": str(e.token.votes(account)),
            "delegate": str(e.client.call(token.delegates(account))),
        }
    return out

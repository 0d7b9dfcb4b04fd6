"""`electra stake`: stake ELC on a charger you hold, unbond and withdraw it, see a charger's tier.

Amounts on the command line are ELC (``1000``, ``2.5``, ``1000 ELC``); JSON gives base units as
strings next to the ELC text. The rules (only the holder's own stake counts, the unbonding delay) are
in docs/contracts.md#stakingmanager.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table

from electra.chain.bindings import Electra
from electra.chain.staking import StakePosition
from electra.cli import common
from electra.cli.common import AccountOpt, JsonOpt, KeyOpt, console, emit, handles_errors, kv_table
from electra.domain.rewards import checksum
from electra.errors import InvalidInput
from electra.payments.amounts import format_units, parse_units

ELC_DECIMALS = 18

stake_app = typer.Typer(
    help="Stake ELC on your chargers: a staking tier lowers the commission and boosts discovery.",
    no_args_is_help=True,
)

ChargerArg = Annotated[str, typer.Argument(help="Token id or charger id.")]


def _elc(units: int) -> str:
    return f"{format_units(units, ELC_DECIMALS)} ELC"


def _amount(text: str) -> int:
    t = text.strip()
    if t.upper().endswith("ELC"):
        t = t[:-3].strip()
    units = parse_units(t, ELC_DECIMALS, "amount")
    if units == 0:
        raise InvalidInput("amount 0", "give an amount of ELC above 0, e.g. 1000")
    return units


def _charger(e: Electra, ref: str) -> int:
    token_id = int(ref) if ref.isdigit() else e.stations.token_id_of(ref)
    if token_id < 1 or token_id > e.stations.total():
        raise InvalidInput(f"no charger {ref!r} is registered", "list chargers with `electra station list`")
    return token_id


def _chain_time(e: Electra) -> int:
    return int(e.client.w3.eth.get_block("latest")["timestamp"])


def _wait_fix(e: Electra, seconds: int) -> str:
    return f"wait {seconds} s" + (f" (dev chain: `electra chain advance {seconds}`)" if e.client.is_anvil else "")


def _position_json(p: StakePosition, now: int, holder: str) -> dict[str, Any]:
    return {
        "staker": p.staker,
        "bonded": str(p.bonded),
        "bonded_elc": _elc(p.bonded),
        "unbonding": str(p.unbonding),
        "unbonding_elc": _elc(p.unbonding),
        "release_at": p.release_at or None,
        "withdrawable_now": str(p.released(now)),
        "counts_for_tier": p.staker == holder,
    }


def status_json(e: Electra, token_id: int, staker: str | None = None) -> dict[str, Any]:
    """A charger's stake: its holder's bonded stake, tier, discount, boost, and every position on it."""
    staking = e.staking
    t = staking.tier_of(token_id)
    tiers = staking.tiers()
    fee_bps = e.payments.protocol_fee_bps()
    now = _chain_time(e)
    stakers = staking.stakers(token_id, from_block=e.deployment.block_number)
    for account in (t.holder, staker):
        if account and account not in stakers:
            stakers.append(account)
    positions = [staking.position(token_id, s) for s in stakers]
    shown = [p for p in positions if p.bonded or p.unbonding or p.staker in (t.holder, staker)]
    next_tier = tiers[t.tier] if t.tier < len(tiers) else None
    return {
        "token_id": token_id,
        "charger_id": e.stations.station(token_id).charger_id,
        "holder": t.holder,
        "bonded": str(t.bonded),
        "bonded_elc": _elc(t.bonded),
        "tier": t.tier,
        "discount_bps": t.discount_bps,
        "boost_bps": t.boost_bps,
        "protocol_fee_bps": fee_bps,
        "commission_bps": staking.commission_bps(token_id, t.holder, e.token.address, fee_bps),
        "next_tier": None
        if next_tier is None
        else {
            "tier": t.tier + 1,
            "min_stake": str(next_tier.min_stake),
            "missing": str(next_tier.min_stake - t.bonded),
            "missing_elc": _elc(next_tier.min_stake - t.bonded),
        },
        "unbonding_delay_s": staking.unbonding_delay(),
        "positions": [_position_json(p, now, t.holder) for p in shown],
        "tiers": [{"tier": i + 1, **tier.to_json()} for i, tier in enumerate(tiers)],
    }


def _human_status(data: dict[str, Any]) -> None:
    rows: list[tuple[str, Any]] = [
        ("holder", data["holder"]),
        ("holder's bonded stake", data["bonded_elc"]),
        ("tier", data["tier"] or "none"),
        ("discount", f"{data['discount_bps'] / 100:g} % of the protocol fee"),
        ("commission", f"{data['commission_bps']} bps (protocol fee {data['protocol_fee_bps']} bps)"),
        ("discovery boost", f"+{data['boost_bps'] / 100:g} %"),
        ("unbonding delay", f"{data['unbonding_delay_s']} s"),
    ]
    if data["next_tier"]:
        rows.append((f"to tier {data['next_tier']['tier']}", f"{data['next_tier']['missing_elc']} more"))
    kv_table(f"charger {data['charger_id']} (token {data['token_id']})", rows)
    t = Table("staker", "bonded", "unbonding", "release at", "withdrawable now", "counts")
    for p in data["positions"]:
        t.add_row(
            p["staker"],
            p["bonded_elc"],
            p["unbonding_elc"],
            str(p["release_at"] or "-"),
            _elc(int(p["withdrawable_now"])),
            "yes" if p["counts_for_tier"] else "no",
        )
    console.print(t)


@stake_app.command("add")
@handles_errors
def add(
    charger: ChargerArg,
    amount: Annotated[str, typer.Argument(help="ELC to stake, e.g. 1000 or 2.5.")],
    key: KeyOpt = None,
    account: AccountOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Stake ELC on a charger you hold (approves StakingManager first if needed)."""
    e = common.electra()
    staker = common.sender(e.client, key, account)
    token_id = _charger(e, charger)
    units = _amount(amount)
    holder = e.staking.tier_of(token_id).holder
    if holder != staker.address:
        raise InvalidInput(
            f"charger token {token_id} is held by {holder}, not by {staker.address}",
            "only the charger's holder may stake on it; send with its key (--key or --account)",
        )
    balance = e.token.balance_of(staker.address)
    if balance < units:
        raise InvalidInput(f"{staker.address} holds {_elc(balance)}, less than {_elc(units)}", "stake less")
    approval = e.staking.approve(units, staker)
    tx = e.staking.stake(token_id, units, sender=staker, approve=False)
    data = {
        "staked": str(units),
        "staked_elc": _elc(units),
        "tx_hash": tx.tx_hash,
        "gas_used": tx.gas_used,
        "approval_tx_hash": approval.tx_hash if approval else None,
        **status_json(e, token_id, staker.address),
    }

    def human() -> None:
        console.print(f"staked {_elc(units)} on charger token {token_id} ({tx.tx_hash})", highlight=False)
        _human_status(data)

    emit(data, as_json, human)


@stake_app.command("withdraw")
@handles_errors
def withdraw(
    charger: ChargerArg,
    amount: Annotated[
        str | None,
        typer.Argument(help="ELC to start unbonding, or 'all'. Without it: withdraw what has been released."),
    ] = None,
    key: KeyOpt = None,
    account: AccountOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """With AMOUNT: start unbonding it (it stops counting for the tier at once). Without: withdraw
    the unbonded stake once the unbonding delay has passed."""
    e = common.electra()
    staker = common.sender(e.client, key, account)
    token_id = _charger(e, charger)
    position = e.staking.position(token_id, staker.address)
    now = _chain_time(e)
    data: dict[str, Any] = {"token_id": token_id, "staker": staker.address}
    if amount is None:
        if position.unbonding == 0:
            raise InvalidInput(
                f"{staker.address} has nothing unbonding on charger token {token_id}",
                f"start unbonding first: `electra stake withdraw {charger} AMOUNT`",
            )
        if not position.released(now):
            raise InvalidInput(
                f"{_elc(position.unbonding)} unbond until {position.release_at} (unix time)",
                _wait_fix(e, position.release_at - now),
            )
        paid, tx = e.staking.withdraw(token_id, sender=staker)
        data.update({"action": "withdrawn", "withdrawn": str(paid), "withdrawn_elc": _elc(paid)})
        data.update({"tx_hash": tx.tx_hash, "gas_used": tx.gas_used})
        line = f"withdrew {_elc(paid)} from charger token {token_id} ({tx.tx_hash})"
    else:
        units = position.bonded if amount.strip().lower() == "all" else _amount(amount)
        if units == 0 or units > position.bonded:
            raise InvalidInput(
                f"{staker.address} has {_elc(position.bonded)} bonded on charger token {token_id}",
                "unbond at most that much",
            )
        released = position.released(now)
        if released:
            # The contract refuses a new request while released stake waits: pay that out first.
            paid, tx = e.staking.withdraw(token_id, sender=staker)
            data.update({"withdrawn": str(paid), "withdrawn_elc": _elc(paid), "withdraw_tx_hash": tx.tx_hash})
        release_at, tx = e.staking.request_unstake(token_id, units, sender=staker)
        data.update(
            {
                "action": "unbonding",
                "requested": str(units),
                "requested_elc": _elc(units),
                "unbonding": str(position.unbonding - released + units),
                "release_at": release_at,
                "tx_hash": tx.tx_hash,
                "gas_used": tx.gas_used,
            }
        )
        line = (
            f"unbonding {_elc(units)} on charger token {token_id} until {release_at} (unix time); "
            f"then `electra stake withdraw {charger}` ({tx.tx_hash})"
        )
    data["status"] = status_json(e, token_id, staker.address)
    emit(data, as_json, lambda: console.print(line, highlight=False))


@stake_app.command("status")
@handles_errors
def status(
    charger: ChargerArg,
    staker: Annotated[str | None, typer.Option("--staker", help="Also show this account's position.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """A charger's stake: its holder's bonded stake, tier, discount, boost, and unbonding stake."""
    e = common.electra()
    token_id = _charger(e, charger)
    data = status_json(e, token_id, checksum(staker) if staker is not None else None)
    emit(data, as_json, lambda: _human_status(data))

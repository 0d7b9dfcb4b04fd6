"""The DAO over the REST API: proposals with their state, the governed parameters, and vote
instructions a wallet acts on: the castVote call it sends, or the EIP-712 ballot it signs for
anyone to relay with castVoteBySig. Checked by voting both ways on a real anvil."""

from __future__ import annotations

from pathlib import Path

import httpx
from eth_account.messages import encode_typed_data
from hexbytes import HexBytes

from electra.api.app import create_app
from electra.chain.bindings import Electra
from electra.chain.governance import Dao
from electra.chain.keys import dev_account
from electra.store.db import make_engine, migrate
from tests.apiworld import bearer, serve, sign_in


def test_proposals_parameters_and_both_ways_to_vote(electra: Electra, tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path}/api.db")
    migrate(engine)
    dao = Dao(electra)
    holder, second = electra.client.account, dev_account(6)
    electra.token.transfer(second.address, 1_000 * 10**18)
    electra.token.delegate(second.address, sender=second)
    pid, _ = dao.propose_parameter([("protocol-fee-bps", 50)], "Halve the protocol fee")
    electra.client.rpc("evm_increaseTime", 61)
    electra.client.rpc("evm_mine")
    with serve(create_app(engine, lambda: electra)) as url:
        listed = httpx.get(f"{url}/api/v1/dao/proposals", timeout=30).json()
        assert listed["items"][0]["proposal_id"] == str(pid) and listed["items"][0]["state"] == "active"
        one = httpx.get(f"{url}/api/v1/dao/proposals/{pid}", timeout=30).json()
        assert one["description"] == "Halve the protocol fee" and len(one["calls"]) == 1
        assert httpx.get(f"{url}/api/v1/dao/proposals/12345", timeout=30).json()["code"] == "proposal-unknown"
        params = {p["name"]: p for p in httpx.get(f"{url}/api/v1/dao/parameters", timeout=30).json()}
        assert params["protocol-fee-bps"]["value"] == str(electra.payments.protocol_fee_bps())

        # 1. the holder sends the call it is given
        plan = httpx.get(
            f"{url}/api/v1/dao/proposals/{pid}/vote", params={"support": "for", "voter": holder.address}, timeout=30
        ).json()
        assert plan["has_voted"] is False and int(plan["voting_power"]) > 0
        tx = electra.client.w3.eth.send_transaction(
            {"from": holder.address, "to": plan["call"]["to"], "data": plan["call"]["data"]}
        )
        assert electra.client.w3.eth.wait_for_transaction_receipt(tx)["status"] == 1

        # 2. a signed-in wallet signs the ballot; anyone relays it
        token = sign_in(url, second)
        plan = httpx.get(
            f"{url}/api/v1/dao/proposals/{pid}/vote", params={"support": "against"}, headers=bearer(token), timeout=30
        ).json()
        assert plan["voter"] == second.address and plan["voting_power"] == str(1_000 * 10**18)
        signature = second.sign_message(encode_typed_data(full_message=plan["typed_data"])).signature
        g = dao.governor
        electra.client.transact(g.functions.castVoteBySig(pid, 0, second.address, HexBytes(signature)))
        after = httpx.get(f"{url}/api/v1/dao/proposals/{pid}", timeout=30).json()
        assert after["votes_against"] == str(1_000 * 10**18) and int(after["votes_for"]) > 0
        again = httpx.get(
            f"{url}/api/v1/dao/proposals/{pid}/vote", params={"support": "for"}, headers=bearer(token), timeout=30
        )
        assert again.json()["has_voted"] is True

"""Electra's fast key conversion and CALLRESULT encoding give the same text as the `ocpp` library's
own pipeline, for the answers the handlers give and for any nesting of dataclasses, dicts, lists,
tuples, enums, Decimals and Nones."""

from __future__ import annotations

import decimal
import json
from dataclasses import dataclass
from typing import Any

from hypothesis import example, given
from hypothesis import strategies as st
from ocpp.charge_point import camel_to_snake_case, remove_nones, serialize_as_dict, snake_to_camel_case
from ocpp.messages import Call
from ocpp.v16 import call_result as v16
from ocpp.v16.enums import AuthorizationStatus, RegistrationStatus
from ocpp.v201 import call_result as v201
from ocpp.v201.enums import TransactionEventEnumType

from electra.ocpp.frames import call_result_json, snake_keys


def library_json(unique_id: str, response: Any) -> str:
    payload = snake_to_camel_case(remove_nones(serialize_as_dict(response)))
    return str(Call(unique_id, "Any", {}).create_call_result(payload).to_json())


@dataclass
class Inner:
    reason_code: Any
    additional_info: Any = None


@dataclass
class Outer:
    status: Any
    status_info: Any = None
    evse_id_list: Any = None
    soc_limit_reached: Any = None


KEYS = st.sampled_from(["status", "id_tag_info", "expiry_date", "evse_id", "soc", "ocpp_csms_url", "x_v2x", "a"])
LEAVES = st.one_of(
    st.none(),
    st.text(max_size=8),
    st.integers(-(10**12), 10**12),
    st.booleans(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.decimals(min_value=-1000, max_value=1000, places=3),
    st.sampled_from([AuthorizationStatus.accepted, RegistrationStatus.rejected, TransactionEventEnumType.ended]),
)


def _containers(inner: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(KEYS, inner, max_size=3),
        st.tuples(inner, inner),
        st.builds(Inner, inner, inner),
        st.builds(Outer, inner, inner, inner, inner),
    )


VALUES = st.recursive(LEAVES, _containers, max_leaves=12)


def _outcome(encode: Any, unique_id: str, response: Any) -> str | type[Exception]:
    """The text, or the kind of error (the library cannot encode a dataclass inside a tuple in a
    list: neither can Electra)."""
    try:
        return str(encode(unique_id, response))
    except TypeError as exc:
        return type(exc)


@given(st.builds(Outer, VALUES, VALUES, VALUES, VALUES), st.text(min_size=1, max_size=36))
@example(Outer(None, None, None, [(None, Inner(None))]), "0")
def test_any_answer_encodes_as_the_library_does(response: Outer, unique_id: str) -> None:
    ours, theirs = _outcome(call_result_json, unique_id, response), _outcome(library_json, unique_id, response)
    if theirs is TypeError:  # a shape the library cannot encode (no OCPP answer has it): fail, or a valid CALLRESULT
        assert ours is TypeError or json.loads(str(ours))[:2] == [3, unique_id]
    else:
        assert ours == theirs


def test_the_handlers_answers_encode_as_the_library_does() -> None:
    answers = [
        v16.BootNotification(current_time="2026-03-01T10:00:00Z", interval=300, status=RegistrationStatus.accepted),
        v16.Heartbeat(current_time="2026-03-01T10:00:00Z"),
        v16.StatusNotification(),
        v16.StartTransaction(transaction_id=42, id_tag_info={"status": AuthorizationStatus.accepted}),
        v16.StopTransaction(),
        v16.StopTransaction(id_tag_info={"status": AuthorizationStatus.blocked, "expiry_date": None}),
        v16.DataTransfer(status="Accepted", data="ping"),
        v201.TransactionEvent(id_token_info={"status": "Accepted"}, total_cost=decimal.Decimal("1.25")),
        v201.DataTransfer(status="Accepted", data={"soc_limit": [1, None, {"evse_id": 2}]}),
    ]
    for answer in answers:
        assert call_result_json("id-1", answer) == library_json("id-1", answer)


JSON = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=6)),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(st.sampled_from(["connectorId", "meterValue", "sampledValue", "idTag", "SoC", "x"]), inner),
    ),
    max_leaves=15,
)


@given(JSON)
def test_snake_keys_converts_as_the_library_does(payload: Any) -> None:
    assert snake_keys(payload) == camel_to_snake_case(json.loads(json.dumps(payload)))

"""EIP-4361 messages: parsed strictly, written back byte for byte, their claims and signatures
checked (electra.api.siwe). Pure: no chain, no server."""

from __future__ import annotations

import datetime as dt

import pytest
from eth_account import Account
from eth_account.messages import encode_defunct
from hypothesis import given
from hypothesis import strategies as st

from electra.api import siwe

KEY = Account.from_key("0x" + "11" * 32)
NOW = dt.datetime(2026, 12, 1, 12, 0, tzinfo=dt.UTC)


def message(**kw: object) -> siwe.SiweMessage:
    base: dict[str, object] = {
        "domain": "electra.example",
        "address": KEY.address,
        "uri": "https://electra.example/login",
        "version": "1",
        "chain_id": 31337,
        "nonce": "Abcdefgh12345678",
        "issued_at": NOW,
        "statement": "Sign in to Electra.",
    }
    base.update(kw)
    return siwe.SiweMessage(**base)  # type: ignore[arg-type]


def test_the_eip_4361_example_parses_and_writes_back_the_same_bytes() -> None:
    text = (
        "service.invalid wants you to sign in with your Ethereum account:\n"
        "0xC02aaA39b223FE8D0A0e5C4F27eAD9083C756Cc2\n\n"
        "I accept the ServiceOrg Terms of Service: https://service.invalid/tos\n\n"
        "URI: https://service.invalid/login\n"
        "Version: 1\n"
        "Chain ID: 1\n"
        "Nonce: 32891756\n"
        "Issued At: 2021-09-30T16:25:24Z\n"
        "Resources:\n"
        "- ipfs://bafybeiemxf5abjwjbikoz4mc3a3dla6ual3jsgpdr4cjr3oz3evfyavhwq/\n"
        "- https://example.com/my-web2-claim.json"
    )
    m = siwe.parse(text)
    assert m.domain == "service.invalid" and m.chain_id == 1 and m.nonce == "32891756"
    assert m.statement == "I accept the ServiceOrg Terms of Service: https://service.invalid/tos"
    assert len(m.resources) == 2 and m.text() == text


def test_without_a_statement_both_the_abnf_form_and_the_one_blank_line_form_parse() -> None:
    spec = message(statement=None).text()
    assert "\n\n\nURI: " in spec and siwe.parse(spec).statement is None
    short = spec.replace("\n\n\nURI: ", "\n\nURI: ")
    assert siwe.parse(short).statement is None and siwe.parse(short).nonce == "Abcdefgh12345678"


@pytest.mark.parametrize(
    ("edit", "why"),
    [
        (lambda t: t.replace(KEY.address, KEY.address.lower()), "checksum"),
        (lambda t: t.replace("Version: 1", "Version: 2"), "version"),
        (lambda t: t.replace("Nonce: Abcdefgh12345678", "Nonce: short"), "nonce"),
        (lambda t: t.replace("Issued At: 2026-12-01T12:00:00Z", "Issued At: 2026-12-01 12:00"), "issued-at"),
        (lambda t: t.replace("\n", "\r\n"), "carriage"),
        (lambda t: t + "\nExtra: field", "unexpected"),
        (lambda t: t.replace("Chain ID: 31337\n", ""), "Chain ID"),
        (lambda t: t.replace("Sign in to Electra.", "line\tbreak"), "statement"),
        (lambda t: t.replace(" wants you to sign in", " would like you to sign in"), "first line"),
    ],
)
def test_a_message_that_breaks_the_grammar_is_refused_and_says_where(edit: object, why: str) -> None:
    text = edit(message().text())  # type: ignore[operator]
    with pytest.raises(siwe.SiweRejected) as info:
        siwe.parse(text)
    assert info.value.code == "siwe-malformed" and why.lower() in info.value.cause.lower()


def test_claims_are_checked_against_the_server() -> None:
    ok = siwe.Expected("electra.example", 31337, NOW)
    siwe.check(message(), ok)
    cases = {
        "siwe-domain": (message(domain="evil.example"), ok),
        "siwe-chain": (message(chain_id=1), ok),
        "siwe-time": (message(expiration_time=NOW - dt.timedelta(seconds=1)), ok),
    }
    for code, (m, expected) in cases.items():
        with pytest.raises(siwe.SiweRejected) as info:
            siwe.check(m, expected)
        assert info.value.code == code
    with pytest.raises(siwe.SiweRejected, match="future"):
        siwe.check(message(issued_at=NOW + dt.timedelta(minutes=5)), ok)
    with pytest.raises(siwe.SiweRejected, match="too long ago"):
        siwe.check(message(issued_at=NOW - dt.timedelta(hours=1)), ok)
    with pytest.raises(siwe.SiweRejected, match="URI"):
        siwe.check(message(uri="https://evil.example/login"), ok)


def test_an_eoa_signature_verifies_and_a_stranger_s_does_not() -> None:
    text = message().text()
    good = bytes(KEY.sign_message(encode_defunct(text=text)).signature)
    assert siwe.verify_signature(text, KEY.address, good, None) == "eoa"
    other = bytes(Account.create().sign_message(encode_defunct(text=text)).signature)
    with pytest.raises(siwe.SiweRejected) as info:
        siwe.verify_signature(text, KEY.address, other, None)
    assert info.value.code == "siwe-signature"
    asked: list[tuple[str, bytes]] = []

    def wallet(address: str, digest: bytes, signature: bytes) -> bool:
        asked.append((address, digest))
        return signature == b"\x01" * 70

    assert siwe.verify_signature(text, KEY.address, b"\x01" * 70, wallet) == "erc1271"
    assert asked[0][0] == KEY.address and len(asked[0][1]) == 32


@given(
    statement=st.one_of(st.none(), st.text(alphabet="abcXYZ019 .,:;!?'()*+-_~/@=&$#", max_size=80)),
    nonce=st.text(alphabet="abcdefXYZ0123456789", min_size=8, max_size=40),
    chain_id=st.integers(min_value=1, max_value=2**63),
    request_id=st.one_of(st.none(), st.text(alphabet="abc123-._~:@", max_size=20)),
    resources=st.lists(st.sampled_from(["https://a.example/x", "ipfs://bafy/1", "urn:electra:1"]), max_size=3),
)
def test_any_message_written_is_parsed_back_to_itself(
    statement: str | None, nonce: str, chain_id: int, request_id: str | None, resources: list[str]
) -> None:
    if statement is not None and not statement.strip():
        statement = None  # an empty statement line cannot be told from the blank line around it
    m = message(
        statement=statement,
        nonce=nonce,
        chain_id=chain_id,
        request_id=request_id,
        resources=tuple(resources),
        expiration_time=NOW + dt.timedelta(hours=1),
        not_before=NOW,
    )
    assert siwe.parse(m.text()) == m

"""Sign-In with Ethereum (EIP-4361): the message, parsed strictly, and its signature checked.

Why not a library: PyPI's ``signinwithethereum`` 5.0.2 (its newest) and ``siwe`` 4.4.0 both pin
``web3<8`` and ``eth-account<0.14``, and Electra runs on web3 8 and eth-account 0.14. So the message
is parsed here, line by line after the ABNF of EIP-4361, and the signature is checked with
eth_account (EIP-191 ``personal_sign``); a contract wallet's signature goes to its EIP-1271
``isValidSignature`` through the ``erc1271`` callback the caller gives.

The one leniency: without a statement the ABNF asks for two empty lines after the address; the
form with one empty line (what viem's ``createSiweMessage`` writes) is taken too. Everything else
(line order, field names, the address's EIP-55 checksum, an RFC 3339 time with its offset, a nonce
of at least 8 letters and digits) must be exact.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from dataclasses import dataclass, field

from eth_account import Account
from eth_account.messages import defunct_hash_message, encode_defunct
from eth_utils.address import is_checksum_address

from electra.errors import InvalidInput

PREAMBLE = " wants you to sign in with your Ethereum account:"
MAX_MESSAGE_CHARS = 4_096
MAX_RESOURCES = 32
ERC1271_MAGIC = bytes.fromhex("1626ba7e")

_SCHEME = r"[A-Za-z][A-Za-z0-9+\-.]*"
_AUTHORITY = r"[A-Za-z0-9\-._~%!$&'()*+,;=:@\[\]]+"
_HEADER = re.compile(rf"^(?:(?P<scheme>{_SCHEME})://)?(?P<domain>{_AUTHORITY}){re.escape(PREAMBLE)}$")
_ADDRESS = re.compile(r"^0x[0-9a-fA-F]{40}$")
_STATEMENT = re.compile(r"^[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;= ]*$")
_URI = re.compile(rf"^{_SCHEME}:[^\s]+$")
_NONCE = re.compile(r"^[A-Za-z0-9]{8,64}$")
_CHAIN_ID = re.compile(r"^[1-9][0-9]{0,19}$")
_PCHAR = re.compile(r"^(?:[A-Za-z0-9\-._~!$&'()*+,;=:@]|%[0-9A-Fa-f]{2})*$")
_DATE_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?(?:[Zz]|[+-]\d{2}:\d{2})$")


class SiweRejected(InvalidInput):
    """A sign-in that does not hold. ``code`` says why, for the API's problem document."""

    def __init__(self, code: str, cause: str, fix: str | None = None) -> None:
        super().__init__(cause, fix)
        self.code = code


@dataclass(frozen=True)
class SiweMessage:
    domain: str
    address: str
    uri: str
    version: str
    chain_id: int
    nonce: str
    issued_at: dt.datetime
    scheme: str | None = None
    statement: str | None = None
    expiration_time: dt.datetime | None = None
    not_before: dt.datetime | None = None
    request_id: str | None = None
    resources: tuple[str, ...] = field(default_factory=tuple)

    def text(self) -> str:
        """The message as EIP-4361 writes it (the form a wallet signs)."""
        head = f"{self.scheme}://{self.domain}" if self.scheme else self.domain
        lines = [head + PREAMBLE, self.address, ""]
        if self.statement is not None:
            lines.append(self.statement)
        lines += [
            "",
            f"URI: {self.uri}",
            f"Version: {self.version}",
            f"Chain ID: {self.chain_id}",
            f"Nonce: {self.nonce}",
            f"Issued At: {_iso(self.issued_at)}",
        ]
        if self.expiration_time is not None:
            lines.append(f"Expiration Time: {_iso(self.expiration_time)}")
        if self.not_before is not None:
            lines.append(f"Not Before: {_iso(self.not_before)}")
        if self.request_id is not None:
            lines.append(f"Request ID: {self.request_id}")
        if self.resources:
            lines.append("Resources:")
            lines += [f"- {r}" for r in self.resources]
        return "\n".join(lines)


def _iso(t: dt.datetime) -> str:
    return t.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def _time(text: str, what: str) -> dt.datetime:
    if not _DATE_TIME.match(text):
        raise SiweRejected(
            "siwe-malformed", f"{what} {text!r} is not an RFC 3339 date-time", "e.g. 2026-01-01T12:00:00Z"
        )
    try:
        return dt.datetime.fromisoformat(text.upper().replace("Z", "+00:00"))
    except ValueError as exc:
        raise SiweRejected("siwe-malformed", f"{what} {text!r} is not a valid date-time") from exc


def _malformed(cause: str) -> SiweRejected:
    return SiweRejected("siwe-malformed", cause, "send the EIP-4361 message exactly as the wallet signed it")


def parse(message: str) -> SiweMessage:
    """The EIP-4361 message, or SiweRejected (code ``siwe-malformed``) naming the first broken line."""
    if len(message) > MAX_MESSAGE_CHARS:
        raise _malformed(f"a sign-in message of {len(message)} characters (at most {MAX_MESSAGE_CHARS})")
    if "\r" in message:
        raise _malformed("the message has carriage returns; EIP-4361 lines end with LF only")
    lines = message.split("\n")
    pos = 0

    def take() -> str:
        nonlocal pos
        if pos >= len(lines):
            raise _malformed("the message ends early")
        line = lines[pos]
        pos += 1
        return line

    head = _HEADER.match(take())
    if head is None:
        raise _malformed(f"the first line must be '<domain>{PREAMBLE}'")
    address = take()
    if not _ADDRESS.match(address):
        raise _malformed(f"line 2 must be a 0x address, not {address[:50]!r}")
    if not is_checksum_address(address):
        raise _malformed("the address is not in its EIP-55 checksum form")
    if take() != "":
        raise _malformed("line 3 must be empty")
    statement: str | None = None
    nxt = take()
    if nxt.startswith("URI: "):
        pos -= 1  # one empty line and no statement (viem's form)
    elif nxt == "":
        if pos < len(lines) and not lines[pos].startswith("URI: "):
            raise _malformed("after two empty lines the URI must follow")
    else:
        if not _STATEMENT.match(nxt):
            raise _malformed("the statement holds characters EIP-4361 does not allow (or a line break)")
        statement = nxt
        if take() != "":
            raise _malformed("an empty line must follow the statement")

    def field_line(name: str) -> str:
        line = take()
        prefix = f"{name}: "
        if not line.startswith(prefix):
            raise _malformed(f"expected the '{name}:' line, got {line[:40]!r}")
        return line[len(prefix) :]

    uri = field_line("URI")
    if not _URI.match(uri):
        raise _malformed(f"URI {uri[:80]!r} is not an RFC 3986 URI")
    version = field_line("Version")
    if version != "1":
        raise _malformed(f"version {version!r}; EIP-4361 messages are version 1")
    chain_text = field_line("Chain ID")
    if not _CHAIN_ID.match(chain_text):
        raise _malformed(f"chain id {chain_text!r} is not a decimal number")
    nonce = field_line("Nonce")
    if not _NONCE.match(nonce):
        raise _malformed("the nonce must be 8 to 64 letters and digits")
    issued_at = _time(field_line("Issued At"), "issued-at")
    optional: dict[str, str] = {}
    resources: list[str] = []
    for name in ("Expiration Time", "Not Before", "Request ID"):
        if pos < len(lines) and lines[pos].startswith(f"{name}: "):
            optional[name] = field_line(name)
    if pos < len(lines) and lines[pos] == "Resources:":
        pos += 1
        while pos < len(lines) and lines[pos].startswith("- "):
            resource = lines[pos][2:]
            if not _URI.match(resource):
                raise _malformed(f"resource {resource[:80]!r} is not a URI")
            resources.append(resource)
            pos += 1
        if len(resources) > MAX_RESOURCES:
            raise _malformed(f"{len(resources)} resources, at most {MAX_RESOURCES}")
    if pos != len(lines):
        raise _malformed(f"unexpected text on line {pos + 1}: {lines[pos][:40]!r}")
    request_id = optional.get("Request ID")
    if request_id is not None and not _PCHAR.match(request_id):
        raise _malformed("the request id holds characters outside RFC 3986 pchar")
    return SiweMessage(
        domain=head["domain"],
        address=address,
        uri=uri,
        version=version,
        chain_id=int(chain_text),
        nonce=nonce,
        issued_at=issued_at,
        scheme=head["scheme"],
        statement=statement,
        expiration_time=_time(optional["Expiration Time"], "expiration-time")
        if "Expiration Time" in optional
        else None,
        not_before=_time(optional["Not Before"], "not-before") if "Not Before" in optional else None,
        request_id=request_id,
        resources=tuple(resources),
    )


def signature_bytes(signature: str) -> bytes:
    text = signature.strip()
    if not text.startswith("0x"):
        raise SiweRejected("siwe-malformed", "the signature must be 0x-prefixed hex")
    try:
        raw = bytes.fromhex(text[2:])
    except ValueError as exc:
        raise SiweRejected("siwe-malformed", "the signature is not hex") from exc
    if not 1 <= len(raw) <= 4_096:
        raise SiweRejected("siwe-malformed", f"a signature of {len(raw)} bytes")
    return raw


@dataclass(frozen=True)
class Expected:
    """What the server requires of a message: its own domain, the chain it runs on, and the time."""

    domain: str
    chain_id: int
    now: dt.datetime
    max_age_s: int = 600  # how old issued-at may be (the nonce's lifetime bounds it anyway)
    skew_s: int = 60  # clocks differ: issued-at a little in the future is fine


def check(msg: SiweMessage, expected: Expected) -> None:
    """The message's claims against what the server expects (not the signature, not the nonce)."""
    if msg.domain.lower() != expected.domain.lower():
        raise SiweRejected(
            "siwe-domain", f"the message is for {msg.domain!r}, this server is {expected.domain!r}", "sign in here"
        )
    uri_host = re.sub(rf"^{_SCHEME}://", "", msg.uri).split("/", 1)[0].split("?", 1)[0].split("#", 1)[0]
    if uri_host.lower() != expected.domain.lower():
        raise SiweRejected("siwe-domain", f"the message's URI {msg.uri!r} is not on {expected.domain!r}")
    if msg.chain_id != expected.chain_id:
        raise SiweRejected(
            "siwe-chain", f"the message is for chain id {msg.chain_id}, the platform runs on {expected.chain_id}"
        )
    now = expected.now
    if msg.issued_at > now + dt.timedelta(seconds=expected.skew_s):
        raise SiweRejected("siwe-time", "the message was issued in the future", "check the wallet's clock")
    if msg.issued_at < now - dt.timedelta(seconds=expected.max_age_s):
        raise SiweRejected("siwe-time", "the message was issued too long ago", "ask for a new nonce and sign again")
    if msg.expiration_time is not None and msg.expiration_time <= now:
        raise SiweRejected("siwe-time", "the message has expired", "sign a new one")
    if msg.not_before is not None and msg.not_before > now + dt.timedelta(seconds=expected.skew_s):
        raise SiweRejected("siwe-time", "the message is not valid yet (not-before)", "sign again later")


def verify_signature(
    message: str, address: str, signature: bytes, erc1271: Callable[[str, bytes, bytes], bool] | None
) -> str:
    """Who signed: ``eoa`` when the key of ``address`` did (EIP-191), ``erc1271`` when the contract at
    ``address`` accepts the signature; else SiweRejected ``siwe-signature``."""
    signable = encode_defunct(text=message)
    if len(signature) == 65:
        try:
            recovered = str(Account.recover_message(signable, signature=signature))
        except Exception:  # noqa: BLE001 - eth_account raises several types for a malformed signature
            recovered = ""
        if recovered == address:
            return "eoa"
    if erc1271 is not None and erc1271(address, bytes(defunct_hash_message(text=message)), signature):
        return "erc1271"
    raise SiweRejected(
        "siwe-signature",
        f"the signature is not {address}'s",
        "sign the message with that account's key (a contract wallet must accept it under EIP-1271)",
    )

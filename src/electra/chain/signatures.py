"""Checking a device's EIP-712 signature off-chain, as strictly as the contracts do on-chain.

The contracts take a 65-byte ``(r, s, v)`` ECDSA signature only with ``s`` in the lower half of the
curve order (OpenZeppelin's ECDSA and PaymentHub's own recovery both refuse ``s > n/2``): for every
valid signature ``(r, s, v)`` there is a twin ``(r, n - s, v ^ 1)`` of the same key over the same
digest, and accepting both would let anyone mint a second, different signature of a message that
was signed once. ``eth_account`` recovers either twin, so a check that relies on it alone would
accept a signature the chain then refuses (an authorization the platform let a car charge on,
rejected at settlement). :func:`recover` refuses it here first.

The domain (chain id and verifying contract) is part of the digest, so a signature made for another
chain or another contract recovers to some other address and fails the signer check; the checks
below also compare the message's nonce and deadline with the chain's, before anything is sent.
"""

from __future__ import annotations

from typing import Any

from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_keys.exceptions import BadSignature, ValidationError

from electra.errors import InvalidInput

SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
HALF_N = SECP256K1_N // 2


def split(signature: bytes) -> tuple[int, int, int]:
    """(r, s, v) of a 65-byte signature, refusing every form the contracts refuse."""
    if len(signature) != 65:
        raise InvalidInput(f"a signature is 65 bytes (r, s, v), not {len(signature)}", "sign with an ECDSA key")
    r, s, v = int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:64], "big"), signature[64]
    if v not in (27, 28):
        raise InvalidInput(f"signature v is {v}, not 27 or 28", "sign with an Ethereum ECDSA key")
    if not 0 < r < SECP256K1_N or not 0 < s < SECP256K1_N:
        raise InvalidInput("signature r or s is out of range", "sign again")
    if s > HALF_N:
        raise InvalidInput(
            "the signature is malleable (s is in the upper half of the curve order)",
            "sign with a library that produces low-s signatures (any EIP-2 signer does)",
        )
    return r, s, v


def high_s_twin(signature: bytes) -> bytes:
    """The other valid signature of the same key over the same digest: (r, n - s, v ^ 1)."""
    r, s, v = signature[:32], int.from_bytes(signature[32:64], "big"), signature[64]
    return r + (SECP256K1_N - s).to_bytes(32, "big") + bytes([55 - v])


def recover(typed: dict[str, Any], signature: bytes) -> str:
    """The address that signed ``typed`` (EIP-712), refusing malformed and malleable signatures."""
    split(signature)
    try:
        return str(Account.recover_message(encode_typed_data(full_message=typed), signature=signature))
    except (BadSignature, ValidationError, ValueError) as exc:
        raise InvalidInput(f"the signature does not recover: {exc}", "sign again") from exc


def check_signed_by(typed: dict[str, Any], signature: bytes, signers: list[str], what: str) -> str:
    """The recovered signer if it is one of ``signers``; InvalidInput naming ``what`` otherwise."""
    signer = recover(typed, signature)
    if signer.lower() not in {s.lower() for s in signers}:
        raise InvalidInput(
            f"{what} is not signed by {' or '.join(signers)} (it recovers to {signer}; another key, or a signature "
            "made for another chain or contract)",
            "sign it with the right key for this chain's contract",
        )
    return signer


def check_fresh(deadline: int, nonce: int, chain_time: int, expected_nonce: int, what: str) -> None:
    """A deadline still ahead of the chain's clock and the nonce the contract expects next."""
    if deadline < chain_time:
        raise InvalidInput(f"{what} expired at {deadline} (chain time {chain_time})", "sign a new one")
    if nonce != expected_nonce:
        raise InvalidInput(
            f"{what} carries nonce {nonce}, the contract expects {expected_nonce} (a replay, or signed too early)",
            f"sign with nonce {expected_nonce}",
        )

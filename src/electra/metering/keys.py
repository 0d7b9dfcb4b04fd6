"""Meter public keys: parsed once, then used for every signature a meter sends.

OCMF names its signature algorithm in ``SA`` (``ECDSA-<curve>-<hash>``). Electra verifies every
algorithm of the OCMF specification that OpenSSL (through ``cryptography``) knows, with SHA-256 or
SHA-512: secp256k1, secp192r1, secp256r1 (NIST P-256, the usual Eichrecht meter key), secp384r1,
secp521r1, brainpoolP256r1 (``brainpool256r1`` and ``brainpoolP256r1`` in SA) and brainpoolP384r1
(``brainpool384r1``). secp192k1, which OpenSSL lacks, is refused.

secp256k1 with SHA-256 (the charger's own Ethereum device key) is checked with libsecp256k1
(coincurve): about 26 us per signature where OpenSSL's generic code takes about 257 us. libsecp256k1
only accepts the lower of the two equivalent ``s`` values, so a signature is normalised first;
OpenSSL and every OCMF verifier accept both, and so does Electra.

A key is given as DER SubjectPublicKeyInfo (bytes, hex or base64), PEM, or a bare SEC1 point
(33 or 65 bytes) or X||Y (64 bytes) on a curve that is named (secp256k1 when none is).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass, field

import coincurve
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak

from electra.errors import InvalidInput

SECP256K1 = "secp256k1"
SECP256R1 = "secp256r1"
# OpenSSL's curve name -> the curve. The names are the ones cryptography reports (key.curve.name).
CURVES: dict[str, type[ec.EllipticCurve]] = {
    SECP256K1: ec.SECP256K1,
    "secp192r1": ec.SECP192R1,
    SECP256R1: ec.SECP256R1,
    "secp384r1": ec.SECP384R1,
    "secp521r1": ec.SECP521R1,
    "brainpoolP256r1": ec.BrainpoolP256R1,
    "brainpoolP384r1": ec.BrainpoolP384R1,
}
# The curve as OCMF's SA spells it, where that differs from OpenSSL's name.
_SA_CURVE = {"brainpool256r1": "brainpoolP256r1", "brainpool384r1": "brainpoolP384r1"}
_SA_NAME = {"brainpoolP384r1": "brainpool384r1"}  # OCMF has no "brainpoolP384r1"
_HASHES: dict[str, type[hashes.HashAlgorithm]] = {"SHA256": hashes.SHA256, "SHA512": hashes.SHA512}
_SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141


class MeterKeyError(InvalidInput):
    """A public key or a signature algorithm Electra cannot use to check meter data."""


def algorithm(curve: str, hash_name: str = "SHA256") -> str:
    """The OCMF ``SA`` for a curve (OpenSSL's name) and hash: ``ECDSA-secp256r1-SHA256``."""
    if curve not in CURVES or hash_name not in _HASHES:
        raise MeterKeyError(f"no OCMF algorithm for {curve} with {hash_name}", f"use one of {', '.join(CURVES)}")
    return f"ECDSA-{_SA_NAME.get(curve, curve)}-{hash_name}"


def parse_algorithm(sa: str) -> tuple[str, str]:
    """(curve, hash) of an OCMF ``SA``; refuses algorithms Electra does not verify."""
    parts = sa.split("-")
    if len(parts) != 3 or parts[0] != "ECDSA":
        raise MeterKeyError(f"signature algorithm {sa!r} is not ECDSA-<curve>-<hash>", "sign with ECDSA")
    curve = _SA_CURVE.get(parts[1], parts[1])
    if curve not in CURVES or parts[2] not in _HASHES:
        raise MeterKeyError(
            f"signature algorithm {sa!r} is not one Electra verifies",
            f"use ECDSA on {', '.join(CURVES)} with SHA256 or SHA512",
        )
    return curve, parts[2]


# Every SA value verified, as OCMF spells them.
SUPPORTED_ALGORITHMS = tuple(
    sorted({f"ECDSA-{c}-{h}" for c in (*(_SA_NAME.get(k, k) for k in CURVES), *_SA_CURVE) for h in _HASHES})
)


@dataclass(frozen=True, eq=False)
class MeterKey:
    """A parsed meter public key. Build it once per charger (:meth:`load`) and keep it."""

    der: bytes  # DER SubjectPublicKeyInfo
    curve: str
    _key: ec.EllipticCurvePublicKey = field(repr=False)
    _k1: coincurve.PublicKey | None = field(default=None, repr=False)

    @classmethod
    def load(cls, key: bytes | str, curve: str | None = None) -> MeterKey:
        raw = _key_bytes(key)
        try:
            if raw[:1] == b"\x30":
                loaded = serialization.load_der_public_key(raw)
            elif raw.startswith(b"-----BEGIN"):
                loaded = serialization.load_pem_public_key(raw)
            else:
                name = curve or SECP256K1
                if name not in CURVES:
                    raise MeterKeyError(f"unknown curve {name!r}", f"use one of {', '.join(CURVES)}")
                size = (CURVES[name]().key_size + 7) // 8
                if len(raw) == 2 * size:
                    raw = b"\x04" + raw
                loaded = ec.EllipticCurvePublicKey.from_encoded_point(CURVES[name](), raw)
        except (ValueError, UnsupportedAlgorithm) as exc:
            raise MeterKeyError(
                f"not a usable public key ({exc})", "give a DER SubjectPublicKeyInfo (hex or base64), PEM or SEC1"
            ) from exc
        if not isinstance(loaded, ec.EllipticCurvePublicKey):
            raise MeterKeyError("the public key is not an elliptic-curve key", "OCMF signs with ECDSA")
        name = loaded.curve.name
        if name not in CURVES:
            raise MeterKeyError(f"the public key is on {name}, which Electra does not verify", "use secp256r1")
        if curve is not None and curve != name:
            raise MeterKeyError(f"the public key is on {name}, not on {curve}", "give the key of the named curve")
        der = loaded.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        k1 = None
        if name == SECP256K1:
            k1 = coincurve.PublicKey(
                loaded.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.CompressedPoint)
            )
        return cls(der, name, loaded, k1)

    @property
    def hex(self) -> str:
        return self.der.hex()

    @property
    def address(self) -> str | None:
        """The Ethereum address of a secp256k1 key (keccak-256 of X||Y, last 20 bytes); None on other curves."""
        if self.curve != SECP256K1:
            return None
        point = self._key.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
        return str(to_checksum_address(keccak(point[1:])[-20:]))

    def same_as(self, other: MeterKey) -> bool:
        return self.der == other.der

    def verify(self, signature: bytes, payload: bytes, sa: str) -> bool:
        """Whether ``signature`` (DER) signs ``payload`` under this key with OCMF algorithm ``sa``.

        Raises :class:`MeterKeyError` when ``sa`` is not an algorithm for this key's curve.
        """
        curve, hash_name = parse_algorithm(sa)
        if curve != self.curve:
            raise MeterKeyError(
                f"the record is signed with {sa} but the registered key is on {self.curve}",
                "the meter must sign with its registered key",
            )
        if self._k1 is not None and hash_name == "SHA256":
            return _verify_k1(self._k1, signature, payload)
        try:
            self._key.verify(signature, payload, ec.ECDSA(_HASHES[hash_name]()))
        except InvalidSignature:
            return False
        except ValueError:  # not DER, or r/s out of range: not a signature of anything
            return False
        return True


def _verify_k1(key: coincurve.PublicKey, signature: bytes, payload: bytes) -> bool:
    try:
        r, s = decode_dss_signature(signature)
    except ValueError:
        return False
    if not (0 < r < _SECP256K1_N and 0 < s < _SECP256K1_N):
        return False
    if s > _SECP256K1_N // 2:
        signature = encode_dss_signature(r, _SECP256K1_N - s)
    try:
        return bool(key.verify(signature, payload))
    except ValueError:
        return False


def recover_secp256k1(signature: bytes, payload: bytes) -> list[MeterKey]:
    """The secp256k1 keys (at most two) under which ``signature`` (DER, ECDSA with SHA-256) signs
    ``payload``: how a charger's device key is found from a record that came without its key (1.6)."""
    try:
        r, s = decode_dss_signature(signature)
    except ValueError:
        return []
    if not (0 < r < _SECP256K1_N and 0 < s < _SECP256K1_N):
        return []
    s = min(s, _SECP256K1_N - s)
    found = []
    for v in (0, 1):
        compact = r.to_bytes(32, "big") + s.to_bytes(32, "big") + bytes([v])
        try:
            point = coincurve.PublicKey.from_signature_and_message(compact, payload, hasher=_sha256)
        except ValueError:
            continue
        found.append(MeterKey.load(point.format(compressed=False)))
    return found


def _sha256(message: bytes) -> bytes:
    return hashlib.sha256(message).digest()


def _key_bytes(key: bytes | str) -> bytes:
    if isinstance(key, bytes):
        return key
    text = key.strip()
    if text.startswith("-----BEGIN"):
        return text.encode()
    try:
        return bytes.fromhex(text.removeprefix("0x"))
    except ValueError:
        return _base64_key(text)  # not hex: base64 is the other encoding OCPP 2.0.1 and OCMF use


def _base64_key(text: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise MeterKeyError("the public key is neither hex nor base64", "give the key as hex or base64 DER") from exc

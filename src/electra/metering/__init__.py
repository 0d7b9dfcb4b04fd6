"""Signed meter values: OCMF records built and verified with the charger's device key."""

from electra.metering.ocmf import (
    Identification,
    OcmfError,
    OcmfReading,
    OcmfRecord,
    OcmfSignatureInvalid,
    OcmfSigner,
    build_ocmf,
    ethereum_address,
    format_kwh,
    ocmf_time,
    parse_kwh,
    parse_ocmf,
    public_key_der,
    verify_ocmf,
)

__all__ = [
    "Identification",
    "OcmfError",
    "OcmfReading",
    "OcmfRecord",
    "OcmfSignatureInvalid",
    "OcmfSigner",
    "build_ocmf",
    "ethereum_address",
    "format_kwh",
    "ocmf_time",
    "parse_kwh",
    "parse_ocmf",
    "public_key_der",
    "verify_ocmf",
]

"""Builds the central system from settings: the store, the charger directory on the chain, auth, TLS
and the control token. Used by `electra csms` and `electra up`."""

from __future__ import annotations

from electra.chain.bindings import Electra
from electra.config import Settings
from electra.ocpp.control import load_or_create_token
from electra.ocpp.directory import ChainChargerDirectory
from electra.ocpp.gateway import CentralSystem, CsmsStore, GcPolicy, load_tls


def central_system(settings: Settings, electra: Electra, port: int | None = None) -> CentralSystem:
    tls = None
    if settings.ocpp_tls_cert is not None or settings.ocpp_tls_key is not None:
        if settings.ocpp_tls_cert is None or settings.ocpp_tls_key is None:
            from electra.errors import ConfigError

            raise ConfigError("TLS needs both a certificate and a key", "set ELECTRA_OCPP_TLS_CERT and _KEY")
        tls = load_tls(str(settings.ocpp_tls_cert), str(settings.ocpp_tls_key))
    profile = settings.ocpp_security_profile
    if tls is not None and profile == 1:
        profile = 2  # Basic auth over TLS
    token = (
        settings.control_token.get_secret_value()
        if settings.control_token is not None
        else load_or_create_token(settings.control_token_file)
    )
    return CentralSystem(
        ChainChargerDirectory(electra.stations),
        CsmsStore.open(settings.effective_db_url, meter_signing=settings.meter_signing),
        host=settings.csms_host,
        port=settings.csms_port if port is None else port,
        security_profile=profile,
        ssl_context=tls,
        control_token=token,
        heartbeat_interval_s=settings.ocpp_heartbeat_s,
        gc_policy=GcPolicy(),
    )

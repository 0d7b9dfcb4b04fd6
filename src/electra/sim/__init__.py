"""Simulators: OCPP 1.6J and 2.0.1 chargers, vehicles, fleets and their scenarios.

The demo, the tests and the benchmarks all drive the platform through these. Time runs on a
:class:`SimClock` so an hour of charging can take a minute. See docs/simulator.md.
"""

from electra.sim.base import ChargerIdentity, ChargerOffline, MeterFault, SimCharger, SimTransaction
from electra.sim.charger import SimChargerV16, SimChargerV201, make_charger
from electra.sim.clock import SimClock

__all__ = [
    "ChargerIdentity",
    "ChargerOffline",
    "MeterFault",
    "SimCharger",
    "SimChargerV16",
    "SimChargerV201",
    "SimClock",
    "SimTransaction",
    "make_charger",
]

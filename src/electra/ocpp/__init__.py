"""The OCPP-J central system. Handlers turn OCPP calls into domain decisions; the domain never
imports `ocpp` or `websockets` (they stay at this edge)."""

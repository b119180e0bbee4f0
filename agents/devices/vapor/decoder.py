"""Gas-station vapor-recovery monitors: the Lantian profile on HJ 212 framing
(vapor_profile.csv). CN=2011 is one refuelling, keyed by the CP key ``Nozzle``; CN=2051 is the
station minute record (tank pressure, zero-pressure alarm), with an empty key."""

from __future__ import annotations

from agents.devices.base import HJ212Family


class VaporFamily(HJ212Family):
    name = "vapor"
    stream = "vapor"


FAMILY = VaporFamily()

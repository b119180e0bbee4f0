"""Vehicle remote-sensing units: the Lantian profile on HJ 212 framing (rsd_profile.csv).
CN=2011 is one vehicle pass, keyed by the CP key ``PassId``; the plate is UTF-8 text."""

from __future__ import annotations

from agents.devices.base import HJ212Family


class RsdFamily(HJ212Family):
    name = "rsd"
    stream = "rsd"


FAMILY = RsdFamily()

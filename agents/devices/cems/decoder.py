"""CEMS on stacks (HJ 75/76-2017): HJ 212 ST=31. 2005-edition loggers send 2005 codes
(``01`` particulate, ``S01`` O2 ...): they are mapped to 2017 codes from hj212_codes.csv."""

from __future__ import annotations

from agents.devices.base import HJ212Family


class CemsFamily(HJ212Family):
    name = "cems"
    stream = "cems"


FAMILY = CemsFamily()

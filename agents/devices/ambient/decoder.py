"""Ambient micro-stations: HJ 212 ST=22, six AQI pollutants plus weather. Vendors that send
names such as ``O3`` or ``PM2.5`` instead of codes are mapped by device_code_aliases.csv."""

from __future__ import annotations

from agents.devices.base import HJ212Family


class AmbientFamily(HJ212Family):
    name = "ambient"
    stream = "ambient"


FAMILY = AmbientFamily()

"""The vapor device family: ``decoder`` turns frames into readings, ``simulator`` makes frames."""

from agents.devices.vapor.decoder import FAMILY, VaporFamily

__all__ = ["FAMILY", "VaporFamily"]

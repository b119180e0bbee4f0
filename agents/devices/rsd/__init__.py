"""The rsd device family: ``decoder`` turns frames into readings, ``simulator`` makes frames."""

from agents.devices.rsd.decoder import FAMILY, RsdFamily

__all__ = ["FAMILY", "RsdFamily"]

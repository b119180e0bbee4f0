"""The cems device family: ``decoder`` turns frames into readings, ``simulator`` makes frames."""

from agents.devices.cems.decoder import FAMILY, CemsFamily

__all__ = ["FAMILY", "CemsFamily"]

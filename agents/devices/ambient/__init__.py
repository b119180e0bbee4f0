"""The ambient device family: ``decoder`` turns frames into readings, ``simulator`` makes frames."""

from agents.devices.ambient.decoder import FAMILY, AmbientFamily

__all__ = ["FAMILY", "AmbientFamily"]

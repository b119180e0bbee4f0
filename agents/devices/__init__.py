"""Device families behind one interface (``agents.devices.base.DeviceFamily``).

``get_family("cems")`` returns the family object whose ``decode(frame, device, received_at)`` the
agent calls for every frame read from a port configured with that family.
"""

from __future__ import annotations

import importlib

from agents.devices.base import (
    DecodeError,
    DeviceFamily,
    MissingFieldError,
    UnexpectedFrameError,
)

FAMILIES: tuple[str, ...] = ("cems", "ambient", "vapor", "rsd")


class UnknownFamilyError(KeyError):
    """A device configured with a family Lantian does not know."""

    def __str__(self) -> str:  # KeyError would quote the whole message
        return str(self.args[0])


def get_family(name: str) -> DeviceFamily:
    """The family registered under ``name``; an unknown name is an error listing the families."""
    if name not in FAMILIES:
        raise UnknownFamilyError(
            f"unknown device family {name!r}; known families: {', '.join(FAMILIES)}"
        )
    module = importlib.import_module(f"agents.devices.{name}.decoder")
    return module.FAMILY


__all__ = [
    "FAMILIES",
    "DecodeError",
    "DeviceFamily",
    "MissingFieldError",
    "UnexpectedFrameError",
    "UnknownFamilyError",
    "get_family",
]

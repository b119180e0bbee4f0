"""Lantian central side: the `lantian` command and the demo that wires the whole path together."""

__version__ = "0.1.0"

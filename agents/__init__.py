"""Lantian field agent: reads devices, buffers readings, uploads them signed."""

__version__ = "0.1.0"

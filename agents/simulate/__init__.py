"""The simulated district: scenario, truth, the serial line's noise, a pty writer and the CLI.

``from agents.simulate import build_scenario`` is the entry point; see scenario.py.
"""

from __future__ import annotations


def build_scenario(*args, **kwargs):
    """Lazy alias of ``agents.simulate.scenario.build_scenario`` (keeps the CLI import light)."""
    from agents.simulate.scenario import build_scenario as build

    return build(*args, **kwargs)


__all__ = ["build_scenario"]

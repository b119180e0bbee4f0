"""The agent's version string, robust to how the package was installed.

``agents/__init__.py`` holds ``__version__``; an editable install made before that file existed
imports ``agents`` as a namespace package (no ``__version__``), so fall back to the distribution's
metadata rather than fail at start-up.
"""

from __future__ import annotations


def agent_version() -> str:
    try:
        from agents import __version__

        return str(__version__)
    except ImportError:
        pass
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("lantian")
    except PackageNotFoundError:
        return "0+unknown"


VERSION = agent_version()

"""One GX context for the whole test session: building it costs seconds, a validation far less."""

from __future__ import annotations

import pytest

from schemas.validation_rules import load_rules
from tests.validation.frames import devices


@pytest.fixture(scope="session")
def gx_context():
    from validation.context import ValidationContext

    return ValidationContext()


@pytest.fixture(scope="session")
def rules():
    return load_rules()


@pytest.fixture(scope="session")
def registry():
    return {
        "devices": devices(
            [
                ("CEMS001", "cems", "2017-10-01"),
                ("CEMS002", "cems", "2017-10-01"),
                ("AMB001", "ambient", "2017-10-01"),
                ("VAP001", "vapor", "2017-10-01"),
                ("RSD001", "rsd", "2017-10-01"),
            ]
        )
    }


@pytest.fixture(scope="session")
def validate(gx_context, registry):
    """validate(stream, frame, **kw) through the session's context."""
    from tests.validation.frames import DAY
    from validation.run import validate_partition

    def run(stream, frame, reg=None, day=DAY, **kw):
        return validate_partition(
            stream,
            frame,
            registry if reg is None else reg,
            run_id="test-run",
            day=day,
            context=gx_context,
            **kw,
        )

    return run

"""The hand-built report data as a fixture (frames in report_frames.py)."""

from __future__ import annotations

import pytest

from reports.data import ReportData
from tests.reports.report_frames import hand_report_data


@pytest.fixture
def hand_data() -> ReportData:
    return hand_report_data()

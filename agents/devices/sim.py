"""What the family simulators share: the emitted record, the device spec, the device's clock, and
the frame writer.

Simulators are deterministic: every random draw comes from a ``random.Random`` seeded with a
string naming the scenario seed, the device and the day (never the global generator, never the
wall clock), so one device-day can be regenerated alone and comes out byte for byte the same.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from agents.hj212 import build_cp, build_frame
from schemas.reading import BEIJING

MINUTE = timedelta(minutes=1)
DAY_SECONDS = 86400.0


@dataclass(frozen=True, slots=True)
class Emission:
    """One frame a simulated device puts on its line.

    ``at`` is the true Beijing instant it is sent; ``data_time`` is what the device's (possibly
    wrong) clock wrote into it. ``values`` are the CP values under their HJ 212-2017 codes (what a
    decoder must produce), ``reading`` is False for frames that are not readings (a 2081 restart
    notice), ``protected`` marks planted evidence that line noise must not destroy, ``tag`` names
    the planted behaviour the record belongs to.
    """

    at: datetime
    cn: str
    data_time: str
    key: str
    frame: bytes
    values: Mapping[str, Mapping[str, str]]
    reading: bool = True
    protected: bool = False
    tag: str = ""


@dataclass(frozen=True)
class DeviceSpec:
    """How one simulated device speaks: identity, password, CRC mode and HJ 212 edition.

    ``code_names`` renames 2017 codes on the wire (a 2005 logger's ``02``, a vendor's ``O3``).
    """

    device_id: str
    family: str
    st: str
    pw: str = "123456"
    crc_mode: str = "standard"
    edition: int = 2017
    code_names: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class DeviceClock:
    """The device's clock: true time plus a linear drift and forward jumps.

    ``drift_s_per_day`` seconds gained per day since ``drift_from``; each jump ``(at, seconds)``
    moves the clock forward by ``seconds`` at true instant ``at``. Only forward jumps are modelled:
    a backward jump would make the device repeat data times, i.e. send different values under
    the same reading id.
    """

    drift_s_per_day: float = 0.0
    drift_from: datetime | None = None
    jumps: tuple[tuple[datetime, float], ...] = ()

    def __post_init__(self) -> None:
        for _, seconds in self.jumps:
            if seconds <= 0:
                raise ValueError("only forward clock jumps are simulated")

    @property
    def is_true(self) -> bool:
        return not self.drift_s_per_day and not self.jumps

    def offset_s(self, true: datetime) -> float:
        """Device clock minus true time, in seconds, at true instant ``true``."""
        offset = 0.0
        if self.drift_s_per_day and self.drift_from is not None and true > self.drift_from:
            offset += self.drift_s_per_day * (true - self.drift_from).total_seconds() / DAY_SECONDS
        for at, seconds in self.jumps:
            if true >= at:
                offset += seconds
        return offset

    def to_true(self, device: datetime) -> datetime | None:
        """The true instant the device clock shows ``device``; None when a jump skipped it."""
        if self.is_true:
            return device
        levels: list[tuple[datetime | None, float]] = [(None, 0.0)]
        for at, seconds in sorted(self.jumps):
            levels.append((at, levels[-1][1] + seconds))
        for i, (begin, jumped) in enumerate(levels):
            end = levels[i + 1][0] if i + 1 < len(levels) else None
            true = self._solve(device, jumped)
            if (begin is None or true >= begin) and (end is None or true < end):
                return true
        return None

    def _solve(self, device: datetime, jumped: float) -> datetime:
        """Invert ``device = true + drift(true) + jumped`` for a fixed jump total."""
        shifted = device - timedelta(seconds=jumped)
        rate = self.drift_s_per_day / DAY_SECONDS
        if not rate or self.drift_from is None or shifted <= self.drift_from:
            return shifted
        span = (shifted - self.drift_from).total_seconds()
        return self.drift_from + timedelta(seconds=span / (1.0 + rate))


def seeded(*parts: object) -> random.Random:
    """A generator seeded by a string of ``parts`` (str seeds are stable across runs)."""
    return random.Random("|".join(str(p) for p in parts))


def data_time_text(moment: datetime) -> str:
    """``YYYYMMDDhhmmss`` of an aware instant in Beijing time."""
    return moment.astimezone(BEIJING).strftime("%Y%m%d%H%M%S")


def qn_text(moment: datetime) -> str:
    """A QN (``YYYYMMDDhhmmsszzz``) from the device clock."""
    local = moment.astimezone(BEIJING)
    return local.strftime("%Y%m%d%H%M%S") + f"{local.microsecond // 1000:03d}"


def fixed(value: float, decimals: int) -> str:
    """A decimal string with a fixed number of decimals (devices send e.g. ``12.30``)."""
    text = f"{value:.{decimals}f}"
    return "0" + text[2:] if text.startswith("-0") and float(text) == 0 else text


def write_frame(
    spec: DeviceSpec,
    cn: str,
    data_time: str,
    values: Mapping[str, Mapping[str, str]],
    *,
    extra: Mapping[str, str] | None = None,
    qn_time: datetime | None = None,
    flag: int | None = None,
) -> bytes:
    """The frame a device of ``spec`` sends: its code names, its edition's header, its CRC.

    2005-edition loggers send no QN and no Flag; 2017 ones a QN from the device clock and Flag=4
    (unless ``flag`` is given).
    """
    names = spec.code_names
    cp = fast_cp(values, names, data_time, extra)
    if spec.edition == 2005:
        qn, frame_flag = None, None
    else:
        qn = qn_text(qn_time) if qn_time is not None else None
        frame_flag = 4 if flag is None else flag
    return build_frame(
        st=spec.st, cn=cn, mn=spec.device_id, pw=spec.pw, cp=cp, qn=qn, flag=frame_flag,
        crc_mode=spec.crc_mode,
    )  # fmt: skip


def fast_cp(
    values: Mapping[str, Mapping[str, str]],
    names: Mapping[str, str],
    data_time: str,
    extra: Mapping[str, str] | None = None,
) -> str:
    """The CP body ``build_cp`` would write, for values the simulator made itself (strings
    without separators), without re-checking every character: frames are built by the hundred
    thousand. tests/devices checks it against ``build_cp``."""
    items = [f"DataTime={data_time}"]
    if extra:
        items.extend(f"{key}={value}" for key, value in extra.items())
    for code, suffixes in values.items():
        sent = names.get(code, code)
        items.append(",".join(f"{sent}-{suffix}={value}" for suffix, value in suffixes.items()))
    return ";".join(items)


def reference_cp(
    values: Mapping[str, Mapping[str, str]],
    names: Mapping[str, str],
    data_time: str,
    extra: Mapping[str, str] | None = None,
) -> str:
    """The same CP body through the codec's checked ``build_cp``."""
    sent = {names.get(code, code): dict(suffixes) for code, suffixes in values.items()}
    return build_cp(sent, data_time=data_time, extra=dict(extra) if extra else None)


def day_start(day: datetime) -> datetime:
    """Midnight Beijing of the day containing ``day``."""
    local = day.astimezone(BEIJING)
    return local.replace(hour=0, minute=0, second=0, microsecond=0)


def in_periods(moment: datetime, periods: tuple[tuple[datetime, datetime], ...]) -> bool:
    """True when ``moment`` lies in one of the half-open ``[start, end)`` periods."""
    return any(start <= moment < end for start, end in periods)

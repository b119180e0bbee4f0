"""CRC routines seen on HJ 212 links.

The standard's routine is *not* CRC-16/MODBUS: it shifts the register right by 8 before XOR-ing the
byte in, so after the XOR the register holds only 8 bits and the eight shift/XOR rounds map those 8
bits to one of 256 values. That makes it a plain 256-entry table lookup per byte (and weak: see
HJ212.md). Some loggers use CRC-16/MODBUS instead, written high byte first ("modbus") or with the
two bytes swapped ("modbus-swapped", the order MODBUS itself puts on the wire).
"""

from __future__ import annotations

CRC_MODES: tuple[str, ...] = ("standard", "modbus", "modbus-swapped")

_POLY = 0xA001  # 0x8005 reflected


def _rounds(register: int) -> int:
    """Eight rounds of the reflected shift/XOR with 0xA001."""
    for _ in range(8):
        low = register & 1
        register >>= 1
        if low:
            register ^= _POLY
    return register


# Both routines reduce to the same table: standard indexes it with (reg >> 8) ^ b, MODBUS with
# (reg ^ b) & 0xFF and XORs in the high byte of the shifted register.
_TABLE: tuple[int, ...] = tuple(_rounds(i) for i in range(256))


def _standard(data: bytes) -> int:
    table = _TABLE
    register = 0xFFFF
    for byte in data:
        register = table[(register >> 8) ^ byte]
    return register


def _modbus(data: bytes) -> int:
    table = _TABLE
    register = 0xFFFF
    for byte in data:
        register = (register >> 8) ^ table[(register ^ byte) & 0xFF]
    return register


def crc16(data: bytes, mode: str = "standard") -> int:
    """CRC of ``data`` as the 16-bit number whose 4 upper-case hex digits go on the wire.

    >>> hex(crc16(b"123456789")), hex(crc16(b"123456789", "modbus"))
    ('0x2f80', '0x4b37')
    """
    if isinstance(data, str):
        data = data.encode("utf-8")
    if mode == "standard":
        return _standard(data)
    if mode == "modbus":
        return _modbus(data)
    if mode == "modbus-swapped":
        value = _modbus(data)
        return ((value & 0xFF) << 8) | (value >> 8)
    raise ValueError(f"unknown CRC mode {mode!r}; expected one of {', '.join(CRC_MODES)}")


def crc_hex(data: bytes, mode: str = "standard") -> str:
    """The 4 upper-case hex digits written after the data segment."""
    return f"{crc16(data, mode):04X}"


def matching_mode(data: bytes, value: int) -> str | None:
    """The first CRC mode under which ``data`` has CRC ``value``, or None."""
    for mode in CRC_MODES:
        if crc16(data, mode) == value:
            return mode
    return None

"""CRC check values: the standard's routine, CRC-16/MODBUS and its byte-swapped form."""

from __future__ import annotations

import random

import pytest

from agents.hj212 import CRC_MODES, crc16, crc_hex, matching_mode

EXAMPLE = (
    b"QN=20160801085857223;ST=32;CN=1062;PW=100000;MN=010000A8900016F000169DC0;"
    b"Flag=5;CP=&&RtdInterval=30&&"
)


def reference_standard(data: bytes) -> int:
    """The standard's routine written out bit by bit, straight from its definition."""
    register = 0xFFFF
    for byte in data:
        register = (register >> 8) ^ byte
        for _ in range(8):
            low = register & 1
            register >>= 1
            if low:
                register ^= 0xA001
    return register


def reference_modbus(data: bytes) -> int:
    """CRC-16/MODBUS bit by bit: XOR the byte into the low byte, no shift first."""
    register = 0xFFFF
    for byte in data:
        register ^= byte
        for _ in range(8):
            low = register & 1
            register >>= 1
            if low:
                register ^= 0xA001
    return register


def test_check_values_for_all_modes():
    assert crc16(b"123456789") == 0x2F80
    assert crc16(b"123456789", "modbus") == 0x4B37  # the catalogued CRC-16/MODBUS check
    assert crc16(b"123456789", "modbus-swapped") == 0x374B
    assert crc16(b"123456789", "standard") == 0x2F80


def test_standard_example_segment():
    assert crc16(EXAMPLE) == 0x1C80
    assert crc_hex(EXAMPLE) == "1C80"


def test_empty_input_is_initial_register():
    for mode in CRC_MODES:
        assert crc16(b"", mode) == 0xFFFF


def test_leading_zero_is_kept_in_hex():
    # find an input whose CRC is below 0x1000: its hex must still be four digits
    data = next(
        bytes([a, b]) for a in range(256) for b in range(256) if crc16(bytes([a, b])) < 0x1000
    )
    assert len(crc_hex(data)) == 4 and crc_hex(data).startswith("0")


def test_table_matches_bitwise_definition_on_random_data():
    rng = random.Random(212)
    for _ in range(300):
        data = bytes(rng.randrange(256) for _ in range(rng.randrange(0, 80)))
        assert crc16(data) == reference_standard(data)
        modbus = reference_modbus(data)
        assert crc16(data, "modbus") == modbus
        assert crc16(data, "modbus-swapped") == ((modbus & 0xFF) << 8) | (modbus >> 8)


def test_standard_crc_takes_only_256_values():
    # why a frame also needs length and value sanity checks: collisions are 1 in 256
    rng = random.Random(7)
    seen = {crc16(bytes(rng.randrange(256) for _ in range(12))) for _ in range(5000)}
    assert len(seen) <= 256


def test_single_byte_errors_always_caught_in_example():
    good = crc16(EXAMPLE)
    for i in range(len(EXAMPLE)):
        for value in range(256):
            if value != EXAMPLE[i]:
                changed = EXAMPLE[:i] + bytes([value]) + EXAMPLE[i + 1 :]
                assert crc16(changed) != good


def test_matching_mode_names_the_mode():
    assert matching_mode(b"123456789", 0x2F80) == "standard"
    assert matching_mode(b"123456789", 0x4B37) == "modbus"
    assert matching_mode(b"123456789", 0x374B) == "modbus-swapped"
    assert matching_mode(b"123456789", 0x1234) is None


def test_unknown_mode_rejected():
    with pytest.raises(ValueError, match="unknown CRC mode"):
        crc16(b"x", "ccitt")


def test_str_input_is_utf8_bytes():
    assert crc16("温度") == crc16("温度".encode())

"""Request signing between a field box and the ingest service (stdlib only).

Each device has its own secret, created on the box at enrolment. Neither side keeps the secret
itself once enrolled: both derive a signing key from it with PBKDF2 and the registry stores only
that derived key. (HMAC needs the same key on both sides, so a stolen registry lets someone sign
uploads; it never reveals the enrolment secret, and rotating a device's secret invalidates it.)

A request is signed over the method, the path, a Unix timestamp, the device id and the SHA-256
of the body exactly as sent (after gzip). The server refuses a timestamp outside its window and a
signature it has already seen inside the window, so a captured request cannot be replayed.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

HEADER_DEVICE = "X-Lantian-Device"
HEADER_TIMESTAMP = "X-Lantian-Timestamp"
HEADER_SIGNATURE = "X-Lantian-Signature"

KDF_ITERATIONS = 100_000


def new_secret() -> str:
    """A fresh device secret (256 bits, URL-safe)."""
    return secrets.token_urlsafe(32)


def derive_key(secret: str, device_id: str) -> str:
    """The signing key both sides use, hex-encoded; this is what the registry stores."""
    raw = hashlib.pbkdf2_hmac(
        "sha256", secret.encode(), f"lantian-device:{device_id}".encode(), KDF_ITERATIONS
    )
    return raw.hex()


def string_to_sign(method: str, path: str, timestamp: int, device_id: str, body: bytes) -> bytes:
    body_hash = hashlib.sha256(body).hexdigest()
    return f"{method.upper()}\n{path}\n{timestamp}\n{device_id}\n{body_hash}".encode()


def sign(key_hex: str, method: str, path: str, timestamp: int, device_id: str, body: bytes) -> str:
    message = string_to_sign(method, path, timestamp, device_id, body)
    return hmac.new(bytes.fromhex(key_hex), message, hashlib.sha256).hexdigest()


def signed_headers(
    key_hex: str, method: str, path: str, timestamp: int, device_id: str, body: bytes
) -> dict[str, str]:
    return {
        HEADER_DEVICE: device_id,
        HEADER_TIMESTAMP: str(timestamp),
        HEADER_SIGNATURE: sign(key_hex, method, path, timestamp, device_id, body),
    }


def verify(
    key_hex: str,
    method: str,
    path: str,
    timestamp: int,
    device_id: str,
    body: bytes,
    signature: str,
) -> bool:
    expected = sign(key_hex, method, path, timestamp, device_id, body)
    return hmac.compare_digest(expected, signature.lower())

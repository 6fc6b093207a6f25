"""Who may drive the control plane, and the key that signs result links.

- The control token: when set (`Simulator(control_token=…)`, or the environment), every `/_sim` call needs
  `Authorization: Bearer <token>`. Unset, the control plane is open, which is safe only on loopback.
- The signing key: result links are HMAC-signed with it. Unset, it is random per process, so no one can forge a
  link and a link from another process (even one started with the same seed) is refused. Nothing seeded reads
  it: IDs, timings and pixels stay a function of the seed and the requests.
"""

from __future__ import annotations

import hmac
import os

from simulator.checks import Invalid

CONTROL_TOKEN_ENV = "NANOBANANA_CONTROL_TOKEN"
SIGNING_KEY_ENV = "NANOBANANA_SIGNING_KEY"
MAX_TOKEN = 4096


def control_token_from(token: str | None) -> str | None:
    """The token given, else the environment's (an empty variable counts as unset); checked so that any client
    can send it in a header."""
    if token is None:
        token = os.environ.get(CONTROL_TOKEN_ENV) or None
    if token is None:
        return None
    if not isinstance(token, str) or not 0 < len(token) <= MAX_TOKEN or not all(
        "!" <= char <= "~" for char in token
    ):
        raise Invalid(f"control_token: 1 to {MAX_TOKEN} visible ASCII characters (no spaces), so that it travels "
                      f"in an Authorization header as sent; from {CONTROL_TOKEN_ENV} or --control-token",
                      "control_token")
    return token


def signing_key_from(key: bytes | None) -> bytes | None:
    """The key given, else the environment's (UTF-8), else None for a random one."""
    if key is None:
        text = os.environ.get(SIGNING_KEY_ENV)
        key = text.encode("utf-8", "surrogateescape") if text else None
    if key is None:
        return None
    if not isinstance(key, bytes | bytearray) or not key:
        raise Invalid(f"signing_key: a non-empty byte string (32 random bytes is right), from {SIGNING_KEY_ENV} "
                      "or --signing-key", "signing_key")
    return bytes(key)


def bearer_matches(authorization: str | None, token: str) -> bool:
    """Whether an Authorization header carries `Bearer <token>` (scheme in any case), compared in constant time."""
    scheme, _, credentials = (authorization or "").strip().partition(" ")
    if scheme.lower() != "bearer":
        return False
    sent = credentials.strip().encode("utf-8", "surrogateescape")
    return hmac.compare_digest(sent, token.encode("ascii"))

"""API keys: ``Authorization: Bearer KEY``, checked against sha256 digests (keys are never stored in clear).

Keys come from ``MAD_GUARDRAILS_API_KEYS`` (comma-separated, in clear, hashed on load) and/or a key file with one
sha256 hex digest per line (``#`` comments allowed; ``mad-guardrails api hash-key`` prints a key's digest). Every
accepted digest is compared with :func:`hmac.compare_digest`, all of them, whatever matched first.

    >>> d = hash_key("s3cret")
    >>> ks = KeyStore([d])
    >>> ks.verify("Bearer s3cret"), ks.verify("Bearer nope"), ks.verify(None)
    (True, False, False)
    >>> is_loopback("127.0.0.1"), is_loopback("localhost"), is_loopback("0.0.0.0")
    (True, True, False)
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import os
import re
from pathlib import Path

from mad_guardrails.core.errors import ConfigError

ENV_KEYS = "MAD_GUARDRAILS_API_KEYS"
_HEX64 = re.compile(r"^[0-9a-f]{64}$")


def hash_key(key: str) -> str:
    """The sha256 hex digest of an API key (what a key file holds)."""
    return hashlib.sha256(key.strip().encode("utf-8")).hexdigest()


def keys_from_env(environ: dict | None = None) -> list[str]:
    """Digests of the comma-separated keys in ``MAD_GUARDRAILS_API_KEYS``."""
    raw = (environ if environ is not None else os.environ).get(ENV_KEYS, "")
    return [hash_key(k) for k in raw.split(",") if k.strip()]


def read_key_file(path: str | Path) -> list[str]:
    """Digests from a key file: one sha256 hex per line; blank lines and ``#`` comments ignored."""
    p = Path(path)
    try:
        lines = p.read_text(encoding="utf-8").splitlines()
    except OSError as e:
        raise ConfigError(f"cannot read the key file: {e}", where=str(p),
                          fix="give a readable file with one sha256 hex digest per line") from e
    out = []
    for n, line in enumerate(lines, 1):
        line = line.split("#", 1)[0].strip().lower()
        if not line:
            continue
        if not _HEX64.match(line):
            raise ConfigError("not a sha256 hex digest (64 hex characters)", where=f"{p}:{n}",
                              fix="store digests, not keys: `mad-guardrails api hash-key KEY` prints one")
        out.append(line)
    if not out:
        raise ConfigError("the key file has no digest", where=str(p),
                          fix="add one line per key: `mad-guardrails api hash-key KEY >> FILE`")
    return out


class KeyStore:
    def __init__(self, digests: list[str]):
        self._digests = [bytes.fromhex(d) for d in dict.fromkeys(digests)]

    @property
    def enabled(self) -> bool:
        return bool(self._digests)

    def verify(self, authorization: str | None) -> bool:
        """Whether an ``Authorization`` header carries an accepted key (constant time per digest)."""
        if not authorization:
            return False
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return False
        presented = hashlib.sha256(token.strip().encode("utf-8")).digest()
        ok = False
        for d in self._digests:  # no early exit: the time does not say which digest matched
            ok |= hmac.compare_digest(presented, d)
        return ok


def is_loopback(host: str) -> bool:
    if host in ("localhost", "ip6-localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False

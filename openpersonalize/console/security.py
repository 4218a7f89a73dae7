"""Who may use the console: signed session cookies, CSRF tokens and the loopback rule.

No state lives in a server process: a session is a cookie the server signed, and any HTTP
process (several share the port) checks it with the same key. With access keys configured the
key is derived from the secret of the key the person logged in with, so changing that secret
ends its sessions. Without access keys nobody logs in and the console answers loopback
clients only, like the API; an anonymous session then still carries the CSRF token, signed
with a random key kept in the data directory, which every process of the server shares.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from openpersonalize.config import Settings

COOKIE = "openpersonalize_console"
SESSION_SECONDS = 12 * 3600
KEY_FILE = "console-session.key"
_PURPOSE = b"openpersonalize console session v1"


@dataclass(frozen=True)
class Session:
    """A verified session: who logged in ("" when no keys are configured) and its id."""

    access_key_id: str
    session_id: str
    expires: float


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def anonymous_key(data_dir: Path) -> bytes:
    """The data directory's signing key for anonymous sessions (created once, by whichever
    process gets there first; the others read the same file)."""
    path = Path(data_dir) / KEY_FILE
    try:
        return bytes.fromhex(path.read_text().strip())
    except (FileNotFoundError, ValueError):
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    candidate = path.with_name(f"{KEY_FILE}.{os.getpid()}.{secrets.token_hex(4)}")
    candidate.write_text(secrets.token_hex(32))
    candidate.chmod(0o600)
    try:
        os.link(candidate, path)  # atomic: fails if another process won the race
    except FileExistsError:
        pass
    finally:
        candidate.unlink(missing_ok=True)
    return bytes.fromhex(path.read_text().strip())


class Signer:
    """Issues and checks session cookies and CSRF tokens for one server's settings."""

    def __init__(self, settings: Settings) -> None:
        self.credentials = settings.credentials
        self.data_dir = settings.data_dir
        self._anonymous: bytes | None = None

    @property
    def login_required(self) -> bool:
        return bool(self.credentials)

    def _key(self, access_key_id: str) -> bytes | None:
        if self.login_required:
            secret = self.credentials.get(access_key_id)
            if secret is None:
                return None
            return hmac.new(secret.encode(), _PURPOSE, hashlib.sha256).digest()
        if access_key_id:
            return None  # a login session from when keys were configured
        if self._anonymous is None:
            self._anonymous = anonymous_key(self.data_dir)
        return self._anonymous

    def check_login(self, access_key_id: str, secret: str) -> bool:
        expected = self.credentials.get(access_key_id)
        # Compared in constant time; a wrong key id costs the same as a wrong secret.
        matches = hmac.compare_digest((expected or "").encode(), secret.encode())
        return expected is not None and matches

    def issue(self, access_key_id: str, now: float) -> str:
        """A new session cookie value for this access key ("" for an anonymous session)."""
        key = self._key(access_key_id)
        if key is None:
            raise ValueError(f"no signing key for access key {access_key_id!r}")
        payload = _b64(
            json.dumps(
                {"k": access_key_id, "s": secrets.token_hex(16), "e": now + SESSION_SECONDS},
                separators=(",", ":"),
            ).encode()
        )
        return f"{payload}.{_b64(hmac.new(key, payload.encode(), hashlib.sha256).digest())}"

    def verify(self, cookie: str | None, now: float) -> Session | None:
        """The session a cookie value proves, or None (forged, expired, or of another key)."""
        if not cookie or cookie.count(".") != 1:
            return None
        payload, signature = cookie.split(".")
        try:
            fields = json.loads(_unb64(payload))
            access_key_id, session_id, expires = str(fields["k"]), str(fields["s"]), fields["e"]
            given = _unb64(signature)
        except (ValueError, KeyError, TypeError):
            return None
        key = self._key(access_key_id)
        if key is None or not isinstance(expires, (int, float)) or expires < now:
            return None
        expected = hmac.new(key, payload.encode(), hashlib.sha256).digest()
        if not hmac.compare_digest(expected, given):
            return None
        if self.login_required and not access_key_id:
            return None
        return Session(access_key_id, session_id, float(expires))

    def csrf_token(self, session: Session) -> str:
        key = self._key(session.access_key_id)
        assert key is not None  # the session was verified with it
        return _b64(hmac.new(key, b"csrf|" + session.session_id.encode(), hashlib.sha256).digest())

    def check_csrf(self, session: Session, token: str | None) -> bool:
        return bool(token) and hmac.compare_digest(self.csrf_token(session), token or "")


def is_loopback_client(client: tuple[str, int] | list | None) -> bool:
    if not client:
        return False
    try:
        return ipaddress.ip_address(str(client[0])).is_loopback
    except ValueError:
        return False


def is_loopback_host(host_header: str) -> bool:
    """Whether the Host header names this machine: a page on another site whose name was
    re-pointed at 127.0.0.1 (DNS rebinding) sends its own name and is refused."""
    host = host_header.strip().lower()
    if host.startswith("["):
        host = host[1 : host.find("]")] if "]" in host else host
    elif host.count(":") == 1:
        host = host.split(":", 1)[0]
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False

"""The local control channel: ``dmc trigger``, ``stop``, ``status``, ``set``, ``learn`` talk to the daemon.

Only the same user on the same machine may reach it. On Unix it is a socket in a private
(0700) folder under ``$XDG_RUNTIME_DIR`` or the temp dir, itself 0600, and on Linux the peer's
uid is checked too. Windows has no such sockets in Python: there the daemon listens on a
loopback port and writes the port and a per-session token to a file in the user's profile;
a request without that token is refused.

Protocol: one JSON object per line each way. Request ``{"command": "set", "values": {...}}``,
answer ``{"ok": true, ...}`` or ``{"ok": false, "error": "what to do"}``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
import socket
import struct
import sys
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bridge.errors import BridgeError

log = logging.getLogger(__name__)

Handler = Callable[[dict[str, Any]], dict[str, Any]]
MAX_LINE = 1 << 16
ACCEPT_POLL_S = 0.2
CONNECTION_TIMEOUT_S = 2.0
TRANSPORTS = ("unix", "tcp")


def default_transport() -> str:
    return "tcp" if sys.platform == "win32" else "unix"


def default_control_path() -> Path:
    """Where the daemon listens (Unix: the socket; Windows: the file with port and token)."""
    if sys.platform == "win32":
        base = Path(os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local")
        return base / "diffusion-composer" / "control.json"
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    base = Path(runtime) / "diffusion-composer" if runtime else Path(tempfile.gettempdir()) / f"dmc-{os.getuid()}"
    return base / "control.sock"


def _private_dir(directory: Path) -> None:
    """Create ``directory`` 0700, or check that an existing one is ours and closed to others."""
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    if sys.platform == "win32":
        return
    st = directory.stat()
    if st.st_uid != os.getuid() or st.st_mode & 0o077:
        raise BridgeError(
            f"the control folder {directory} is not private to you (owner uid {st.st_uid}, mode "
            f"{st.st_mode & 0o777:o}); remove it, or pass --socket with a path in a folder of your own"
        )


class ControlServer:
    """Serves requests one at a time on its own thread; ``handler`` answers each one."""

    def __init__(
        self,
        handler: Handler,
        path: Path | None = None,
        *,
        transport: str | None = None,
        on_error: Callable[[BaseException], None] | None = None,
    ) -> None:
        self.path = path or default_control_path()
        self.transport = transport or default_transport()
        if self.transport not in TRANSPORTS:
            raise BridgeError(f"control transport {self.transport!r} is unknown; use one of {', '.join(TRANSPORTS)}")
        self._handler = handler
        self._on_error = on_error
        self._token = secrets.token_hex(16) if self.transport == "tcp" else ""
        self._sock: socket.socket | None = None
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self.path == default_control_path():
            _private_dir(self.path.parent)
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self._refuse_if_running()
        self._sock = self._bind_unix() if self.transport == "unix" else self._bind_tcp()
        self._sock.settimeout(ACCEPT_POLL_S)
        self._thread = threading.Thread(target=self._run, name="dmc-control", daemon=True)
        self._thread.start()
        log.info("control channel: %s", self.path)

    def stop(self, timeout: float = 2.0) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout)
        if self._sock is not None:
            self._sock.close()
            self._sock = None
            self.path.unlink(missing_ok=True)

    def _refuse_if_running(self) -> None:
        if not self.path.exists():
            return
        try:
            request({"command": "status"}, self.path, timeout=1.0)
        except BridgeError:
            self.path.unlink(missing_ok=True)  # left behind by a daemon that died
            return
        raise BridgeError(
            f"a daemon already listens at {self.path}; stop it (Ctrl-C in its terminal) or give this one "
            "another --socket"
        )

    def _bind_unix(self) -> socket.socket:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.bind(str(self.path))
            os.chmod(self.path, 0o600)
            sock.listen(8)
        except OSError as exc:
            sock.close()
            raise BridgeError(f"cannot listen at {self.path}: {exc}; pass another --socket") from exc
        return sock

    def _bind_tcp(self) -> socket.socket:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        info = {"port": sock.getsockname()[1], "token": self._token, "pid": os.getpid()}
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(info, handle)
        return sock

    def _run(self) -> None:
        try:
            while not self._stopping.is_set():
                try:
                    conn, _ = self._sock.accept()
                except TimeoutError:
                    continue
                with conn:
                    self._serve(conn)
        except BaseException as exc:
            log.exception("control channel failed")
            if self._on_error is not None:
                self._on_error(exc)

    def _serve(self, conn: socket.socket) -> None:
        conn.settimeout(CONNECTION_TIMEOUT_S)
        try:
            line = _read_line(conn)
        except (OSError, BridgeError) as exc:
            log.debug("control: bad connection: %s", exc)
            return
        answer = self._answer(conn, line)
        with contextlib.suppress(OSError):
            conn.sendall(json.dumps(answer).encode("utf-8") + b"\n")

    def _answer(self, conn: socket.socket, line: bytes) -> dict[str, Any]:
        if not self._peer_is_us(conn):
            return {"ok": False, "error": "refused: another user"}
        try:
            message = json.loads(line)
        except (json.JSONDecodeError, UnicodeDecodeError):
            return {"ok": False, "error": "a request is one JSON object per line"}
        if not isinstance(message, dict):
            return {"ok": False, "error": "a request is one JSON object per line"}
        if self._token and not secrets.compare_digest(str(message.pop("token", "")), self._token):
            return {"ok": False, "error": "refused: wrong session token"}
        try:
            return {"ok": True, **self._handler(message)}
        except BridgeError as exc:
            return {"ok": False, "error": str(exc)}

    def _peer_is_us(self, conn: socket.socket) -> bool:
        """Linux: the connecting process's uid (SO_PEERCRED); elsewhere the 0600 socket decides."""
        if self.transport != "unix" or not hasattr(socket, "SO_PEERCRED"):
            return True
        _pid, uid, _gid = struct.unpack("3i", conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12))
        return uid == os.getuid()


def _read_line(conn: socket.socket) -> bytes:
    data = b""
    while not data.endswith(b"\n"):
        chunk = conn.recv(4096)
        if not chunk:
            break
        data += chunk
        if len(data) > MAX_LINE:
            raise BridgeError("control request too long")
    return data


def request(message: dict[str, Any], path: Path | None = None, timeout: float = 3.0) -> dict[str, Any]:
    """Send one request to the running daemon; its answer, or BridgeError saying what to do."""
    path = path or default_control_path()
    message = dict(message)
    try:
        if path.suffix == ".json":
            info = json.loads(path.read_text(encoding="utf-8"))
            message["token"] = info["token"]
            conn = socket.create_connection(("127.0.0.1", int(info["port"])), timeout=timeout)
        else:
            conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            conn.settimeout(timeout)
            conn.connect(str(path))
    except (OSError, ValueError, KeyError) as exc:
        raise BridgeError(f"no daemon answers at {path} ({exc}); start one with 'dmc serve'") from exc
    with conn:
        try:
            conn.sendall(json.dumps(message).encode("utf-8") + b"\n")
            line = _read_line(conn)
        except OSError as exc:
            raise BridgeError(f"the daemon at {path} did not answer ({exc})") from exc
    try:
        return json.loads(line)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BridgeError(f"the daemon at {path} answered garbage ({line[:80]!r})") from exc

"""The control channel: private socket, JSON lines, token on the loopback transport, errors."""

from __future__ import annotations

import json
import socket
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bridge.control import ControlServer, request
from bridge.errors import BridgeError


def echo(message: dict[str, Any]) -> dict[str, Any]:
    if message.get("command") == "fail":
        raise BridgeError("cannot do that; try this")
    return {"echo": message}


@pytest.fixture(params=["unix", "tcp"])
def server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ControlServer]:
    suffix = ".sock" if request.param == "unix" else ".json"
    srv = ControlServer(echo, tmp_path / f"control{suffix}", transport=request.param)
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()
    assert not srv.path.exists()


def test_round_trip_and_errors(server: ControlServer) -> None:
    answer = request({"command": "set", "values": {"bars": "4"}}, server.path)
    assert answer == {"ok": True, "echo": {"command": "set", "values": {"bars": "4"}}}
    assert request({"command": "fail"}, server.path) == {"ok": False, "error": "cannot do that; try this"}


def test_the_endpoint_is_private(server: ControlServer) -> None:
    assert stat.S_IMODE(server.path.stat().st_mode) == 0o600


def test_tcp_refuses_a_request_without_the_token(tmp_path: Path) -> None:
    srv = ControlServer(echo, tmp_path / "control.json", transport="tcp")
    srv.start()
    try:
        port = json.loads(srv.path.read_text())["port"]
        with socket.create_connection(("127.0.0.1", port), timeout=2) as conn:
            conn.sendall(b'{"command": "status", "token": "guess"}\n')
            answer = json.loads(conn.makefile().readline())
    finally:
        srv.stop()
    assert answer == {"ok": False, "error": "refused: wrong session token"}


def test_garbage_is_answered_not_fatal(tmp_path: Path) -> None:
    srv = ControlServer(echo, tmp_path / "c.sock", transport="unix")
    srv.start()
    try:
        with socket.socket(socket.AF_UNIX) as conn:
            conn.settimeout(2)
            conn.connect(str(srv.path))
            conn.sendall(b"hello\n")
            assert json.loads(conn.makefile().readline())["ok"] is False
        assert request({"command": "x"}, srv.path)["ok"] is True
    finally:
        srv.stop()


def test_no_daemon_says_how_to_start_one(tmp_path: Path) -> None:
    with pytest.raises(BridgeError, match="dmc serve"):
        request({"command": "status"}, tmp_path / "none.sock")


def test_a_second_daemon_on_the_same_path_is_refused_and_a_stale_socket_replaced(tmp_path: Path) -> None:
    path = tmp_path / "c.sock"
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(str(path))
    stale.close()  # the file stays, nobody listens
    first = ControlServer(echo, path)
    first.start()
    try:
        with pytest.raises(BridgeError, match="already listens"):
            ControlServer(echo, path).start()
    finally:
        first.stop()

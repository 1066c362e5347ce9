"""MIDI ports: message checks, API choice, listing, and a JACK port that vanishes and comes back."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
import rtmidi
from jack_server import JackServer, jackd_available
from midi_recording import MemoryOutput
from rtmidi.midiconstants import NOTE_ON, TIMING_CLOCK

from bridge.errors import BridgeError
from bridge.ports import MidiOutput, _stamp, api_name, list_ports, reopen_vanished, resolve_api, validate_message

needs_jack = pytest.mark.skipif(not jackd_available(), reason="needs jackd (Debian: jackd2) and JACK in python-rtmidi")


@pytest.mark.parametrize(
    ("message", "error"),
    [([], "status byte"), ([60, 100], "status byte"), ([NOTE_ON, 128, 1], "data byte"), ([NOTE_ON, 60], "3 bytes")],
)
def test_bad_messages_are_refused_with_the_reason(message: list[int], error: str) -> None:
    with pytest.raises(BridgeError, match=error):
        validate_message(message)


def test_good_messages_pass() -> None:
    assert validate_message((NOTE_ON | 3, 60, 100)) == [NOTE_ON | 3, 60, 100]
    assert validate_message([TIMING_CLOCK]) == [TIMING_CLOCK]


def test_api_names_and_choices() -> None:
    assert api_name(rtmidi.API_UNIX_JACK) == "jack"
    assert resolve_api("auto") in rtmidi.get_compiled_api()
    with pytest.raises(BridgeError, match="unknown; use one of auto"):
        resolve_api("mme")
    missing = [name for name, api in (("coremidi", rtmidi.API_MACOSX_CORE), ("winmm", rtmidi.API_WINDOWS_MM))
               if api not in rtmidi.get_compiled_api()]
    for name in missing:
        with pytest.raises(BridgeError, match=f"no {name} support"):
            resolve_api(name)


def test_a_closed_port_drops_and_counts() -> None:
    port = MemoryOutput()
    assert not port.send([NOTE_ON, 60, 1])
    assert port.dropped == 1


def test_input_times_come_back_from_the_poll_time_by_rtmidi_deltas() -> None:
    batch = [([TIMING_CLOCK], 0.0), ([TIMING_CLOCK], 0.02), ([TIMING_CLOCK], 0.02)]
    assert [t for _, t in _stamp(batch, 10.0)] == pytest.approx([9.96, 9.98, 10.0])


def test_listing_says_why_jack_is_not_there(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JACK_DEFAULT_SERVER", f"absent-{uuid.uuid4().hex[:8]}")
    listings = {listing.api: listing for listing in list_ports()}
    assert listings["jack"].error == "no JACK server is running"


@needs_jack
def test_a_jack_port_vanishes_with_its_server_and_reopens_when_it_returns(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = JackServer(tmp_path)
    monkeypatch.setenv("JACK_DEFAULT_SERVER", server.name)
    server.start()
    port = MidiOutput("Vanishing", api="jack", client_name="dmc-test")
    try:
        port.open()
        jack = next(listing for listing in list_ports() if listing.api == "jack")
        assert "dmc-test:Vanishing" in jack.inputs  # others receive from it
        with pytest.raises(BridgeError, match="no MIDI output port named 'Nowhere'"):
            MidiOutput("Nowhere", api="jack", existing=True).open()
        assert reopen_vanished([port]) == []
        server.stop()
        assert not port.alive()
        assert reopen_vanished([port]) == [(port, "vanished")]  # closed at once, nothing reopened yet
        assert not port.is_open and not port.send([NOTE_ON, 60, 1])
        server.start()
        assert reopen_vanished([port]) == [(port, "reopened")]
        assert port.alive() and port.send([NOTE_ON, 60, 1])
    finally:
        port.close()
        server.stop()

"""MIDI ports (python-rtmidi): virtual ports the DAW connects to, validated and locked sends,
panic, and a liveness check so a vanished port can be reopened without restarting the daemon.

Windows (WinMM) has no virtual ports: there we open an existing port by name (loopMIDI) and say
so. Input is polled by our own thread rather than taken in rtmidi's callback: on JACK that
callback runs in the audio process thread, which would then wait for Python's GIL, and
cancelling it races with a callback in flight (a crash at shutdown). On JACK a port vanishes
with its server. libjack frees a dead client's memory when the
process opens its next client, so a dead port must be closed *before* any new JACK client is
made (else closing it later crashes): :meth:`MidiPort.check` closes at once, reopening waits.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import rtmidi
from rtmidi.midiconstants import (
    ALL_NOTES_OFF,
    ALL_SOUND_OFF,
    CONTROL_CHANGE,
    NOTE_OFF,
    NOTE_ON,
)

from bridge.errors import BridgeError

log = logging.getLogger(__name__)

APIS = {
    "alsa": rtmidi.API_LINUX_ALSA,
    "jack": rtmidi.API_UNIX_JACK,
    "coremidi": rtmidi.API_MACOSX_CORE,
    "winmm": rtmidi.API_WINDOWS_MM,
}
API_CHOICES = ("auto", *APIS)
DEFAULT_OUT_NAME = "Diffusion Composer"
DEFAULT_IN_NAME = "Diffusion Composer In"
CLIENT_NAME = "dmc"
POLL_S = 0.001  # input poll period: the most a message waits before the daemon sees it
DRAIN_S = 0.05  # rtmidi's JACK output sends at the next process cycle: closing sooner loses (or garbles) messages

# Length of a channel message by its status nibble; system messages are checked separately.
_CHANNEL_LENGTHS = {0x80: 3, 0x90: 3, 0xA0: 3, 0xB0: 3, 0xC0: 2, 0xD0: 2, 0xE0: 3}

MidiCallback = Callable[[list[int], float], None]


def api_name(api: int) -> str:
    """Our name for an rtmidi API constant (the ``--api`` value)."""
    return next((name for name, value in APIS.items() if value == api), rtmidi.get_api_name(api))


def jack_server_socket() -> Path:
    """Where JACK 2 (and PipeWire's JACK) puts the socket of the server clients connect to."""
    name = os.environ.get("JACK_DEFAULT_SERVER") or "default"
    if os.environ.get("JACK_PROMISCUOUS_SERVER") is not None:
        return Path("/dev/shm") / f"jack_{name}_0"
    return Path("/dev/shm") / f"jack_{name}_{os.getuid()}_0"


def jack_server_identity() -> tuple[int, int] | None:
    """(inode, ctime) of the running server's socket, or None: a restarted server differs."""
    try:
        st = jack_server_socket().stat()
    except OSError:
        return None
    return st.st_ino, st.st_ctime_ns


def alsa_sequencer_present() -> bool:
    """ALSA MIDI needs the sequencer device; without it libasound prints errors before failing."""
    return Path("/dev/snd/seq").exists()


def resolve_api(name: str) -> int:
    """``--api`` value -> rtmidi constant; ``auto`` prefers CoreMIDI, WinMM, a running JACK, ALSA."""
    compiled = rtmidi.get_compiled_api()
    if name == "auto":
        order = [rtmidi.API_MACOSX_CORE, rtmidi.API_WINDOWS_MM]
        jack_first = jack_server_identity() is not None
        order += [rtmidi.API_UNIX_JACK, rtmidi.API_LINUX_ALSA] if jack_first else [
            rtmidi.API_LINUX_ALSA, rtmidi.API_UNIX_JACK]
        for api in order:
            if api in compiled:
                return api
        raise BridgeError("python-rtmidi was built without any MIDI API; reinstall python-rtmidi")
    if name not in APIS:
        raise BridgeError(f"MIDI API {name!r} is unknown; use one of {', '.join(API_CHOICES)}")
    if APIS[name] not in compiled:
        have = ", ".join(api_name(a) for a in compiled)
        raise BridgeError(f"this python-rtmidi has no {name} support (it has: {have}); pick another --api")
    return APIS[name]


def validate_message(message: Sequence[int]) -> list[int]:
    """A short MIDI message as a list of ints, or BridgeError saying what is wrong with it."""
    msg = [int(b) for b in message]
    if not msg or not 0x80 <= msg[0] <= 0xFF:
        raise BridgeError(f"MIDI message {msg} does not start with a status byte")
    if any(not 0 <= b <= 0x7F for b in msg[1:]):
        raise BridgeError(f"MIDI message {msg} has a data byte outside 0..127")
    expected = _CHANNEL_LENGTHS.get(msg[0] & 0xF0)
    if expected is not None and len(msg) != expected:
        raise BridgeError(f"MIDI message {msg} should have {expected} bytes")
    return msg


@dataclass(frozen=True)
class PortListing:
    """The ports one API can see (``dmc ports``); ``error`` says why it could not look."""

    api: str
    inputs: tuple[str, ...] = ()
    outputs: tuple[str, ...] = ()
    error: str = ""


def list_ports() -> list[PortListing]:
    """Every compiled API's input and output ports, or why the API is not usable here."""
    listings = []
    for api in rtmidi.get_compiled_api():
        name = api_name(api)
        if api == rtmidi.API_UNIX_JACK and jack_server_identity() is None:
            listings.append(PortListing(name, error="no JACK server is running"))
            continue
        if api == rtmidi.API_LINUX_ALSA and not alsa_sequencer_present():
            listings.append(PortListing(name, error="no ALSA sequencer (/dev/snd/seq); load snd-seq or use JACK"))
            continue
        try:
            midi_in = rtmidi.MidiIn(rtapi=api, name=f"{CLIENT_NAME}-list")
            midi_out = rtmidi.MidiOut(rtapi=api, name=f"{CLIENT_NAME}-list")
        except rtmidi.RtMidiError as exc:
            listings.append(PortListing(name, error=str(exc)))
            continue
        try:
            listings.append(PortListing(name, tuple(midi_in.get_ports()), tuple(midi_out.get_ports())))
        finally:
            midi_in.delete()
            midi_out.delete()
    return listings


class MidiPort:
    """One rtmidi port: opened virtual (or by name on WinMM), closed explicitly, reopenable.

    Subclasses say which rtmidi class they wrap and what to do once the handle is open.
    ``check()`` is called now and then by the daemon; it returns the port's state.
    """

    kind = ""

    def __init__(self, name: str, api: str = "auto", client_name: str = CLIENT_NAME, existing: bool = False) -> None:
        self.name = name
        self.api = resolve_api(api)
        self.client_name = client_name
        self.existing = existing or self.api == rtmidi.API_WINDOWS_MM
        self.connected_to = ""  # the existing port's full name, when not virtual
        self._handle: Any = None
        self._server: tuple[int, int] | None = None
        self._lock = threading.RLock()

    def __enter__(self) -> MidiPort:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def is_open(self) -> bool:
        return self._handle is not None

    def open(self) -> None:
        """Open the port; BridgeError with what to do when the MIDI system refuses."""
        with self._lock:
            if self._handle is not None:
                return
            if self.api == rtmidi.API_UNIX_JACK:
                self._server = jack_server_identity()
                if self._server is None:
                    raise BridgeError(
                        f"no JACK server is running (looked for {jack_server_socket()}); start JACK "
                        "or pick another --api")
            try:
                handle = self._make_handle()
            except rtmidi.RtMidiError as exc:
                raise BridgeError(f"cannot open MIDI {self.kind} port {self.name!r} "
                                  f"on {api_name(self.api)}: {exc}") from exc
            self._handle = handle
            self._opened(handle)
        where = f"existing port {self.connected_to!r}" if self.connected_to else "virtual port"
        log.info("MIDI %s: %s %r on %s", self.kind, where, self.name, api_name(self.api))

    def _make_handle(self) -> Any:
        if self.api == rtmidi.API_LINUX_ALSA and not alsa_sequencer_present():
            raise BridgeError("no ALSA sequencer here (/dev/snd/seq): load the snd-seq module, or use --api jack")
        handle = self._rtmidi_class()(rtapi=self.api, name=self.client_name)
        try:
            if self.existing:
                self._open_existing(handle)
            else:
                handle.open_virtual_port(self.name)
        except BaseException:
            handle.delete()
            raise
        return handle

    def _open_existing(self, handle: Any) -> None:
        """Connect to a port whose name starts with ours (loopMIDI adds a number to its ports)."""
        ports = handle.get_ports()
        index = next((i for i, p in enumerate(ports) if p.lower().startswith(self.name.lower())), None)
        windows = self.api == rtmidi.API_WINDOWS_MM
        if index is None:
            hint = "create it in loopMIDI, then start again" if windows else "is the other program running?"
            raise BridgeError(
                f"no MIDI {self.kind} port named {self.name!r} on {api_name(self.api)} "
                f"(found: {', '.join(ports) or 'none'}); {hint}"
            )
        handle.open_port(index)
        self.connected_to = ports[index]
        if windows:
            log.warning("Windows has no virtual MIDI ports: using the existing port %r", ports[index])

    def close(self) -> None:
        """Close the port; safe to call twice."""
        with self._lock:
            handle, self._handle = self._handle, None
            if handle is None:
                return
            self._closing(handle)
            handle.close_port()
            handle.delete()

    def alive(self) -> bool:
        """Whether the open port still exists (its JACK server, or the named WinMM port)."""
        with self._lock:
            if self._handle is None:
                return False
            if self.api == rtmidi.API_UNIX_JACK:
                return jack_server_identity() == self._server
            if self.existing:
                return self.connected_to in self._handle.get_ports()
            return True

    def can_reopen(self) -> bool:
        """Whether reopening may work now (cheap: no client is made to find out)."""
        if self.api == rtmidi.API_UNIX_JACK:
            return jack_server_identity() is not None
        return True

    def _rtmidi_class(self) -> type:
        raise NotImplementedError

    def _opened(self, handle: Any) -> None:
        """Hook: the handle is open."""

    def _closing(self, handle: Any) -> None:
        """Hook: the handle is about to close."""


class MidiOutput(MidiPort):
    """The port the DAW records. ``send`` validates and locks; notes sent are counted by channel."""

    kind = "output"

    def __init__(
        self, name: str = DEFAULT_OUT_NAME, api: str = "auto", client_name: str = CLIENT_NAME, existing: bool = False
    ) -> None:
        super().__init__(name, api, client_name, existing)
        self.used_channels: set[int] = set()
        self.dropped = 0
        self._last_send = 0.0

    def _rtmidi_class(self) -> type:
        return rtmidi.MidiOut

    def send(self, message: Sequence[int]) -> bool:
        """Send one message now; False (and counted) while the port is closed or vanished."""
        msg = validate_message(message)
        with self._lock:
            if self._handle is None:
                self.dropped += 1
                return False
            if msg[0] < 0xF0:
                self.used_channels.add(msg[0] & 0x0F)
            self._handle.send_message(msg)
            self._last_send = time.monotonic()
            return True

    def _closing(self, handle: Any) -> None:
        """Let the last messages leave before the port goes (the note-offs of a shutdown, above all)."""
        time.sleep(max(0.0, self._last_send + DRAIN_S - time.monotonic()))

    def note_on(self, channel: int, pitch: int, velocity: int) -> bool:
        return self.send([NOTE_ON | channel, pitch, velocity])

    def note_off(self, channel: int, pitch: int) -> bool:
        return self.send([NOTE_OFF | channel, pitch, 0])

    def panic(self, channels: Sequence[int] | None = None) -> None:
        """All Sound Off (CC120) and All Notes Off (CC123) on the used channels (or those given)."""
        with self._lock:
            for ch in sorted(self.used_channels if channels is None else channels):
                self.send([CONTROL_CHANGE | ch, ALL_SOUND_OFF, 0])
                self.send([CONTROL_CHANGE | ch, ALL_NOTES_OFF, 0])


class MidiInput(MidiPort):
    """The port the DAW sends clock, triggers and played notes to; calls ``callback(message, t)``
    on its own thread, ``t`` the message's ``time.monotonic()`` arrival time.

    Each poll takes every queued message; the newest is stamped with the poll time and the
    earlier ones back from it by rtmidi's own delta times, so their spacing is exact (MIDI clock)
    and the delay at most one poll.
    """

    kind = "input"

    def __init__(
        self,
        callback: MidiCallback,
        name: str = DEFAULT_IN_NAME,
        api: str = "auto",
        client_name: str = CLIENT_NAME,
        existing: bool = False,
        on_error: Callable[[BaseException], None] | None = None,
    ) -> None:
        super().__init__(name, api, client_name, existing)
        self._callback = callback
        self._on_error = on_error
        self._poller: threading.Thread | None = None
        self._stop_polling = threading.Event()

    def _rtmidi_class(self) -> type:
        return rtmidi.MidiIn

    def _opened(self, handle: Any) -> None:
        handle.ignore_types(sysex=True, timing=False, active_sense=True)
        self._stop_polling.clear()
        self._poller = threading.Thread(target=self._poll, args=(handle,), name=f"dmc-{self.kind}", daemon=True)
        self._poller.start()

    def _closing(self, handle: Any) -> None:
        self._stop_polling.set()
        if self._poller is not None and self._poller is not threading.current_thread():
            self._poller.join(timeout=2.0)

    def _poll(self, handle: Any) -> None:
        try:
            while not self._stop_polling.wait(POLL_S):
                batch = []
                while (event := handle.get_message()) is not None:
                    batch.append(event)
                for message, t in _stamp(batch, time.monotonic()):
                    self._callback(message, t)
        except BaseException as exc:
            log.exception("MIDI input thread failed")
            if self._on_error is not None:
                self._on_error(exc)


def _stamp(batch: list[tuple[list[int], float]], now: float) -> list[tuple[list[int], float]]:
    """(message, arrival time): the newest at ``now``, the others back from it by their deltas."""
    stamped = []
    t = now
    for message, delta in reversed(batch):
        stamped.append((message, t))
        t -= delta
    return stamped[::-1]


def reopen_vanished(ports: Sequence[MidiPort]) -> list[tuple[MidiPort, str]]:
    """Close every dead port, then reopen those that can be; logs and returns (port, "vanished"/"reopened").

    Dead ports must all be closed before any is reopened (see the module docstring).
    """
    events = []
    for port in ports:
        if port.is_open and not port.alive():
            port.close()
            log.warning("MIDI %s port %r vanished; it will be reopened when %s is back", port.kind, port.name,
                        api_name(port.api))
            events.append((port, "vanished"))
    for port in ports:
        if not port.is_open and port.can_reopen():
            try:
                port.open()
            except BridgeError as exc:
                log.debug("reopen failed: %s", exc)
                continue
            log.warning("MIDI %s port %r reopened; connect it again in the DAW if needed", port.kind, port.name)
            events.append((port, "reopened"))
    return events


def platform_note() -> str:
    """One line for ``dmc ports`` about where virtual ports come from on this system."""
    if sys.platform == "win32":
        return "Windows has no virtual MIDI ports: create 'Diffusion Composer' (and '... In') in loopMIDI."
    return "dmc serve creates virtual ports; the DAW sees them as a MIDI keyboard."

"""``dmc serve`` (the real-time daemon) and the commands that talk to it: ``trigger``, ``stop``,
``variation``, ``status``, ``set``, ``learn``; and ``dmc ports``. Heavy imports stay in the handlers.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bridge.clock import CLOCK_SOURCES, QUANTIZE
from bridge.errors import BridgeError
from bridge.ports import API_CHOICES
from bridge.triggers import ACTIONS

if TYPE_CHECKING:
    from bridge.phrases import PhraseSource


def register(subparsers: argparse._SubParsersAction) -> None:
    serve = subparsers.add_parser(
        "serve",
        help="run the real-time daemon: virtual MIDI ports, triggers, phrases in time with the DAW",
        description="Open virtual MIDI ports and play generated phrases into them, in time. "
        "Settings come from the settings file, then these options; 'dmc set' changes them while it runs.",
    )
    serve.add_argument("--model", default=None, help="model folder or shipped name (default: the shipped default); "
                       "'none': a model-free arpeggio, to check the DAW set-up")
    serve.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto", help="where the model runs")
    serve.add_argument("--precision", choices=("auto", "fp32", "fp16"), default="auto",
                       help="auto: the model's fp16 graph on CUDA, fp32 on CPU")
    serve.add_argument("--guidance", type=float, default=None, metavar="W",
                       help="autoguidance weight when the model carries a guide (default: the settings', else the "
                       "card's; 0: off); 'dmc set guidance=W' changes it while it runs")
    serve.add_argument("--api", choices=API_CHOICES, default="auto", help="MIDI system (auto: CoreMIDI, "
                       "Windows MM, JACK when its server runs, else ALSA)")
    serve.add_argument("--port-name", default=None, help="output port name (default 'Diffusion Composer')")
    serve.add_argument("--in-port-name", default=None, help="input port name (default 'Diffusion Composer In')")
    serve.add_argument("--settings", type=Path, default=None, help="settings file (default: the per-user one)")
    serve.add_argument("--bpm", type=float, help="internal tempo")
    serve.add_argument("--clock", choices=CLOCK_SOURCES, help="internal tempo, or follow the DAW's MIDI clock")
    serve.add_argument("--quantize", choices=QUANTIZE, help="phrases start on the next bar, beat, or at once")
    serve.add_argument("--offset-ms", type=float, help="send this much later (negative: earlier) than the beat")
    serve.add_argument("--mode", help="phrase (one per trigger), continuous (an endless stream), or respond "
                       "(answer what you play)")
    serve.add_argument("--takes", help="folder for takes (.mid + parameters); 'off' keeps none")
    serve.add_argument("--set", dest="values", action="append", default=[], metavar="KEY=VALUE",
                       help="any other setting, e.g. --set bars=4 --set key=F#")
    _socket_option(serve)
    serve.add_argument("--quiet", action="store_true", help="no live panel: plain log lines (for a service)")
    serve.add_argument("--hotkeys", nargs="?", const="", default=None, metavar="ACTION=KEYS,...",
                       help="global keyboard hotkeys (extra 'hotkeys'): ctrl+alt+g generate, ctrl+alt+s stop, "
                       "ctrl+alt+v variation; or your own, e.g. 'generate=<f9>,stop=<f10>'")
    serve.set_defaults(handler=serve_command)

    for name, help_text in (
        ("trigger", "generate now (as the trigger note would)"),
        ("stop", "silence the daemon now"),
        ("variation", "play the last phrase again with the next seed"),
    ):
        sub = subparsers.add_parser(name, help=help_text)
        _socket_option(sub)
        sub.set_defaults(handler=simple_command, command_name=name)

    status = subparsers.add_parser("status", help="what the running daemon is doing")
    status.add_argument("--json", action="store_true", help="print the raw JSON")
    _socket_option(status)
    status.set_defaults(handler=status_command)

    setter = subparsers.add_parser("set", help="change settings of the running daemon (kept in its settings file)")
    setter.add_argument("values", nargs="+", metavar="KEY=VALUE")
    _socket_option(setter)
    setter.set_defaults(handler=set_command)

    learn = subparsers.add_parser("learn", help="MIDI-learn: the next note or control on the input port "
                                  "becomes the trigger for ACTION")
    learn.add_argument("action", choices=ACTIONS)
    learn.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for the press")
    _socket_option(learn)
    learn.set_defaults(handler=learn_command)

    ports = subparsers.add_parser("ports", help="list the MIDI ports of every MIDI system available here")
    ports.set_defaults(handler=ports_command)


def _socket_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--socket", type=Path, default=None,
                        help="the daemon's control channel (default: the per-user one)")


def serve_command(args: argparse.Namespace) -> int:
    from bridge.daemon import Daemon, DaemonOptions, stop_on_signals
    from bridge.ports import DEFAULT_IN_NAME, DEFAULT_OUT_NAME
    from bridge.settings import default_settings_path, load_settings, parse_assignments
    from bridge.status import live_status

    settings_path = args.settings or default_settings_path()
    flags = {"bpm": args.bpm, "clock": args.clock, "quantize": args.quantize, "offset_ms": args.offset_ms,
             "mode": args.mode, "takes": args.takes, "guidance": args.guidance}
    overrides = {k: v for k, v in flags.items() if v is not None} | parse_assignments(args.values)
    settings = load_settings(settings_path).with_values(overrides)
    options = DaemonOptions(
        api=args.api,
        out_name=args.port_name or DEFAULT_OUT_NAME,
        in_name=args.in_port_name or DEFAULT_IN_NAME,
        control_path=args.socket,
        settings_path=settings_path,
    )
    source = phrase_source(args.model, args.device, args.precision, settings.guidance)
    source.check_style(settings.style)  # a style the model lacks is refused before any port opens
    with (
        Daemon(source, settings, options) as daemon,
        stop_on_signals(daemon),
        _hotkeys(args.hotkeys, daemon),
        live_status(daemon.status, args.quiet),
    ):
        daemon.run()
    return 0


def _hotkeys(spec: str | None, daemon: Any) -> contextlib.AbstractContextManager[object]:
    """The global hotkey listener when ``--hotkeys`` was given, else nothing."""
    if spec is None:
        return contextlib.nullcontext()
    from bridge.hotkeys import HotkeyListener, parse_hotkeys

    actions = {"generate": daemon.trigger, "stop": daemon.stop_music, "variation": daemon.variation}
    return HotkeyListener(parse_hotkeys(spec), actions)


def phrase_source(model: str | None, device: str, precision: str, guidance: float | None) -> PhraseSource:
    """The arpeggio demo for ``--model none``, else the model, warmed up and its step time measured."""
    from bridge.phrases import ArpeggioSource, ModelPhraseSource

    if model == "none":
        return ArpeggioSource()
    from bridge.runtime import load_model

    source = ModelPhraseSource(load_model(model, device, precision=precision, guidance=guidance))
    source.warm_up()
    return source


def _request(args: argparse.Namespace, message: dict[str, Any]) -> dict[str, Any]:
    from bridge.control import request

    answer = request(message, args.socket)
    if not answer.get("ok"):
        raise BridgeError(answer.get("error", "the daemon refused"))
    return answer


def simple_command(args: argparse.Namespace) -> int:
    answer = _request(args, {"command": args.command_name})
    if args.command_name == "stop":
        print(f"stopped ({answer.get('ended', 0)} notes ended)")
    return 0


def status_command(args: argparse.Namespace) -> int:
    answer = _request(args, {"command": "status"})
    answer.pop("ok", None)
    if args.json:
        print(json.dumps(answer, indent=2))
        return 0
    from rich.console import Console

    from bridge.status import render_status

    Console().print(render_status(answer))
    return 0


def set_command(args: argparse.Namespace) -> int:
    from bridge.settings import parse_assignments

    values = parse_assignments(args.values)
    settings = _request(args, {"command": "set", "values": values})["settings"]
    for key in values:
        print(f"{key} = {settings.get(key, 'none')}")
    return 0


def learn_command(args: argparse.Namespace) -> int:
    key = f"trigger_{args.action}"
    before = _request(args, {"command": "status"})["settings"].get(key)
    _request(args, {"command": "learn", "action": args.action, "timeout": args.timeout})
    print(f"press the note or control for {args.action!r} on the daemon's input port...")
    deadline = time.monotonic() + args.timeout
    while time.monotonic() < deadline:
        status = _request(args, {"command": "status"})
        if status["learning"] is None:
            after = status["settings"].get(key)
            if after != before:
                print(f"{args.action} = {after}")
                return 0
            break
        time.sleep(0.2)
    raise BridgeError(f"nothing pressed within {args.timeout:g} s; {args.action} stays {before!r}")


def ports_command(args: argparse.Namespace) -> int:
    from bridge.ports import list_ports, platform_note

    for listing in list_ports():
        print(f"{listing.api}:")
        if listing.error:
            print(f"  (not available: {listing.error})")
            continue
        print("  inputs (we can receive from):  " + (", ".join(listing.inputs) or "none"))
        print("  outputs (we can send to):      " + (", ".join(listing.outputs) or "none"))
    print(platform_note())
    return 0

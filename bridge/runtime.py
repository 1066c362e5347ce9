"""Load a model folder into an onnxruntime session: the only door from the samplers to the network.

The device is CUDA when onnxruntime-gpu can really use it, else CPU. onnxruntime-gpu lists
the CUDA provider even where the CUDA libraries are missing, and then prints a screenful
of errors when a session asks for it; so we preload the libraries installed from pip,
try to load the provider library quietly, and only then ask for a CUDA session.
"""

from __future__ import annotations

import contextlib
import ctypes
import io
import logging
import os
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort

import weights
from bridge.card import CARD_FILE, ModelCard, read_card, verify_checksum
from bridge.errors import BridgeError
from bridge.guidance import check_guide, guidance_weight

log = logging.getLogger(__name__)

DEVICES = ("auto", "cpu", "cuda")
PRECISIONS = ("auto", "fp32", "fp16")  # auto: the card's fp16 variant on CUDA (half the memory traffic), fp32 on CPU
CUDA_PROVIDER = "CUDAExecutionProvider"
CPU_PROVIDER = "CPUExecutionProvider"
ORT_DEFAULT_LOG_SEVERITY = 2  # onnxruntime's own default: warnings and above
ORT_QUIET_LOG_SEVERITY = 4  # fatal only


def resolve_model_dir(name_or_path: str | os.PathLike[str] | None) -> Path:
    """A path (it has a separator, or is an existing folder) or a name under ``weights/``; None: the default."""
    if name_or_path is None:
        directory = weights.default_model_dir()
    else:
        text = os.fspath(name_or_path)
        is_path = os.sep in text or (os.altsep and os.altsep in text) or Path(text).is_dir()
        directory = Path(text) if is_path else weights.model_dir(text)
    if not directory.is_dir():
        shipped = ", ".join(weights.model_names()) or "none"
        raise BridgeError(
            f"no model folder at {directory}; give a folder with model.onnx and model.json, "
            f"or the name of a shipped model (shipped: {shipped})"
        )
    return directory


@dataclass(frozen=True)
class CudaCheck:
    """Whether onnxruntime can load its CUDA provider here, and if not, why (for the user)."""

    usable: bool
    reason: str = ""


def check_cuda() -> CudaCheck:
    """Can this onnxruntime load its CUDA provider? Checked without onnxruntime's error output."""
    if CUDA_PROVIDER not in ort.get_available_providers():
        return CudaCheck(False, "this onnxruntime has no CUDA provider (install onnxruntime-gpu)")
    _preload_cuda_libraries()
    library = _cuda_provider_library()
    if library is not None:
        try:
            ctypes.CDLL(str(library))
        except OSError as exc:
            return CudaCheck(False, f"the CUDA libraries are not loadable ({exc})")
    return CudaCheck(True)


def _preload_cuda_libraries() -> None:
    """Load CUDA/cuDNN installed from pip (nvidia-* wheels), where this onnxruntime can; it prints, so we log."""
    preload = getattr(ort, "preload_dlls", None)
    if preload is None:
        return
    printed = io.StringIO()
    try:
        with contextlib.redirect_stdout(printed):
            preload()
    except (OSError, RuntimeError) as exc:
        log.debug("preloading CUDA libraries failed: %s", exc)
    if printed.getvalue().strip():
        log.debug("preloading CUDA libraries: %s", " ".join(printed.getvalue().split()))


def _cuda_provider_library() -> Path | None:
    """onnxruntime's CUDA provider library, whose dependencies decide whether CUDA works."""
    name = "onnxruntime_providers_cuda.dll" if sys.platform == "win32" else "libonnxruntime_providers_cuda.so"
    path = Path(ort.__file__).parent / "capi" / name
    return path if path.is_file() else None


def physical_cores() -> int:
    """Cores this process may run on, hyper-threads counted once (Linux); the logical count elsewhere."""
    try:
        cpus = os.sched_getaffinity(0)
    except AttributeError:
        return os.cpu_count() or 1
    cores = set()
    for cpu in cpus:
        topology = Path(f"/sys/devices/system/cpu/cpu{cpu}/topology")
        try:
            cores.add(((topology / "physical_package_id").read_text(), (topology / "core_id").read_text()))
        except OSError:
            return len(cpus)
    return max(len(cores), 1)


def session_options(threads: int | None = None) -> ort.SessionOptions:
    """Low-latency options: one sequential run at a time, all graph optimizations, one thread per core."""
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.intra_op_num_threads = threads or physical_cores()
    options.inter_op_num_threads = 1
    options.log_severity_level = 3  # errors only; our one line says which device runs
    return options


class Denoiser:
    """The network behind one call: ``(B, 1, L, 3)`` sample and ``(B,)`` timesteps -> ``(B, 1, L, 3)``.

    Inputs and output are bound once per batch size (IO binding) and reused every step; on
    CUDA they live on the GPU. Calls are serialized by a lock, so one Denoiser may be shared
    between threads. With a ``guide`` and a ``guidance`` weight above 0, every call is
    autoguided (:mod:`bridge.guidance`). A network conditioned on styles (``card.styles``) is fed
    ``style``: one index for every sample or one per sample, "no style" until one is set.
    """

    def __init__(self, session: ort.InferenceSession, card: ModelCard, model_dir: Path, device: str,
                 precision: str = "fp32") -> None:  # fmt: skip
        self.session = session
        self.card = card
        self.model_dir = model_dir
        self.device = device
        self.precision = precision
        self.guide: Denoiser | None = None  # set by set_guidance when the card names a guide
        self.guidance = 0.0
        self.style: np.ndarray | None = None if card.styles is None else np.asarray(card.styles.none, np.int32)
        self._buffers: dict[int, _Buffers] = {}
        self._lock = threading.Lock()

    @property
    def length(self) -> int:
        """L, the notes per segment."""
        return self.card.length

    def __call__(self, sample: np.ndarray, timestep: np.ndarray) -> np.ndarray:
        """One network run: ``sample`` ``(B, 1, L, 3)``, ``timestep`` ``(B,)`` (0 .. T-1) -> a new ``(B, 1, L, 3)``."""
        batch = self._check_inputs(sample, timestep)
        with self._lock:
            buffers = self._buffers.get(batch)
            if buffers is None:
                buffers = self._buffers[batch] = _Buffers.allocate(
                    self.session, batch, self.length, self.device, styled=self.style is not None
                )
            prediction = buffers.run(self.session, sample, timestep, self.style)
        if self.guide is not None and self.guidance:
            if self.guide.style is not None:  # a styled guide hears the style the model was given
                self.guide.style = self.style
            prediction += self.guidance * (prediction - self.guide(sample, timestep))
        return prediction

    @property
    def style_name(self) -> str | None:
        """The name of the one style the calls are conditioned on (None: no styles, or one per sample)."""
        if self.card.styles is None or self.style is None or self.style.ndim:
            return None
        return self.card.styles.name(int(self.style))

    def set_style(self, style: int | np.ndarray) -> None:
        """Condition the next calls on ``style``: one index (``card.styles.none``: no style) or one per sample."""
        styles = self.card.styles
        if styles is None:
            raise BridgeError(f"model {self.card.name!r} is not conditioned on styles")
        indices = np.asarray(style, np.int32)
        if indices.ndim > 1 or not np.all((indices >= 0) & (indices <= styles.none)):
            raise BridgeError(f"style indices must lie in 0 .. {styles.none} (one, or one per sample), got {style!r}")
        self.style = indices

    def _check_inputs(self, sample: np.ndarray, timestep: np.ndarray) -> int:
        """The batch size, after checking shapes against the card and timesteps against the schedule."""
        shape, expected = np.shape(sample), self.card.inputs["sample"].shape
        fixed_batch = expected[0] is None or shape[:1] == expected[:1]
        if len(shape) != 4 or shape[1:] != expected[1:] or not fixed_batch or shape[0] < 1:
            batch = "batch" if expected[0] is None else str(expected[0])
            raise BridgeError(
                f"model {self.card.name!r} takes samples of shape ({batch}, {', '.join(map(str, expected[1:]))}), "
                f"got {shape}"
            )
        if np.shape(timestep) != shape[:1]:
            raise BridgeError(f"timestep must have shape ({shape[0]},), one per sample, got {np.shape(timestep)}")
        last = self.card.schedule.steps - 1
        if not 0 <= np.min(timestep) <= np.max(timestep) <= last:
            raise BridgeError(f"timesteps must lie in 0 .. {last}, got {np.min(timestep)} .. {np.max(timestep)}")
        if self.style is not None and self.style.ndim and self.style.shape != shape[:1]:
            raise BridgeError(f"{len(self.style)} styles are set, one per sample, but the batch has {shape[0]}")
        return shape[0]


@dataclass(frozen=True)
class _Buffers:
    """One batch size's IO binding: inputs and output stay bound on the device, run after run.

    On CPU an OrtValue made from a numpy array shares its memory, so copying into the host
    array is all a run needs; on CUDA the host array is then copied to the GPU in place.
    """

    hosts: tuple[np.ndarray, ...]  # sample, timestep (and style)
    device: str
    binding: ort.IOBinding
    inputs: tuple[ort.OrtValue, ...]
    output: ort.OrtValue

    @classmethod
    def allocate(cls, session: ort.InferenceSession, batch: int, length: int, device: str, *,
                 styled: bool = False) -> _Buffers:  # fmt: skip
        sample = np.zeros((batch, 1, length, 3), np.float32)
        hosts = (sample, np.zeros((batch,), np.float32), *([np.zeros((batch,), np.int32)] if styled else []))
        inputs = tuple(ort.OrtValue.ortvalue_from_numpy(host, device, 0) for host in hosts)
        output = ort.OrtValue.ortvalue_from_shape_and_type(sample.shape, np.float32, device, 0)
        binding = session.io_binding()
        for name, value in zip(("sample", "timestep", "style"), inputs, strict=False):
            binding.bind_ortvalue_input(name, value)
        binding.bind_ortvalue_output("prediction", output)
        return cls(hosts, device, binding, inputs, output)

    def run(self, session: ort.InferenceSession, *values: np.ndarray | None) -> np.ndarray:
        """Copy the inputs in (converting to the bound types, broadcasting one style to the batch), run,
        and return a copy the caller owns."""
        for host, value, bound in zip(self.hosts, values, self.inputs, strict=False):
            np.copyto(host, value, casting="same_kind")
            if self.device != "cpu":
                bound.update_inplace(host)
        session.run_with_iobinding(self.binding)
        return np.array(self.output.numpy(), copy=True)  # on CPU .numpy() is a view the next run overwrites


def load_model(
    name_or_path: str | os.PathLike[str] | None = None,
    device: str = "auto",
    *,
    threads: int | None = None,
    precision: str = "auto",
    guidance: float | None = None,
) -> Denoiser:
    """Load a model folder (path, or name under ``weights/``; None: the default) on ``device``.

    Verifies the card and the checksum of the graph it runs, checks the graph against the card,
    and logs one line saying which device and precision run it (``precision``: see PRECISIONS).
    ``guidance``: the autoguidance weight; None takes the card's, 0 turns the guide off.
    """
    if device not in DEVICES:
        raise BridgeError(f"device {device!r} is unknown; use one of {', '.join(DEVICES)}")
    if precision not in PRECISIONS:
        raise BridgeError(f"precision {precision!r} is unknown; use one of {', '.join(PRECISIONS)}")
    model = _open(resolve_model_dir(name_or_path), device, session_options(threads), precision)
    set_guidance(model, guidance)
    return model


def set_guidance(model: Denoiser, asked: float | None) -> None:
    """Guide ``model`` at ``asked`` (None: the card's weight, 0: off).

    The guide is loaded the first time a weight above 0 needs it and kept when guidance is turned
    off, so a live change back costs nothing. BridgeError (and no change) for a bad weight.
    """
    weight = guidance_weight(model.card, asked)
    if weight and model.guide is None:
        model.guide = _load_guide(model)
    model.guidance = weight
    if model.guide is not None and weight:
        log.info("guided by %r at weight %g (autoguidance)", model.guide.card.name, weight)


def _open(directory: Path, device: str, options: ort.SessionOptions, precision: str) -> Denoiser:
    """The model folder's graph in a session on ``device``, checked against its card, unguided."""
    card = read_card(directory)
    files = model_files(card, directory, precision)
    session, note = _create_session(files, device, options)
    used = "cuda" if session.get_providers()[0] == CUDA_PROVIDER else "cpu"
    model = files[used]
    half = model != directory / card.model_file
    if half:  # read_card checked model.onnx; the variant has its own checksum
        verify_checksum(model, card.variants["fp16"]["sha256"], directory / CARD_FILE)  # type: ignore[index]
    _check_graph(session, card, model)
    threads = options.intra_op_num_threads
    where = "CUDA" if used == "cuda" else f"CPU ({threads} thread{'' if threads == 1 else 's'})"
    precision = "fp16" if half else "fp32"
    log.info("model %r (%s) runs on %s in %s, onnxruntime %s%s", card.name, directory, where, precision,
             ort.__version__, note)  # fmt: skip
    return Denoiser(session, card, directory, used, precision)


def _load_guide(model: Denoiser) -> Denoiser:
    """The guide named by ``model``'s card, on the model's device, in one thread.

    The guide is a small part of each step's work; a second pool of threads would spin between
    runs and take the cores from the model (benchmarks/sampling.py; docs/evaluation.md).
    """
    assert model.card.guide is not None
    folder = model.model_dir / model.card.guide.folder
    if not (folder / CARD_FILE).is_file():
        raise BridgeError(f"{folder} is missing (the card of {model.card.name!r} names it as its guide); "
                          "attach the guide again with 'dmc guide' or use --guidance 0")  # fmt: skip
    guide = _open(folder, model.device, session_options(1), "auto")
    check_guide(model.card, guide.card)
    return guide


def model_files(card: ModelCard, directory: Path, precision: str) -> dict[str, Path]:
    """The graph each device runs: fp16 where asked, or with ``auto`` on CUDA when the card ships that variant
    (on CPU onnxruntime computes fp16 slower than fp32, so auto keeps fp32 there)."""
    fp16 = (card.variants or {}).get("fp16")
    if precision == "fp16" and fp16 is None:
        raise BridgeError(
            f"model {card.name!r} has no fp16 variant; export one with 'dmc export --fp16' or use precision fp32"
        )
    full = directory / card.model_file
    half = directory / fp16["model_file"] if fp16 else full
    return {"cpu": half if precision == "fp16" else full, "cuda": full if precision == "fp32" else half}


def _create_session(
    files: dict[str, Path], device: str, options: ort.SessionOptions
) -> tuple[ort.InferenceSession, str]:
    """The session on the chosen device, and a note for the log line when auto fell back to CPU."""
    if device == "cpu":
        return _session(files["cpu"], options, [CPU_PROVIDER]), ""
    cuda = check_cuda()
    if cuda.usable:
        session = _session(files["cuda"], options, [CUDA_PROVIDER, CPU_PROVIDER], quiet=device == "auto")
        if session.get_providers()[0] == CUDA_PROVIDER:
            return session, ""
        cuda = CudaCheck(False, "onnxruntime could not start a CUDA session (is a GPU and its driver present?)")
    if device == "cuda":
        raise BridgeError(f"CUDA was asked for (--device cuda), but {cuda.reason}; use --device cpu or auto")
    listed = CUDA_PROVIDER in ort.get_available_providers()
    return _session(files["cpu"], options, [CPU_PROVIDER]), f"; CUDA not used: {cuda.reason}" if listed else ""


def _session(
    model: Path, options: ort.SessionOptions, providers: list[str], *, quiet: bool = False
) -> ort.InferenceSession:
    """An InferenceSession; ``quiet`` mutes onnxruntime's process-wide logger while it probes CUDA."""
    try:
        if quiet:
            ort.set_default_logger_severity(ORT_QUIET_LOG_SEVERITY)
        return ort.InferenceSession(str(model), options, providers=providers)
    except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph/... types
        raise BridgeError(f"onnxruntime cannot load {model}: {exc}; re-export the model") from exc
    finally:
        if quiet:
            ort.set_default_logger_severity(ORT_DEFAULT_LOG_SEVERITY)


def _check_graph(session: ort.InferenceSession, card: ModelCard, model: Path) -> None:
    """The graph's names and shapes must be the card's: a mismatch means a wrong export."""
    graph = {a.name: a.shape for a in (*session.get_inputs(), *session.get_outputs())}
    declared = {**card.inputs, **card.outputs}
    for name, spec in declared.items():
        shape = graph.get(name)
        if shape is None or len(shape) != len(spec.shape) or any(
            isinstance(g, int) and g != d for g, d in zip(shape, spec.shape, strict=True)
        ):
            raise BridgeError(
                f"{model} does not match its card: {name} is {shape} in the graph, {list(spec.shape)} in "
                "the card; re-export the model"
            )

"""The ``signal`` modality: 1-D float64 signals (sensor traces), written against :mod:`wmbench.api`.

Everything wmbench needs to run, store, measure and report a kind of content it has
never heard of is in the :class:`~wmbench.api.Modality` that :func:`modality` returns;
the ``wmbench.modalities`` entry point in ``pyproject.toml`` names that function.

Items. A signal is a ``numpy`` array of ``float64``, one dimension, finite values. It
is read from ``.npy`` (any real numeric dtype, converted) or ``.csv`` (one value per
line, blank lines skipped) and cached in a run's folder as ``.npy``.

Samples. The suite's ``[samples] signals = [...]`` lists ``"builtin:signals"`` and/or
folders or files of ``.npy``/``.csv``. The built-in set is 8 synthetic traces of 4,096
samples, sums of three sines plus white noise, generated in code from a fixed seed
(nothing downloaded). wmbench names a sample by its file (a run's manifest records it,
its report reads the original back from it, a Dask worker must see it), so the traces
are written once, as ``.npy``, to ``$XDG_CACHE_HOME/wmbench-example-signal/`` (else
``~/.cache/...``) when a suite or ``wmbench list samples`` first asks for them.

Quality. ``snr`` is the signal-to-noise ratio of the item against the clean original,
in dB, with the original's variance as the signal power and the mean square of the
difference as the noise power: ``10 log10(var(x) / mean((y - x)**2))``. A mark or an
attack that adds noise of standard deviation ``f * std(x)`` therefore reads
``-20 log10(f)`` dB, whatever the signal's scale or offset. ``correlation`` is
Pearson's r between item and original. Both need the two at the same length; a
metric that cannot be measured stays empty and the cell says why.

Errors. ``load`` raises ``ValueError`` with a one-line message naming the file:
``wmbench.api`` does not export wmbench's ``SampleError``, and the runner records any
exception from ``load`` as the error of that sample's cells.
"""

from __future__ import annotations

import math
import os
import tempfile
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from wmbench.api import EdgeCase, MetricSpec, Modality, NegativePools, Sample, SampleError, SampleKind, SuiteError

NAME = "signal"
SUFFIXES = (".npy", ".csv")
BUILTIN = "builtin:signals"
BUILTIN_COUNT = 8
BUILTIN_LENGTH = 4096
BUILTIN_SEED = 20_240_601
BUILTIN_VERSION = 1  # bump when the generator changes: the cached files live in a folder named after it
MAX_SAMPLES = 50_000_000  # 400 MB of float64: refuse larger files with a reason, not a memory error

METRICS = (
    MetricSpec(
        "snr", "SNR", unit="dB", higher_is_better=True,
        reference="the clean original, sample-aligned (empty when an attack changed the length)",
        acceptable=20.0,
        acceptable_source="IFPI's requirement for audio watermarks (SNR above 20 dB), as the audio-watermarking "
                          "literature cites it; adopted here for 1-D signals",
        description="signal-to-noise ratio against the clean original: 10 log10(var(original) / "
                    "mean((item - original)^2))",
        digits=1),
    MetricSpec(
        "correlation", "Correlation", higher_is_better=True,
        reference="the clean original, sample-aligned (empty when an attack changed the length)",
        description="Pearson correlation of the item with the clean original (-1 to 1)", digits=4,
        show_unmarked=False),
)


# -- items: reading, writing, the contract ---------------------------------------------------

def load(source: str) -> np.ndarray:
    """A ``.npy`` or ``.csv`` file as a 1-D ``float64`` array, or ``ValueError`` with one line."""
    path = Path(source)
    name = path.name
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise SampleError(f"{name}: not a signal file (expected {' or '.join(SUFFIXES)})")
    if not path.is_file():
        raise SampleError(f"{name}: file not found: {source}")
    try:
        raw = _read_npy(path) if suffix == ".npy" else _read_csv(path)
    except OSError as exc:
        raise SampleError(f"{name}: cannot read: {exc.strerror or exc}") from None
    return _checked(np.asarray(raw), name)


def _read_npy(path: Path) -> np.ndarray:
    try:
        return np.load(path, allow_pickle=False)
    except (ValueError, EOFError) as exc:  # not an .npy file, truncated, or pickled objects
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise SampleError(f"{path.name}: not a readable .npy array ({reason})") from None


def _read_csv(path: Path) -> np.ndarray:
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise SampleError(f"{path.name}: not UTF-8 text (byte {exc.start})") from None
    values = []
    for number, line in enumerate(text.splitlines(), start=1):
        cell = line.strip()
        if not cell:
            continue
        try:
            values.append(float(cell))
        except ValueError:
            shown = cell if len(cell) <= 30 else cell[:27] + "..."
            raise SampleError(f"{path.name}: line {number} is not a number: {shown!r} "
                             f"(a .csv signal has one value per line)") from None
        if len(values) > MAX_SAMPLES:
            break
    return np.array(values, dtype=np.float64)


def _checked(raw: np.ndarray, name: str) -> np.ndarray:
    if raw.ndim == 2 and 1 in raw.shape:  # a column or a row vector: one signal all the same
        raw = raw.reshape(-1)
    if raw.ndim != 1:
        raise SampleError(f"{name}: expected one signal (a 1-D array), got an array of shape {raw.shape}")
    if raw.dtype.kind not in "fiu":
        raise SampleError(f"{name}: expected real numbers, got dtype {raw.dtype}")
    if raw.size == 0:
        raise SampleError(f"{name}: empty signal")
    if raw.size > MAX_SAMPLES:
        raise SampleError(f"{name}: more than {MAX_SAMPLES:,} samples; split it into shorter signals")
    signal = np.ascontiguousarray(raw, dtype=np.float64)
    bad = np.flatnonzero(~np.isfinite(signal))
    if bad.size:
        raise SampleError(f"{name}: sample {int(bad[0])} is {signal[bad[0]]} (NaN or infinity); "
                         f"{bad.size} such sample(s) in all")
    return signal


def save(item: np.ndarray, path: Path) -> None:
    """Write ``item`` as ``.npy`` atomically: a temporary file in the same folder, then a rename,
    so a worker killed mid-write never leaves half an array where a later cell reads it."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            np.save(fh, np.asarray(item, dtype=np.float64), allow_pickle=False)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def problem(item: Any) -> str | None:
    """Why an attack's output is not a signal, or None."""
    if not isinstance(item, np.ndarray):
        return f"returned {type(item).__name__}, not a 1-D float64 numpy array"
    if item.ndim != 1 or item.dtype != np.float64:
        return f"returned a {item.dtype} array of shape {item.shape}, not a 1-D float64 array"
    if not np.all(np.isfinite(item)):
        return "returned NaN or infinite values"
    return None


# -- samples ---------------------------------------------------------------------------------

def builtin_signal(index: int, length: int = BUILTIN_LENGTH) -> np.ndarray:
    """Built-in trace ``index``: three sines (periods 128 to 2,048 samples, random amplitudes
    and phases) plus white noise of standard deviation 0.02 to 0.15, from a fixed seed."""
    rng = np.random.default_rng([BUILTIN_SEED, index])
    t = np.arange(length, dtype=np.float64)
    periods = np.exp(rng.uniform(math.log(128.0), math.log(2048.0), size=3))
    amplitudes = rng.uniform(0.3, 1.0, size=3)
    phases = rng.uniform(0.0, 2.0 * math.pi, size=3)
    trace = sum(a * np.sin(2.0 * math.pi * t / p + ph) for a, p, ph in zip(amplitudes, periods, phases))
    return trace + rng.normal(0.0, rng.uniform(0.02, 0.15), size=length)


def builtin_folder() -> Path:
    """Where the built-in traces are written: ``$XDG_CACHE_HOME`` (else ``~/.cache``)."""
    root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return root / "wmbench-example-signal" / f"builtin-signals-v{BUILTIN_VERSION}"


def builtin_files() -> list[Path]:
    """The built-in traces as ``.npy`` files, written on first use (atomically, so parallel
    callers agree); a file already there is trusted, since its folder names the generator."""
    folder = builtin_folder()
    files = [folder / f"trace-{i}.npy" for i in range(BUILTIN_COUNT)]
    try:
        folder.mkdir(parents=True, exist_ok=True)
        for i, path in enumerate(files):
            if not path.is_file():
                save(builtin_signal(i), path)
    except OSError as exc:
        raise SuiteError(f"{BUILTIN}: cannot write the generated traces to {folder}: {exc.strerror or exc} "
                         f"(set XDG_CACHE_HOME to a writable folder)") from None
    return files


def discover(sources: tuple[str, ...], base_dir: Path) -> list[Sample]:
    """``builtin:signals``, folders (their ``.npy``/``.csv`` files, sorted) and single files
    as samples, one per file; a repeated file counts once, a repeated name gets ``#2``."""
    named: list[tuple[str, Path]] = []  # (sample id, file)
    for source in sources:
        if source == BUILTIN:
            named += [(path.stem, path) for path in builtin_files()]  # trace-0 ... trace-7
            continue
        path = (Path(base_dir) / source).resolve()
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.suffix.lower() in SUFFIXES and p.is_file())
            if not found:
                raise SuiteError(f"{path}: no signals ({', '.join(SUFFIXES)}) in this folder")
            named += [(p.name, p) for p in found]
        else:
            named.append((path.name, path))  # the suite checked that it exists; load() says if it is no signal
    samples: list[Sample] = []
    seen_files: set[Path] = set()
    seen_ids: dict[str, int] = {}
    for sample_id, path in named:
        if path in seen_files:
            continue
        seen_files.add(path)
        n = seen_ids[sample_id] = seen_ids.get(sample_id, 0) + 1
        samples.append(Sample(id=sample_id if n == 1 else f"{sample_id}#{n}", modality=NAME, source=str(path)))
    return samples


# -- quality ---------------------------------------------------------------------------------

def _aligned(reference: np.ndarray, item: np.ndarray) -> str | None:
    if reference.shape != item.shape:
        return f"not measured: the item has {item.size} samples, the original {reference.size}"
    if reference.size == 0:
        return "not measured: empty signal"
    return None


def snr(reference: np.ndarray, item: np.ndarray) -> tuple[float | None, str | None]:
    """(SNR in dB, None), or (None, why not); infinite when the item equals the original."""
    reason = _aligned(reference, item)
    if reason:
        return None, reason
    power = float(np.var(reference))
    if power == 0.0:
        return None, "not measured: the original is constant, so it has no signal power"
    noise = float(np.mean((item - reference) ** 2))
    return (math.inf if noise == 0.0 else 10.0 * math.log10(power / noise)), None


def correlation(reference: np.ndarray, item: np.ndarray) -> tuple[float | None, str | None]:
    """(Pearson's r, None), or (None, why not)."""
    reason = _aligned(reference, item)
    if reason:
        return None, reason
    a, b = reference - reference.mean(), item - item.mean()
    norm = math.sqrt(float(np.dot(a, a)) * float(np.dot(b, b)))
    if norm == 0.0:
        return None, "not measured: a constant signal has no correlation"
    return max(-1.0, min(1.0, float(np.dot(a, b)) / norm)), None


def measure(reference: Any, item: Any, options: Mapping[str, Any]) -> dict[str, Any]:
    """Both metrics against the reference (the clean original); a missing one says why."""
    out: dict[str, Any] = {}
    for name, fn in (("snr", snr), ("correlation", correlation)):
        value, reason = fn(np.asarray(reference, dtype=np.float64), np.asarray(item, dtype=np.float64))
        out[name] = value
        if reason:
            out[f"{name}_missing"] = reason
    return out


def edge_cases() -> list[EdgeCase]:
    """What ``wmbench check-plugin`` feeds every signal attack besides the built-in traces."""
    return [
        EdgeCase("an empty signal", np.zeros(0), (ValueError,)),
        EdgeCase("a one-sample signal", np.array([0.5]), (ValueError,)),
        EdgeCase("a constant signal", np.full(64, 2.0), (ValueError,)),
    ]


def _viewer(example: Any) -> Any:
    from wmbench_example_signal.view import build_view

    return build_view(example)


def modality() -> Modality:
    """The object the ``wmbench.modalities`` entry point hands to wmbench."""
    return Modality(
        name=NAME, title="Signals", item_word="signal", contract="a 1-D float64 numpy array of finite values",
        cache_suffix=".npy", load=load, save=save, problem=problem, metrics=METRICS, measure=measure,
        sample_kinds=(SampleKind("signals", "item", BUILTIN, discover),),
        damage_metric="snr",
        pools=NegativePools(unpaired="recorded traces", unpaired_short="recorded", sources="traces"),
        edge_cases=edge_cases, viewer=_viewer,
        description="1-D float64 signals (sensor traces) from .npy/.csv; built-in: 8 synthetic traces, "
                    "generated from a fixed seed",
    )

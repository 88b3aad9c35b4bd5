"""Adapters for imwatermark's three methods: dwtDct, dwtDctSvd and rivaGan.

The library is measured as it ships. In particular dwtDct skips its DCT step
(upstream issue #2, PR #43): it fails to decode some clean photos and returns
near-constant bits on unmarked photos, so its false-positive rate depends on the
payload. We do not correct that here; reports show it as measured.

Payload: 32 bits derived from the key with SHA-256, the same for every method, so a
key means one payload whichever method carries it. Detection compares the decoded
bits with the payload; the p-value is the exact binomial tail P(X >= matches) for
X ~ Binomial(32, 1/2), the chance that an unmarked image matches that well.
"""

from __future__ import annotations

import hashlib
import os
from typing import ClassVar, Sequence

import numpy as np

from wmbench.api import Detection, DetectorRefused, Watermarker, watermarker
from wmbench.stats import binomial_tail

PAYLOAD_BITS = 32
IMWATERMARK_MIN_PIXELS = 256 * 256  # imwatermark refuses smaller images


def payload_bits(key: str, n: int = PAYLOAD_BITS) -> np.ndarray:
    """The key's payload: the first ``n`` bits of SHA-256("wmbench-image-payload:" + key)."""
    digest = hashlib.sha256(f"wmbench-image-payload:{key}".encode()).digest()
    return np.unpackbits(np.frombuffer(digest, dtype=np.uint8))[:n].astype(np.uint8)


def bits_detection(decoded: np.ndarray, key: str, extra: dict | None = None) -> Detection:
    expected = payload_bits(key, len(decoded))
    matched = int(np.sum(np.asarray(decoded, dtype=np.uint8) == expected))
    return Detection(
        score=float(matched),
        p_value=binomial_tail(matched, len(expected)),
        bits_matched=matched,
        bits_total=len(expected),
        extra=extra or {},
    )


def _check_size(image: np.ndarray, error: type[ValueError] = ValueError) -> None:
    h, w = image.shape[:2]
    if h * w < IMWATERMARK_MIN_PIXELS:
        raise error(f"image is {w}x{h}; imwatermark needs at least 256x256 pixels (65,536)")


class _ImwatermarkMethod(Watermarker):
    """Common path: RGB <-> BGR and the bit comparison; the library does the rest."""

    library_method: ClassVar[str]
    modality = "image"
    min_pixels = IMWATERMARK_MIN_PIXELS

    def embed(self, item: np.ndarray, key: str) -> np.ndarray:
        from imwatermark import WatermarkEncoder

        _check_size(item)
        encoder = WatermarkEncoder()
        encoder.set_watermark("bits", payload_bits(key).tolist())
        bgr = np.ascontiguousarray(item[:, :, ::-1])
        marked_bgr = encoder.encode(bgr, self.library_method)
        return np.ascontiguousarray(marked_bgr[:, :, ::-1])

    def detect(self, item: np.ndarray, key: str) -> Detection:
        bits, extra = self.decode(item)
        return bits_detection(bits, key, extra)

    def detect_keys(self, item: np.ndarray, keys: Sequence[str]) -> list[Detection]:
        """One decode, then the bits compared with every key's payload (MultiKeyScoring)."""
        bits, _ = self.decode(item)
        return [bits_detection(bits, key) for key in keys]

    def decode(self, item: np.ndarray) -> tuple[np.ndarray, dict]:
        """The payload bits the library reads from ``item`` (and any soft scores)."""
        from imwatermark import WatermarkDecoder

        _check_size(item, DetectorRefused)
        decoder = WatermarkDecoder("bits", PAYLOAD_BITS)
        bits = decoder.decode(np.ascontiguousarray(item[:, :, ::-1]), self.library_method)
        return np.asarray(bits, dtype=np.uint8), {}


@watermarker
class DwtDct(_ImwatermarkMethod):
    """imwatermark dwtDct (as shipped: known to skip its DCT step, upstream issue #2)."""

    name = "dwtDct"
    library_method = "dwtDct"


@watermarker
class DwtDctSvd(_ImwatermarkMethod):
    """imwatermark dwtDctSvd: DWT, then DCT, then SVD of 4x4 blocks on the U channel."""

    name = "dwtDctSvd"
    library_method = "dwtDctSvd"


def _onnx_threads() -> int:
    """Intra-op threads for ONNX Runtime: WMBENCH_THREADS if the runner set it."""
    return max(1, int(os.environ.get("WMBENCH_THREADS", "0") or 0) or (os.cpu_count() or 1))


@watermarker
class RivaGan(_ImwatermarkMethod):
    """imwatermark rivaGan: a learned encoder/decoder (ONNX) with 32-bit payloads.

    Detection runs the library's own decoder session and thresholds at the library's
    0.52, so the bits equal ``WatermarkDecoder.decode(..., "rivaGan")`` (a test checks
    it); we keep the raw decoder outputs as soft scores. The sessions are the
    library's model files, opened with a thread count that fits the worker layout.
    """

    name = "rivaGan"
    library_method = "rivaGan"
    relative_cost = 40.0  # ~1.7 s per encode or decode at 512x512, against ~0.05 s for the others
    threshold: ClassVar[float] = 0.52  # imwatermark's RivaWatermark default

    def __init__(self) -> None:
        import onnxruntime
        from imwatermark.rivaGan import RivaWatermark

        if RivaWatermark.encoder is None or RivaWatermark.decoder is None:
            model_dir = os.path.dirname(os.path.abspath(__import__("imwatermark").rivaGan.__file__))
            options = onnxruntime.SessionOptions()
            options.intra_op_num_threads = _onnx_threads()
            options.inter_op_num_threads = 1
            providers = ["CPUExecutionProvider"]
            RivaWatermark.encoder = onnxruntime.InferenceSession(
                os.path.join(model_dir, "rivagan_encoder.onnx"), options, providers=providers
            )
            RivaWatermark.decoder = onnxruntime.InferenceSession(
                os.path.join(model_dir, "rivagan_decoder.onnx"), options, providers=providers
            )

    def decode(self, item: np.ndarray) -> tuple[np.ndarray, dict]:
        from imwatermark.rivaGan import RivaWatermark

        _check_size(item, DetectorRefused)
        bgr = item[:, :, ::-1].astype(np.float32) / 127.5 - 1.0
        frame = np.transpose(bgr[None], (3, 0, 1, 2))[None]  # 1 x C x T x H x W as the library feeds it
        soft = RivaWatermark.decoder.run(None, {"frame": np.ascontiguousarray(frame)})[0][0]
        bits = (soft > self.threshold).astype(np.uint8)
        return bits, {"soft": [round(float(s), 4) for s in soft]}

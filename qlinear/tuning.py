"""Measured kernel choices per M bucket: the ``qlinear tune`` cache and built-in defaults.

The cache file (``$QLINEAR_TUNE_CACHE``, default ``~/.cache/qlinear/tuned.json``) maps
``"<GPU name>|torch <v>|triton <v>|<scheme>|<N>x<K>"`` to ``{bucket label: kernel name}``. A choice is
a preference, not a command: selection still runs every check on it. Built-in defaults
(:data:`DEFAULTS`, measured on our GPUs and recorded in ``bench/results/``) apply per GPU name and
scheme when the cache has no entry for the shape.
"""
from __future__ import annotations

import functools
import json
import os
from pathlib import Path

from .kernels.base import LayerConfig
from .platform import Platform

# GPU name -> scheme -> bucket -> kernel; from bench/results/h200_*.md. Block FP8 at M = 2..64:
# the swapped Triton GEMM beat cuBLASLt blockwise (which the static priority puts first, for
# prefill) at every issue shape for M = 2..16 (h200_bench_decode_tma.csv) and at 4 of 5 for M = 64
# (h200_final_bench_issue.csv); the e2e decode step at batch 16 ran cuBLASLt on all 224 layers.
# NVFP4/MXFP4 at M = 1..16: the Gluon W4A16 kernel beat the Triton GEMV at one token (1.03-1.26x)
# and the Triton MMA kernel at 4 and 16 tokens (1.7-2.3x, 1.1-1.6x) on all four issue shapes, both
# formats (bench/results/h200_issue4.md, 2026-12-01); 17..64 stays with the Triton MMA kernel.
_GLUON_W4A16_DECODE = {"1": "gluon_w4a16", "2-16": "gluon_w4a16"}
# Per-channel FP8 prefill: with each K-tile's e4m3 product summed in fp32 (for accuracy over long K)
# the Gluon GEMM keeps 128-row tiles and ran 0-6% behind cuBLAS rowwise at M = 512, 1024 and 4096
# on all five issue shapes (h200_issue3_accum_precision.txt, 2026-12-01); decode stays with Triton
# (cuBLAS 1.3-2.4x slower at M = 1..64, same file).
_CUBLAS_PREFILL = {"65-1024": "cublas_fp8", "1025+": "cublas_fp8"}
DEFAULTS: dict[str, dict[str, dict[str, str]]] = {
    "NVIDIA H200": {"fp8_per_block": {"2-16": "triton_fp8_block", "17-64": "triton_fp8_block"},
                    "nvfp4_a16": _GLUON_W4A16_DECODE, "mxfp4_a16": _GLUON_W4A16_DECODE,
                    "nvfp4": _GLUON_W4A16_DECODE, "fp8_per_channel": _CUBLAS_PREFILL},
}


def cache_path() -> Path:
    return Path(os.environ.get("QLINEAR_TUNE_CACHE", Path.home() / ".cache" / "qlinear" / "tuned.json"))


def _versions() -> str:
    import torch

    try:
        import triton

        triton_version = triton.__version__
    except ImportError:
        triton_version = "none"
    return f"torch {torch.__version__}|triton {triton_version}"


def shape_key(platform: Platform, scheme: str, n: int, k: int) -> str:
    return f"{platform.device_name}|{_versions()}|{scheme}|{n}x{k}"


@functools.cache
def _load(path: Path, mtime: float) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise ValueError(f"tuning cache {path} is unreadable: {err}; delete it or run `qlinear tune` again") from err


def load_cache() -> dict:
    path = cache_path()
    if not path.is_file():
        return {}
    return _load(path, path.stat().st_mtime)


def tuned_choices(platform: Platform, config: LayerConfig) -> dict[str, str] | None:
    """Measured ``{bucket label: kernel}`` for this GPU and layer shape, else the GPU's defaults."""
    if platform.kind != "cuda":
        return None
    entry = load_cache().get(shape_key(platform, config.scheme.name, config.out_features, config.in_features))
    if entry is not None:
        return entry
    return DEFAULTS.get(platform.device_name, {}).get(config.scheme.name)


def record(platform: Platform, scheme: str, n: int, k: int, choices: dict[str, str]) -> Path:
    """Store measured choices for one shape in the cache file; returns its path."""
    path = cache_path()
    data = load_cache() if path.is_file() else {}
    data[shape_key(platform, scheme, n, k)] = choices
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=1, sort_keys=True))
    tmp.replace(path)
    return path


# One representative M per dispatch bucket, timed by `qlinear tune`.
BUCKET_SAMPLES = {"1": 1, "2-16": 16, "17-64": 64, "65-1024": 512, "1025+": 4096}


def tune_shape(scheme: str, n: int, k: int, platform: Platform, time_kernel) -> dict[str, dict[str, float]]:
    """Time every candidate kernel of ``scheme`` for an ``[n, k]`` layer at each bucket's sample M.

    ``time_kernel(kernel_class, m) -> microseconds`` does the timing (the GPU benchmark in
    ``qlinear tune``; tests pass their own). Returns ``{bucket: {kernel: us}}``; emulation is not a
    candidate, and a kernel that fails to run is left out of its bucket.
    """
    from .kernels import fast_candidates
    from .schemes import SCHEMES

    timings: dict[str, dict[str, float]] = {}
    for label, m in BUCKET_SAMPLES.items():
        for kernel in fast_candidates(LayerConfig(SCHEMES[scheme], n, k, min_m=m, max_m=m), platform):
            try:
                timings.setdefault(label, {})[kernel.name] = time_kernel(kernel, m)
            except Exception as err:  # noqa: BLE001 (a candidate that cannot run is simply not chosen)
                print(f"tune: {kernel.name} failed for {scheme} {n}x{k} M={m}: {type(err).__name__}: {err}")
    return timings


def fastest(timings: dict[str, dict[str, float]]) -> dict[str, str]:
    return {label: min(times, key=times.get) for label, times in timings.items() if times}

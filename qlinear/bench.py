"""Side-by-side GPU benchmark of every candidate kernel, with bf16 and cuBLAS FP8 reference lines.

Method (``bench/results/`` holds what it measured): ``triton.testing.do_bench`` medians (for
M <= 64, ``do_bench_cudagraph``: decode steps run as CUDA graphs in engines, so launch gaps are not
the kernels' time; ``graph=True``, the CLI's ``--graph``, times every M so: where the host's launch
cost exceeds a prefill layer's GPU time, as on our GPU machine at ~50 us per Triton launch, eager
medians measure the host), each call on a different copy of the layer so the weights streamed per call exceed L2 (decode would
otherwise read them from cache), random inputs (never zeros), activation quantization included in
every qlinear kernel's time. The floor of a case is the larger of its FLOPs at the measured FP8
rate (cuBLAS tensorwise, 8192^3) and its bytes (weight + scales + x + y) at the measured copy
bandwidth.
"""
from __future__ import annotations

import csv
import dataclasses
import itertools
from dataclasses import dataclass

import torch

from .formats import quantize
from .kernels import Dispatch, LayerConfig, fast_candidates
from .layers import QuantizedLinear
from .platform import platform_of
from .schemes import SCHEMES

PRESETS: dict[str, list[tuple[int, int]]] = {
    # (N, K) of the distinct linear shapes
    "llama3-8b": [(6144, 4096), (4096, 4096), (28672, 4096), (4096, 14336)],
    "qwen3-32b": [(10240, 5120), (5120, 8192), (51200, 5120), (5120, 25600)],
    "deepseek-v3": [(2112, 7168), (24576, 1536), (7168, 16384), (4096, 7168), (36864, 7168), (7168, 18432)],
    "issue": [(4096, 4096), (14336, 4096), (4096, 14336), (28672, 4096), (7168, 16384)],
}
ROTATE_BYTES = 256 * 2**20  # > 4x the H200's 60 MB L2


@dataclass
class Ceilings:
    copy_bytes_per_s: float
    fp8_flops_per_s: float
    bf16_flops_per_s: float


@dataclass
class Row:
    n: int
    k: int
    m: int
    scheme: str
    kernel: str
    us: float
    tflops: float
    tbps: float
    floor_us: float

    @property
    def pct_of_floor(self) -> float:
        return 100.0 * self.floor_us / self.us


GRAPH_MAX_M = 64  # decode sizes are timed as CUDA-graph replays (as engines run them), larger M eagerly


def median_us(fn, warmup_ms: float = 25, rep_ms: float = 100) -> float:
    import triton.testing

    return 1000.0 * triton.testing.do_bench(fn, warmup=warmup_ms, rep=rep_ms, return_mode="median")


def graph_median_us(fn, rep_ms: float = 100) -> float:
    """Median of CUDA-graph replays of ``fn``: launch gaps removed, as in a graph-captured decode step."""
    import triton.testing

    return 1000.0 * triton.testing.do_bench_cudagraph(fn, rep=rep_ms, return_mode="median")


def time_us(fn, m: int, graph: bool = False) -> float:
    """Microseconds of ``fn`` over ``m`` rows: CUDA-graph replays up to :data:`GRAPH_MAX_M` rows, or at
    every ``m`` with ``graph``; eager ``do_bench`` medians otherwise."""
    return graph_median_us(fn) if graph or m <= GRAPH_MAX_M else median_us(fn)


def reference_us(fn, m: int, graph: bool = False) -> float:
    """:func:`time_us` for a reference line (bf16, cuBLAS): with ``graph`` above :data:`GRAPH_MAX_M`,
    the faster of graph replays and eager calls (cuBLAS bf16 ran slower captured in a graph on the
    H200), so no qlinear kernel is compared with a handicapped reference."""
    if graph and m > GRAPH_MAX_M:
        return min(graph_median_us(fn), median_us(fn))
    return time_us(fn, m)


def measure_ceilings(device: str = "cuda") -> Ceilings:
    """Copy bandwidth (bytes read + written) and the bf16 / FP8 (cuBLAS tensorwise) matmul rates."""
    src = torch.empty(2**30, dtype=torch.uint8, device=device).random_()
    dst = torch.empty_like(src)
    copy = 2 * src.numel() / (median_us(lambda: dst.copy_(src)) * 1e-6)
    del src, dst
    n = 8192
    a = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    b = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    bf16 = 2 * n**3 / (median_us(lambda: a @ b) * 1e-6)
    a8, b8 = a.to(torch.float8_e4m3fn), b.to(torch.float8_e4m3fn)
    one = torch.ones((), device=device)
    fp8 = 2 * n**3 / (median_us(lambda: torch._scaled_mm(a8, b8.t(), scale_a=one, scale_b=one, out_dtype=torch.bfloat16)) * 1e-6)
    return Ceilings(copy, fp8, bf16)


def _copies(nbytes_each: int) -> int:
    return max(2, min(32, ROTATE_BYTES // max(nbytes_each, 1) + 1))


def _rotating(fns):
    cycle = itertools.cycle(fns)
    return lambda: next(cycle)()


def _floor_us(m: int, n: int, k: int, weight_bytes: int, ceil: Ceilings, act_bytes: int = 2) -> float:
    flops = 2 * m * n * k
    bytes_moved = weight_bytes + m * k * act_bytes + m * n * 2
    return 1e6 * max(flops / ceil.fp8_flops_per_s, bytes_moved / ceil.copy_bytes_per_s)


def candidates(scheme: str, m: int, n: int, k: int):
    """Kernels that run on this GPU and can implement ``scheme`` at this M (emulation excluded)."""
    return fast_candidates(LayerConfig(SCHEMES[scheme], n, k, min_m=m, max_m=m), platform_of("cuda"))


def time_layers(qweights, scheme, kernel, x: torch.Tensor, graph: bool = False) -> float:
    """Microseconds of ``kernel`` on ``x``, rotating through layers built on ``qweights`` (repeated
    until the weights streamed per round exceed L2); ``graph`` as :func:`time_us`."""
    layers = [QuantizedLinear(qw, None, scheme, Dispatch.single(kernel), "bench") for qw in qweights]
    copies = _copies(qweights[0].nbytes)
    layers = (layers * (copies // len(layers) + 1))[:copies]
    return time_us(_rotating([lambda lay=lay: lay(x) for lay in layers]), x.shape[0], graph)


def bench_case(n: int, k: int, ms: list[int], schemes: list[str], ceil: Ceilings, kernels: list[str] | None = None,
               graph: bool = False):
    """Time bf16, cuBLAS FP8 tensorwise and every candidate of every scheme at each M (``graph`` as
    :func:`time_us`)."""
    rows: list[Row] = []
    gen = torch.Generator(device="cuda").manual_seed(n * 31 + k)
    copies = _copies(n * k)  # counted in fp8 bytes: enough copies for every format
    weights = [torch.randn(n, k, device="cuda", generator=gen, dtype=torch.bfloat16) for _ in range(min(copies, 8))]
    for m in ms:
        x = torch.randn(m, k, device="cuda", generator=gen, dtype=torch.bfloat16)
        flops = 2 * m * n * k

        def add(scheme, kernel, us, wbytes):
            rows.append(Row(n, k, m, scheme, kernel, us, flops / us / 1e6, (wbytes + m * k * 2 + m * n * 2) / us / 1e6,
                            _floor_us(m, n, k, wbytes, ceil)))

        bf16 = [w for w in weights] * (_copies(2 * n * k) // len(weights) + 1)
        add("bf16", "torch.mm", reference_us(_rotating([lambda w=w: x @ w.t() for w in bf16[: _copies(2 * n * k)]]), m, graph),
            2 * n * k)
        w8 = [w.to(torch.float8_e4m3fn) for w in weights]
        x8 = x.to(torch.float8_e4m3fn)
        one = torch.ones((), device="cuda")
        fns = [lambda w=w: torch._scaled_mm(x8, w.t(), scale_a=one, scale_b=one, out_dtype=torch.bfloat16)
               for w in (w8 * (copies // len(w8) + 1))[:copies]]
        add("fp8_tensorwise_ref", "cublas (no act quant)", reference_us(_rotating(fns), m, graph), n * k)
        if m >= 2 and m % 4 == 0 and k % 512 == 0 and n % 128 == 0:
            # cuBLASLt blockwise (1x128 x 128x128) alone, activation quantization excluded: the
            # reference line the block-FP8 kernels are compared with.
            from .kernels.triton.act_quant import quantize_per_group

            xq, xs = quantize_per_group(x, 128, m_major=True)
            blocks = [quantize(w, SCHEMES["fp8_per_block"].weight) for w in weights]
            fns = [lambda q=q: torch._scaled_mm(xq, q.data.t(), scale_a=xs, scale_b=q.scale.t(), out_dtype=torch.bfloat16)
                   for q in (blocks * (copies // len(blocks) + 1))[:copies]]
            add("fp8_blockwise_ref", "cublas (no act quant)", reference_us(_rotating(fns), m, graph), n * k)
        for scheme in schemes:
            qws = [quantize(w, SCHEMES[scheme].weight) for w in weights]
            for kern in candidates(scheme, m, n, k):
                if kernels and kern.name not in kernels:
                    continue
                try:
                    us = time_layers(qws, SCHEMES[scheme], kern, x, graph)
                except Exception as err:  # a candidate that fails is reported, not hidden
                    print(f"  {scheme} {kern.name} M={m} {n}x{k}: FAILED {type(err).__name__}: {str(err)[:200]}")
                    continue
                add(scheme, kern.name, us, qws[0].nbytes)
        del x
    return rows


def write_csv(rows: list[Row], path: str) -> None:
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        fields = [fld.name for fld in dataclasses.fields(Row)] + ["pct_of_floor"]
        w.writerow(fields)
        for r in rows:
            w.writerow([getattr(r, fld) for fld in fields[:-1]] + [round(r.pct_of_floor, 1)])


def print_table(rows: list[Row]) -> None:
    print(f"{'N x K':>12} {'M':>5} {'scheme':20} {'kernel':24} {'us':>9} {'TFLOPS':>8} {'TB/s':>6} {'%floor':>6} {'vs bf16':>7}")
    bf16 = {(r.n, r.k, r.m): r.us for r in rows if r.scheme == "bf16"}
    for r in rows:
        print(f"{r.n:>6}x{r.k:<5} {r.m:>5} {r.scheme:20} {r.kernel:24} {r.us:9.1f} {r.tflops:8.1f} {r.tbps:6.2f} "
              f"{r.pct_of_floor:6.1f} {bf16[(r.n, r.k, r.m)] / r.us:6.2f}x")


def plot(rows: list[Row], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shapes = sorted({(r.n, r.k) for r in rows})
    fig, axes = plt.subplots(1, len(shapes), figsize=(5 * len(shapes), 4), squeeze=False)
    for ax, (n, k) in zip(axes[0], shapes):
        series: dict[str, list[tuple[int, float]]] = {}
        for r in rows:
            if (r.n, r.k) == (n, k):
                series.setdefault(f"{r.scheme}/{r.kernel}", []).append((r.m, r.tflops))
        for label, pts in series.items():
            pts.sort()
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=label)
        ax.set_xscale("log", base=2)
        ax.set_title(f"N={n} K={k}")
        ax.set_xlabel("M")
        ax.set_ylabel("TFLOPS")
    axes[0][0].legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def bench_act_quant(ceil: Ceilings, ms=(4096, 8192), ks=(4096, 14336)) -> list[dict]:
    """Fused activation quantization: bytes (x read, q and scales written) per second vs copy bandwidth."""
    from .kernels.triton.act_quant import quantize_per_group, quantize_per_token

    rows = []
    for m, k in itertools.product(ms, ks):
        xs = [torch.randn(m, k, device="cuda", dtype=torch.bfloat16) for _ in range(_copies(m * k * 3) if m * k * 3 < ROTATE_BYTES else 2)]
        for name, fn, scale_bytes in (
            ("per-token e4m3", lambda x: quantize_per_token(x), m * 4),
            ("per-token int8", lambda x: quantize_per_token(x, torch.int8), m * 4),
            ("1x128 e4m3", lambda x: quantize_per_group(x, 128), m * -(-k // 128) * 4),
            ("1x128 e4m3 M-major", lambda x: quantize_per_group(x, 128, m_major=True), m * -(-k // 128) * 4),
        ):
            us = median_us(_rotating([lambda x=x: fn(x) for x in xs]))
            nbytes = m * k * 3 + scale_bytes
            rows.append({"kernel": name, "m": m, "k": k, "us": us, "tbps": nbytes / us / 1e6,
                         "pct_of_copy": 100 * nbytes / (us * 1e-6) / ceil.copy_bytes_per_s})
            print(f"act quant {name:20} M={m:<5} K={k:<6} {us:8.1f} us {rows[-1]['tbps']:5.2f} TB/s "
                  f"{rows[-1]['pct_of_copy']:5.1f}% of copy", flush=True)
        del xs
    return rows

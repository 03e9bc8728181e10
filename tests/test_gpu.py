"""GPU tests (marker ``gpu``): run on the device machine with ``pytest -m gpu``."""
import copy

import pytest
import torch

import qlinear
from qlinear.formats import dequantize, fake_quantize, quantize
from qlinear.kernels import (
    CublasBlockFp8Kernel,
    CublasFp8Kernel,
    Dispatch,
    EmulationKernel,
    GluonFp8BlockKernel,
    GluonFp8RowwiseKernel,
    GluonInt8Kernel,
    GluonMxfp8Kernel,
    GluonW4A16Kernel,
    IntMMInt8Kernel,
    LayerConfig,
    TritonFp8BlockKernel,
    TritonFp8RowwiseKernel,
    TritonInt8Kernel,
    TritonW4A16Kernel,
    select_kernel,
)
from qlinear.layers import QuantizedLinear
from qlinear.platform import platform_of
from qlinear.schemes import SCHEMES

from .test_kernels import assert_close_to_reference, static_input_scale
from .test_triton_kernels import WEIGHT_ONLY, WEIGHT_ONLY_IDS, computed_scheme

pytestmark = pytest.mark.gpu
MS = [1, 7, 16, 83, 4096]
SHAPES = [(4096, 4096), (576, 1536), (192, 576), (100, 200)]  # aligned, SmolLM2 down/k_proj, ragged (pads to 16)


def _check(name, kernel, n, k, m):
    scheme = SCHEMES[name]
    reference_scheme = computed_scheme(name, kernel)
    g = torch.Generator(device="cuda").manual_seed(n + k + m)
    w = torch.randn(n, k, device="cuda", generator=g)
    b = torch.randn(n, device="cuda", generator=g)
    qw = quantize(w, scheme.weight)
    input_scale = static_input_scale(scheme)
    input_scale = None if input_scale is None else input_scale.cuda()
    layer = QuantizedLinear(qw, b, scheme, Dispatch.single(kernel), "gpu", input_scale=input_scale)
    x = torch.randn(m, k, device="cuda", generator=g, dtype=torch.bfloat16)
    y = layer(x)
    act = reference_scheme.activation
    xr = fake_quantize(x, act, scale=input_scale if reference_scheme.static_activation else None) if act else x.float()
    ref = xr.double() @ dequantize(qw, torch.float64).t() + b.double()
    assert y.dtype == torch.bfloat16 and y.shape == (m, n)
    assert_close_to_reference(y, ref, f"{kernel.name} {name} {m}x{n}x{k}")


@pytest.mark.parametrize("name", ["fp8_per_tensor", "fp8_per_channel", "fp8_static"])
@pytest.mark.parametrize("n,k", SHAPES)
@pytest.mark.parametrize("m", MS)
def test_cublas_fp8_matches_reference(name, n, k, m):
    _check(name, CublasFp8Kernel, n, k, m)


@pytest.mark.parametrize("name", ["int8_per_channel", "int8_asym_act"])
@pytest.mark.parametrize("n,k", SHAPES)
@pytest.mark.parametrize("m", MS)
def test_int_mm_int8_matches_reference(name, n, k, m):
    _check(name, IntMMInt8Kernel, n, k, m)


@pytest.mark.parametrize("name", list(SCHEMES))
def test_emulation_runs_every_scheme_on_gpu(name):
    _check(name, EmulationKernel, 96, 192, 7)  # K=192: whole MX/NVFP4 groups, a ragged 128-block


def test_selection_on_this_gpu():
    here = platform_of("cuda")
    cfg = lambda s: LayerConfig(SCHEMES[s], 576, 1536)  # noqa: E731
    if here.cuda_at_least(89):
        assert select_kernel(cfg("fp8_per_channel"), here).kernel is TritonFp8RowwiseKernel
        assert select_kernel(cfg("fp8_per_tensor"), here).kernel is CublasFp8Kernel
        static = select_kernel(cfg("fp8_static"), here)
        assert static.kernel is CublasFp8Kernel and "dynamic" in dict(
            (r.kernel, r.reason) for r in static.rejected)["triton_fp8_rowwise"]
    if not here.cuda_at_least(100):  # no FP4 tensor cores before sm_100: run weight-only, and say so
        nv = select_kernel(cfg("nvfp4"), here)
        assert nv.kernel is TritonW4A16Kernel and "activation quantization" in nv.deviation
        assert "sm_100+" in dict((r.kernel, r.reason) for r in nv.rejected)["cublas_nvfp4"]


def test_quantized_model_forward_on_gpu():
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = LlamaConfig(hidden_size=576, intermediate_size=1536, num_hidden_layers=2, num_attention_heads=9,
                      num_key_value_heads=3, vocab_size=1000)
    torch.manual_seed(0)
    model = LlamaForCausalLM(cfg).to("cuda", torch.bfloat16).eval()
    ids = torch.randint(0, 1000, (2, 64), device="cuda")
    emulated = copy.deepcopy(model)
    with torch.no_grad():
        base = model(ids).logits.float()
        report = qlinear.quantize(model, "fp8_per_channel", progress=False)
        qlinear.quantize(emulated, "fp8_per_channel", backend="emulation", progress=False)
        inputs = {}

        def keep_input(name):
            def hook(module, args, output):
                inputs.setdefault(name, args[0])  # returns None: the output is left alone
            return hook

        hooks = [m.register_forward_hook(keep_input(n)) for n, m in model.named_modules() if isinstance(m, QuantizedLinear)]
        out = model(ids).logits.float()
        for h in hooks:
            h.remove()
        emulated_layers = dict(emulated.named_modules())
        for name, x in inputs.items():
            fast = dict(model.named_modules())[name](x)
            ref = emulated_layers[name](x.float()).double()  # float32 emulation of the same quantized operands
            assert_close_to_reference(fast, ref, f"{name} {tuple(x.shape)}")
    # real FP8 kernels, not emulation: Triton for decode buckets, the Gluon wgmma GEMM for prefill (sm_90)
    assert set(report.to_dict()["layers"][0]["kernel"].split("+")) <= {"cublas_fp8", "triton_fp8_rowwise",
                                                                       "gluon_fp8_rowwise"}
    # Through two random layers FP8 moves the logits by ~9% on the CPU too; a broken kernel moves them by ~100%.
    assert float((out - base).norm() / base.norm()) < 0.15


@pytest.mark.parametrize("scheme", ["fp8_per_channel", "fp8_per_block", "int8_per_channel", "nvfp4_a16", "mxfp4_a16",
                                    "mxfp8", "nvfp4"])
@pytest.mark.parametrize("m", [1, 16, 200])
def test_apply_has_no_host_sync_and_captures_in_cuda_graph(scheme, m):
    lin = torch.nn.Linear(1536, 576, bias=True).to("cuda", torch.bfloat16)
    _assert_replays_in_cuda_graph(QuantizedLinear.from_linear(lin, scheme, name="graph"), m)


def _assert_replays_in_cuda_graph(layer, m):
    """Capture ``layer`` on an input, change the input in place, replay: the graph's output must be
    the new input's (no host sync, nothing allocated or decided on the host at call time)."""
    x = torch.randn(m, layer.in_features, device="cuda", dtype=torch.bfloat16)
    expect = layer(x)
    graph = torch.cuda.CUDAGraph()
    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s):
        layer(x)
    torch.cuda.current_stream().wait_stream(s)
    with torch.cuda.graph(graph):
        out = layer(x)
    x.copy_(torch.randn_like(x))
    graph.replay()
    torch.cuda.synchronize()
    assert torch.equal(out, layer(x)) and not torch.equal(out, expect)


@pytest.mark.parametrize("kblocks", [1, 3, 4, 5, 7, 8])
@pytest.mark.parametrize("m", [2, 7, 83])
def test_cublas_blockwise_k_block_counts(kblocks, m):
    # PyTorch #166752: silent wrong answers when the K-block count of the 128x128 scale is not a
    # multiple of 4 (measured with torch 2.11). Such K must be refused; the others must be right.
    config = LayerConfig(SCHEMES["fp8_per_block"], 256, 128 * kblocks, min_m=2)
    ok, reason = CublasBlockFp8Kernel.can_implement(config)
    if kblocks % 4:
        assert not ok and "#166752" in reason
    else:
        assert ok
        _check("fp8_per_block", CublasBlockFp8Kernel, 256, 128 * kblocks, m)


@pytest.mark.parametrize("name,kernel", [("fp8_per_block", TritonFp8BlockKernel), ("fp8_per_channel", TritonFp8RowwiseKernel),
                                         ("int8_per_channel", TritonInt8Kernel)])
@pytest.mark.parametrize("n,k", SHAPES)
@pytest.mark.parametrize("m", MS)
def test_triton_kernels_on_gpu(name, kernel, n, k, m):
    _check(name, kernel, n, k, m)


@pytest.mark.parametrize("n,k", [(4096, 4096), (576, 1536), (192, 576), (136, 400)])  # K/128 = 32, 12, 4.5, 3.1
@pytest.mark.parametrize("m", MS)
def test_gluon_block_fp8_on_gpu(n, k, m):
    # The kernel computes any M (its dispatch takes M > 64 only); ragged M, N and K come from TMA's
    # zero fill and clipped stores, odd and even K-tile counts take the two tails of its loop.
    _check("fp8_per_block", GluonFp8BlockKernel, n, k, m)


@pytest.mark.parametrize("n,k", [(4096, 4096), (576, 1536), (192, 576), (136, 416)])  # K/128 = 32, 12, 4.5, 3.25
@pytest.mark.parametrize("m", MS)
def test_gluon_mxfp8_on_gpu(n, k, m):
    # 32-deep products, each with its own e8m0 row and column scales; MX tiles are 128 x 64.
    _check("mxfp8", GluonMxfp8Kernel, n, k, m)


@pytest.mark.parametrize("name,kernel", [("int8_per_channel", GluonInt8Kernel), ("fp8_per_channel", GluonFp8RowwiseKernel)])
@pytest.mark.parametrize("n,k", [(4096, 4096), (576, 1536), (192, 576), (136, 400)])  # K/128 = 32, 12, 4.5, 3.1
@pytest.mark.parametrize("m", MS)
def test_gluon_rowwise_on_gpu(name, kernel, n, k, m):
    # products summed on the tensor cores (int32 for INT8: exact), then scaled per token and channel;
    # ragged M, N and K from TMA's zero fill and clipped stores
    _check(name, kernel, n, k, m)


@pytest.mark.parametrize("name,dtype", [("int8_per_channel", torch.int8), ("fp8_per_channel", torch.float8_e4m3fn)])
@pytest.mark.parametrize("m,n,k", [(300, 4096, 4096), (4096, 136, 400)])
def test_wgmma_rowwise_tile_heights_and_pdl_agree_bitwise(name, dtype, m, n, k):
    # 256-row tiles only regroup rows between the warpgroups: every output sums K in the same order,
    # so the result is bitwise that of 128-row tiles; launched with PDL after the quantization, the
    # GEMM waits for its output (a missing wait would read stale or half-written q and scales)
    from qlinear.kernels.triton.act_quant import quantize_per_token
    from qlinear.kernels.triton.wgmma_gemm import rowwise_gemm

    scheme = SCHEMES[name]
    g = torch.Generator(device="cuda").manual_seed(m + n + k)
    x = torch.randn(m, k, device="cuda", generator=g, dtype=torch.bfloat16)
    qw = quantize(torch.randn(n, k, device="cuda", generator=g), scheme.weight)
    outs = []
    for block_m in (128, 256) if dtype == torch.int8 else (128,):  # e4m3 sums in fp32 keep 128-row tiles
        for pdl in (False, True):
            q, s = quantize_per_token(x, dtype, pdl_any_m=pdl)
            outs.append(rowwise_gemm(q, s, qw.data, qw.scale.float().reshape(-1), block_m=block_m,
                                     after_producer=pdl))
    ref = fake_quantize(x, scheme.activation).double() @ dequantize(qw, torch.float64).t()
    assert_close_to_reference(outs[0], ref, f"rowwise_gemm {name} {m}x{n}x{k}")
    for out in outs[1:]:
        assert torch.equal(out, outs[0])


@pytest.mark.parametrize("name,kernel", [("fp8_per_channel", GluonFp8RowwiseKernel),
                                         ("fp8_per_channel", TritonFp8RowwiseKernel),
                                         ("fp8_per_channel", CublasFp8Kernel), ("fp8_per_block", GluonFp8BlockKernel),
                                         ("fp8_per_block", TritonFp8BlockKernel)])
@pytest.mark.parametrize("m", [1, 16, 4096])
def test_fp8_kernels_keep_their_accuracy_over_a_long_k(name, kernel, m):
    # Hopper's FP8 MMA adds into its accumulator with fewer bits than fp32: summed over K = 16384 on
    # the tensor cores alone, the per-channel kernels missed this bound at M = 4096 by 60%
    # (bench/results/h200_issue3_accum_precision.txt); each K-tile's product now joins an fp32 sum
    _check(name, kernel, 1024, 16384, m)


def test_gluon_block_fp8_refuses_what_tma_cannot_read():
    config = LayerConfig(SCHEMES["fp8_per_block"], 100, 200, min_m=65)
    ok, reason = GluonFp8BlockKernel.can_implement(config)
    assert not ok and "16-byte rows" in reason
    assert GluonFp8BlockKernel.is_supported(platform_of("cuda"))[0] == (torch.cuda.get_device_capability() == (9, 0))


def test_checkpoint_written_on_cpu_runs_on_the_gpu(tmp_path):
    from qlinear.checkpoints import load_quantized, save_compressed_tensors

    from .test_checkpoints import tiny_llama

    model = tiny_llama()
    qlinear.quantize(model, "fp8_per_block", progress=False)  # on the CPU: emulation
    save_compressed_tensors(model, tmp_path)
    gpu_model, _ = load_quantized(tmp_path, device="cuda")
    kernels = {m.dispatch.kernel_names() for m in gpu_model.modules() if isinstance(m, QuantizedLinear)}
    assert kernels and all("triton_fp8_block" in k for k in kernels)
    with torch.no_grad():
        assert torch.isfinite(gpu_model(torch.randint(0, 300, (2, 9), device="cuda")).logits).all()
        for name, layer in gpu_model.named_modules():
            if isinstance(layer, QuantizedLinear):  # each loaded layer against the float64 reference
                x = torch.randn(5, layer.in_features, device="cuda", dtype=torch.bfloat16)
                ref = fake_quantize(x, layer.scheme.activation).double() @ dequantize(layer.quantized_weight(), torch.float64).t()
                assert_close_to_reference(layer(x), ref, name)


@pytest.mark.parametrize("name,kernel", WEIGHT_ONLY, ids=WEIGHT_ONLY_IDS)
@pytest.mark.parametrize("n,k", [(4096, 4096), (576, 1536), (192, 576), (100, 224)])
@pytest.mark.parametrize("m", MS)
def test_weight_only_and_mx_kernels_on_gpu(name, kernel, n, k, m):
    _check(name, kernel, n, k, m)


def test_static_fp8_checkpoint_runs_on_cublas(tmp_path):
    """A checkpoint with static input scales, loaded onto the GPU: cuBLAS tensorwise FP8 with the stored
    input_scale, against the float64 reference of the same quantized operands."""
    from qlinear.checkpoints import load_quantized

    from .test_checkpoints import write_static_fp8_checkpoint

    write_static_fp8_checkpoint(tmp_path, input_scale=2.0 / 448)
    model, scheme = load_quantized(tmp_path, device="cuda")
    layer = model.model.layers[0].mlp.down_proj
    assert scheme.name == "fp8_static" and layer.dispatch.kernel_names() == "cublas_fp8"
    x = torch.randn(37, layer.in_features, device="cuda", dtype=torch.bfloat16)
    ref = fake_quantize(x, scheme.activation, scale=layer.input_scale).double() @ dequantize(
        layer.quantized_weight(), torch.float64).t()
    assert_close_to_reference(layer(x), ref, "static fp8 checkpoint on cuda")


PDL_CHAINS = [(name, kernel, m) for name, kernel in [("fp8_per_channel", TritonFp8RowwiseKernel),
                                                      ("int8_per_channel", TritonInt8Kernel),
                                                      ("fp8_per_block", TritonFp8BlockKernel)]
              for m in (1, 16, 32)]  # block FP8 quantizes x inside its GEMM up to M=16
PDL_CHAINS += [(name, kernel, m) for name, kernel in [("fp8_per_channel", GluonFp8RowwiseKernel),
                                                       ("int8_per_channel", GluonInt8Kernel),
                                                       ("fp8_per_block", GluonFp8BlockKernel),
                                                       ("mxfp8", GluonMxfp8Kernel)]
               for m in (200, 2048)]  # the persistent Gluon GEMMs: 128- and 256-row tiles


@pytest.mark.parametrize("name,kernel,m", PDL_CHAINS)
def test_pdl_launched_gemm_waits_for_its_activation_quantization(name, kernel, m, monkeypatch):
    # A chain of decode layers queued without a host sync: each quantization reads the previous
    # GEMM's output and each PDL-launched GEMM starts before that quantization finishes. If a GEMM
    # read x before griddepcontrol.wait, its output would differ from the PDL-off run's bits.
    g = torch.Generator(device="cuda").manual_seed(m)
    layers = [QuantizedLinear(quantize(torch.randn(2048, 2048, device="cuda", generator=g) / 32, SCHEMES[name].weight),
                              None, SCHEMES[name], Dispatch.single(kernel), f"chain{i}") for i in range(12)]
    x = torch.randn(m, 2048, device="cuda", generator=g, dtype=torch.bfloat16)

    def chain():
        y = x
        for layer in layers:
            y = layer(y)
        return y

    with_pdl = chain()
    monkeypatch.setenv("QLINEAR_PDL", "0")
    without = chain()
    torch.cuda.synchronize()
    assert torch.isfinite(without.float()).all() and float(without.float().abs().mean()) > 0
    assert torch.equal(with_pdl, without)


@pytest.mark.parametrize("name,a_mode,b_mode", [("fp8_per_channel", "token", "channel"), ("fp8_per_block", "group", "block"),
                                                ("int8_per_channel", "token", "channel")])
@pytest.mark.parametrize("n,k", [(4096, 4096), (576, 1536), (192, 576)])
@pytest.mark.parametrize("m,split", [(1, 1), (1, 4), (16, 2), (40, 1)])
def test_decode_gemm_with_tma_weight_loads(name, a_mode, b_mode, n, k, m, split):
    from qlinear.kernels.triton.act_quant import quantize_per_group, quantize_per_token
    from qlinear.kernels.triton.scaled_gemm import GemmConfig, scaled_gemm

    scheme = SCHEMES[name]
    g = torch.Generator(device="cuda").manual_seed(n + k + m)
    qw = quantize(torch.randn(n, k, device="cuda", generator=g), scheme.weight)
    x = torch.randn(m, k, device="cuda", generator=g, dtype=torch.bfloat16)
    xq, xs = quantize_per_group(x, 128) if a_mode == "group" else quantize_per_token(x, qw.data.dtype)
    ref = fake_quantize(x, scheme.activation).double() @ dequantize(qw, torch.float64).t()
    cfg = GemmConfig(128, 16 if m <= 16 else 64, 128, group_m=1, split_k=split, num_stages=4, tma=True)
    y = scaled_gemm(xq, qw.data, xs, qw.scale, a_mode=a_mode, b_mode=b_mode, config=cfg, swap_ab=True,
                    after_producer=True)
    assert_close_to_reference(y, ref, f"{name} tma {m}x{n}x{k} split {split}")


DECODE_MS = [1, 7, 16, 33, 64]  # 1, 1, 2, 8 and 8 MMA column tiles of 8 tokens


@pytest.mark.parametrize("name", ["nvfp4_a16", "mxfp4_a16", "nvfp4"])
@pytest.mark.parametrize("n,k", [(4096, 4096), (576, 1536), (192, 576), (100, 224), (1000, 14336)])
@pytest.mark.parametrize("m", DECODE_MS)
def test_gluon_w4a16_on_gpu(name, n, k, m):
    # ragged N (100, 1000: rows past N re-read and not stored), K = 576 and 224 (a masked last step),
    # unaligned rows (K/8 words not a multiple of 16: scalar loads), split-K reduced in the launch
    _check(name, GluonW4A16Kernel, n, k, m)


@pytest.mark.parametrize("fmt", ["nvfp4_a16", "mxfp4_a16"])
def test_e2m1_mma_every_code_extreme_scales_and_configs_exactly(fmt):
    # Every code pair with the scale range's ends; x = rows of the identity pick single weights, so
    # the output is the dequantized weight itself, for every launch shape the sweep tries.
    from qlinear.kernels.triton.e2m1_mma import E2m1MmaConfig, e2m1_mma

    from .test_triton_kernels import every_e2m1_code_weight

    n, k = 128, 1024
    qw = every_e2m1_code_weight(fmt, n, k)
    layer = QuantizedLinear(qw.to("cuda"), None, SCHEMES[fmt], Dispatch.single(GluonW4A16Kernel), "codes")
    lay = layer.kernel.layout
    expect = dequantize(qw, torch.float64)
    eye = torch.eye(k, dtype=torch.bfloat16, device="cuda")
    configs = (E2m1MmaConfig(4, 1, 2), E2m1MmaConfig(4, 2, 2), E2m1MmaConfig(8, 2, 4), E2m1MmaConfig(4, 1, 3),
               E2m1MmaConfig(8, 1, 8), E2m1MmaConfig(4, 2, 1), E2m1MmaConfig(4, 1, 4, m_tiles=2),
               E2m1MmaConfig(2, 2, 2, m_tiles=2))
    for cfg, tokens in zip(configs, (64, 64, 64, 64, 16, 1, 1, 16)):  # 8, 8, 8, 8, 2, 1, 1 and 2 column tiles
        for j0 in range(0, k, tokens):
            y = e2m1_mma(eye[j0:j0 + tokens].float(), layer.weight, layer.weight_scale, lay.post_scale,
                         mx=fmt == "mxfp4_a16", config=cfg, scale_bias=lay.scale_bias)
            torch.testing.assert_close(y.double().cpu(), expect[:, j0:j0 + tokens].t(), rtol=2**-22, atol=0,
                                       msg=f"{cfg.key()} columns {j0}..{j0 + tokens - 1}")


@pytest.mark.parametrize("fmt", ["nvfp4_a16", "mxfp4_a16"])
@pytest.mark.parametrize("n,k", [(100, 224), (1000, 14336), (576, 1536)])
@pytest.mark.parametrize("m", [1, 7, 16])
def test_e2m1_mma_two_row_tiles_per_warp_equal_one(fmt, n, k, m):
    # m_tiles=2 only regroups rows among warps: each output's K sum keeps its order, so ragged N (rows
    # re-read past N), a masked last step and split-K give the one-tile kernel's outputs bitwise
    from qlinear.kernels.triton.e2m1_mma import E2m1MmaConfig, e2m1_mma

    g = torch.Generator(device="cuda").manual_seed(n + k + m)
    qw = quantize(torch.randn(n, k, device="cuda", generator=g), SCHEMES[fmt].weight)
    layer = QuantizedLinear(qw, None, SCHEMES[fmt], Dispatch.single(GluonW4A16Kernel), "tiles")
    lay = layer.kernel.layout
    x = torch.randn(m, k, device="cuda", generator=g, dtype=torch.bfloat16)
    for chunks, split in ((1, 3 if k < 8192 else 8), (2, 1 if k < 8192 else 8)):  # staged slices fit 64 KB
        if chunks == 2 and k % 256:  # K = 224: one-chunk steps only, the last one masked
            continue
        one, two = (e2m1_mma(x, layer.weight, layer.weight_scale, lay.post_scale, mx=fmt == "mxfp4_a16",
                             config=E2m1MmaConfig(4, chunks, split, m_tiles=t), scale_bias=lay.scale_bias)
                    for t in (1, 2))
        assert torch.equal(one, two), f"{fmt} {n}x{k} M={m} chunks {chunks} split {split}"


@pytest.mark.parametrize("m", [1, 16])
def test_gluon_w4a16_has_no_host_sync_and_captures_in_cuda_graph(m):
    g = torch.Generator(device="cuda").manual_seed(m)
    qw = quantize(torch.randn(576, 1536, device="cuda", generator=g), SCHEMES["nvfp4_a16"].weight)
    layer = QuantizedLinear(qw, torch.randn(576, device="cuda", generator=g), SCHEMES["nvfp4_a16"],
                            Dispatch.single(GluonW4A16Kernel), "graph")
    _assert_replays_in_cuda_graph(layer, m)

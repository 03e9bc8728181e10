"""Selection on simulated platforms: never a kernel the platform cannot run; every reason kept."""
import dataclasses
import logging

import pytest
import torch

from qlinear.kernels import (
    OK,
    EmulationKernel,
    GluonFp8BlockKernel,
    LayerConfig,
    LinearKernel,
    NoKernelError,
    candidates,
    register_kernel,
    select_kernel,
)
from qlinear.kernels import registry
from qlinear.layers import QuantizedLinear
from qlinear.platform import CPU, Platform, simulated_cuda
from qlinear.schemes import SCHEMES, get_scheme

PLATFORMS = [CPU, simulated_cuda(75), simulated_cuda(80), simulated_cuda(89), simulated_cuda(90), simulated_cuda(100)]


def config(name, n=576, k=1536):
    return LayerConfig(SCHEMES[name], n, k, False, "model.layers.0.mlp.down_proj")


@pytest.mark.parametrize("platform", PLATFORMS, ids=lambda p: p.describe())
@pytest.mark.parametrize("name", list(SCHEMES))
def test_never_selects_a_kernel_the_platform_cannot_run(platform, name):
    sel = select_kernel(config(name), platform)
    assert sel.kernel.is_supported(platform) == OK
    assert sel.kernel.can_implement(config(name)) == OK
    tried = [r.kernel for r in sel.rejected] + [sel.kernel.name]
    assert tried == [k.name for k in candidates(platform)][: len(tried)]  # priority order, none skipped
    assert all(r.reason for r in sel.rejected)


def test_fp8_picks_fp8_tensor_core_kernels_only_from_sm89():
    assert select_kernel(config("fp8_per_channel"), simulated_cuda(90)).kernel.name == "triton_fp8_rowwise"
    assert select_kernel(config("fp8_per_tensor"), simulated_cuda(89)).kernel.name == "cublas_fp8"
    assert select_kernel(config("fp8_per_block"), simulated_cuda(89)).kernel.name == "triton_fp8_block"
    sel = select_kernel(config("fp8_per_channel"), simulated_cuda(80))
    assert sel.kernel is EmulationKernel
    assert "needs FP8 tensor cores (sm_89+)" in dict((r.kernel, r.reason) for r in sel.rejected)["cublas_fp8"]


def test_int8_on_turing_uses_cublas_int_mm_and_says_why_not_triton():
    sel = select_kernel(config("int8_per_channel"), simulated_cuda(75))
    assert sel.kernel.name == "torch_int_mm"
    assert "sm_80+" in dict((r.kernel, r.reason) for r in sel.rejected)["triton_int8"]


def test_cublas_blockwise_never_takes_m_equal_1():
    from qlinear.kernels import select_dispatch

    with pytest.raises(NoKernelError, match="fails at M=1"):
        select_dispatch(config("fp8_per_block"), simulated_cuda(90), backend="cublas_fp8_block")
    d = select_dispatch(config("fp8_per_block"), simulated_cuda(90), disabled=["triton_fp8_block"])
    assert [r.selection.kernel.name for r in d.routes] == ["emulation"] + ["cublas_fp8_block"] * 4
    reasons = {r.kernel: r.reason for r in d.routes[0].selection.rejected}
    assert "M=1" in reasons["cublas_fp8_block"]


def test_fallback_to_emulation_warns_with_reasons(caplog):
    registry._warned.clear()
    with caplog.at_level(logging.WARNING, logger="qlinear"):
        select_kernel(config("fp8_per_tensor"), simulated_cuda(80))
    assert "falls back to the slow emulation kernel" in caplog.text
    assert "cublas_fp8: needs FP8 tensor cores" in caplog.text


def test_disabled_kernels_from_environment(monkeypatch):
    monkeypatch.setenv("QLINEAR_DISABLED_KERNELS", "cublas_fp8, triton_fp8_rowwise")
    sel = select_kernel(config("fp8_per_channel"), simulated_cuda(90))
    assert sel.kernel is EmulationKernel
    reasons = dict((r.kernel, r.reason) for r in sel.rejected)
    assert reasons["cublas_fp8"] == reasons["triton_fp8_rowwise"] == "disabled by QLINEAR_DISABLED_KERNELS"


def test_forced_backend_argument_and_environment(monkeypatch):
    assert select_kernel(config("fp8_per_channel"), simulated_cuda(90), backend="emulation").kernel is EmulationKernel
    monkeypatch.setenv("QLINEAR_BACKEND", "emulation")
    assert select_kernel(config("fp8_per_channel"), simulated_cuda(90)).kernel is EmulationKernel
    assert select_kernel(config("fp8_per_channel"), simulated_cuda(90), backend="auto").kernel.name == "triton_fp8_rowwise"


def test_forced_kernel_that_cannot_run_raises_with_its_reason():
    with pytest.raises(NoKernelError, match=r"(?s)forced backend 'cublas_fp8'.*needs FP8 tensor cores"):
        select_kernel(config("fp8_per_channel"), simulated_cuda(80), backend="cublas_fp8")
    with pytest.raises(NoKernelError, match=r"cublas_fp8: takes e4m3 per-tensor/per-channel"):
        select_kernel(config("nvfp4"), simulated_cuda(90), backend="cublas")


def test_unknown_backend_lists_the_known_ones():
    with pytest.raises(ValueError, match="(?s)unknown backend 'marlin'.*cublas_fp8.*emulation"):
        select_kernel(config("fp8_per_channel"), simulated_cuda(90), backend="marlin")


def test_nothing_fits_lists_every_reason(monkeypatch):
    monkeypatch.setenv("QLINEAR_DISABLED_KERNELS", "emulation,cublas_fp8,triton_fp8_rowwise")
    with pytest.raises(NoKernelError) as err:
        select_kernel(config("fp8_per_channel"), simulated_cuda(90))
    text = str(err.value)
    assert "model.layers.0.mlp.down_proj" in text
    for name in ("cublas_fp8", "triton_fp8_rowwise", "torch_int_mm", "emulation"):
        assert f"  {name}: " in text


def test_unknown_scheme_lists_valid_names():
    with pytest.raises(ValueError, match="(?s)unknown scheme 'fp7'.*fp8_per_tensor.*mxfp4_a16"):
        get_scheme("fp7")


def test_rocm_and_xpu_are_keys_with_emulation():
    for kind in ("rocm", "xpu"):
        assert select_kernel(config("fp8_per_channel"), Platform(kind)).kernel is EmulationKernel


class _DoubleKernel(LinearKernel):
    """A third-party kernel: computes in float64 from the dequantized weight."""

    name = "test_float64"
    backend = "test"

    @classmethod
    def is_supported(cls, platform):
        return OK if platform.kind == "cpu" else (False, "CPU only")

    @classmethod
    def can_implement(cls, config):
        return OK if config.scheme.weight_only else (False, "weight-only schemes only")

    def apply(self, layer, x, bias):
        from qlinear.formats import dequantize

        return (x.double() @ dequantize(layer.quantized_weight(), torch.float64).t()).to(x.dtype)


def test_third_party_registration(monkeypatch):
    monkeypatch.setitem(registry._PRIORITIES, "cpu", list(registry._PRIORITIES["cpu"]))
    register_kernel(_DoubleKernel, ["cpu"], index=0)
    sel = select_kernel(config("nvfp4_a16"), CPU)
    assert sel.kernel is _DoubleKernel
    assert select_kernel(config("fp8_per_channel"), CPU).rejected[0].kernel == "test_float64"
    lin = torch.nn.Linear(64, 32, bias=False)
    layer = QuantizedLinear.from_linear(lin, "nvfp4_a16", platform=CPU)
    assert layer.kernel.name == "test_float64"
    with pytest.raises(ValueError, match="already registered"):
        register_kernel(type("Clash", (_DoubleKernel,), {}), ["cpu"])


def test_cublas_blockwise_refuses_k_block_counts_torch_gets_wrong():
    from qlinear.kernels import CublasBlockFp8Kernel

    ok, reason = CublasBlockFp8Kernel.can_implement(LayerConfig(SCHEMES["fp8_per_block"], 576, 576, min_m=2))
    assert not ok and "5 128-blocks" in reason and "#166752" in reason
    assert CublasBlockFp8Kernel.can_implement(LayerConfig(SCHEMES["fp8_per_block"], 576, 1536, min_m=2)) == OK


def test_tuned_choices_are_preferences_that_still_pass_every_check(tmp_path, monkeypatch):
    from qlinear import tuning
    from qlinear.kernels import select_dispatch

    monkeypatch.setenv("QLINEAR_TUNE_CACHE", str(tmp_path / "tuned.json"))
    here = simulated_cuda(90)
    # A made-up timer: cuBLAS blockwise fastest at small M, Triton at large M.
    fake = {"cublas_fp8_block": lambda m: 10.0 if m <= 64 else 30.0, "triton_fp8_block": lambda m: 20.0,
            "gluon_fp8_block": lambda m: 25.0}
    timings = tuning.tune_shape("fp8_per_block", 576, 1536, here, lambda kernel, m: fake[kernel.name](m))
    assert set(timings["1"]) == {"triton_fp8_block"}  # cuBLAS blockwise cannot run M=1
    choice = tuning.fastest(timings)
    assert choice == {"1": "triton_fp8_block", "2-16": "cublas_fp8_block", "17-64": "cublas_fp8_block",
                      "65-1024": "triton_fp8_block", "1025+": "triton_fp8_block"}
    tuning.record(here, "fp8_per_block", 576, 1536, choice)
    cfg = config("fp8_per_block")
    assert tuning.tuned_choices(here, cfg) == choice
    dispatch = select_dispatch(cfg, here, preferred=tuning.tuned_choices(here, cfg))
    assert [r.selection.kernel.name for r in dispatch.routes] == [choice[r.label] for r in dispatch.routes]
    # A preference the layer cannot take is skipped, with the reason kept.
    bad = select_dispatch(config("fp8_per_block"), here, preferred={"1": "cublas_fp8_block"})
    assert bad.routes[0].selection.kernel.name == "triton_fp8_block"
    assert "M=1" in bad.routes[0].selection.rejected[0].reason


@pytest.mark.parametrize("name,native", [("nvfp4", "cublas_nvfp4"), ("mxfp8", "cublas_mxfp8")])
def test_native_fp4_mx_kernels_only_on_blackwell(name, native):
    """Hopper gets the weight-only path and keeps the native kernel's rejection; sm_100 gets the native one."""
    hopper = select_kernel(config(name), simulated_cuda(90))
    assert hopper.kernel.name != native
    assert "FP4/MX block-scaled tensor cores (sm_100+)" in dict((r.kernel, r.reason) for r in hopper.rejected)[native]
    assert select_kernel(config(name), simulated_cuda(100)).kernel.name == native
    ragged = select_kernel(config(name, n=100, k=1536), simulated_cuda(100))
    assert ragged.kernel.name != native and "out_features % 16" in dict(
        (r.kernel, r.reason) for r in ragged.rejected)[native]


def test_h200_defaults_put_block_fp8_decode_on_triton_and_prefill_on_cublas(tmp_path, monkeypatch):
    from qlinear import tuning
    from qlinear.kernels import select_dispatch
    from qlinear.platform import Platform

    monkeypatch.setenv("QLINEAR_TUNE_CACHE", str(tmp_path / "none.json"))  # no measured cache
    h200, other = Platform("cuda", 90, "NVIDIA H200"), simulated_cuda(90)
    cfg = config("fp8_per_block")
    routes = select_dispatch(cfg, h200, preferred=tuning.tuned_choices(h200, cfg)).routes
    assert [r.selection.kernel.name for r in routes] == [
        "triton_fp8_block", "triton_fp8_block", "triton_fp8_block", "cublas_fp8_block", "cublas_fp8_block"]
    # another sm_90 GPU, not measured, keeps the static priority (cuBLASLt wherever it can run)
    assert tuning.tuned_choices(other, cfg) is None
    routes = select_dispatch(cfg, other).routes
    assert [r.selection.kernel.name for r in routes][1:] == ["cublas_fp8_block"] * 4


def test_h200_defaults_put_per_channel_fp8_decode_on_triton_and_prefill_on_cublas(tmp_path, monkeypatch):
    from qlinear import tuning
    from qlinear.kernels import select_dispatch
    from qlinear.platform import Platform

    monkeypatch.setenv("QLINEAR_TUNE_CACHE", str(tmp_path / "none.json"))
    h200 = Platform("cuda", 90, "NVIDIA H200")
    cfg = config("fp8_per_channel")
    routes = select_dispatch(cfg, h200, preferred=tuning.tuned_choices(h200, cfg)).routes
    assert [r.selection.kernel.name for r in routes] == ["triton_fp8_rowwise"] * 3 + ["cublas_fp8"] * 2
    # unmeasured sm_90 GPUs keep the static priority: the Gluon GEMM for prefill
    routes = select_dispatch(cfg, simulated_cuda(90)).routes
    assert [r.selection.kernel.name for r in routes] == ["triton_fp8_rowwise"] * 3 + ["gluon_fp8_rowwise"] * 2


def test_gluon_block_fp8_takes_the_prefill_cublas_blockwise_refuses():
    from qlinear.kernels import select_dispatch

    hopper = simulated_cuda(90)
    routes = select_dispatch(config("fp8_per_block", 576, 576), hopper).routes  # K/128 = 4.5: cuBLASLt refuses
    assert [r.selection.kernel.name for r in routes] == ["triton_fp8_block"] * 3 + ["gluon_fp8_block"] * 2
    decode_reasons = dict((r.kernel, r.reason) for r in routes[1].selection.rejected)
    assert "prefill (M > 64)" in decode_reasons["gluon_fp8_block"] and "#166752" in decode_reasons["cublas_fp8_block"]
    aligned = select_dispatch(config("fp8_per_block", 576, 1536), hopper).routes
    assert [r.selection.kernel.name for r in aligned][3:] == ["cublas_fp8_block"] * 2
    ragged = select_kernel(dataclasses.replace(config("fp8_per_block", 100, 200), min_m=65), hopper)
    assert "16-byte rows" in dict((r.kernel, r.reason) for r in ragged.rejected)["gluon_fp8_block"]
    for other, why in ((simulated_cuda(89), "sm_90+"), (simulated_cuda(100), "sm_90 only")):
        ok, reason = GluonFp8BlockKernel.is_supported(other)
        assert not ok and why in reason


@pytest.mark.parametrize("scheme,gluon,triton_kernel", [("int8_per_channel", "gluon_int8", "triton_int8"),
                                                         ("fp8_per_channel", "gluon_fp8_rowwise", "triton_fp8_rowwise")])
def test_gluon_rowwise_takes_prefill_and_leaves_decode_to_triton(scheme, gluon, triton_kernel):
    from qlinear.kernels import select_dispatch

    hopper = simulated_cuda(90)
    routes = select_dispatch(config(scheme, 576, 1536), hopper).routes
    assert [r.selection.kernel.name for r in routes] == [triton_kernel] * 3 + [gluon] * 2
    decode_reasons = dict((r.kernel, r.reason) for r in routes[0].selection.rejected)
    assert "prefill (M > 64)" in decode_reasons[gluon]
    ragged = select_kernel(dataclasses.replace(config(scheme, 100, 200), min_m=65), hopper)
    assert ragged.kernel.name == triton_kernel
    assert "16-byte rows" in dict((r.kernel, r.reason) for r in ragged.rejected)[gluon]
    for other in (simulated_cuda(89), simulated_cuda(100)):  # wgmma is sm_90a only
        prefill = select_kernel(dataclasses.replace(config(scheme), min_m=65), other)
        assert prefill.kernel.name != gluon and "sm_90" in dict((r.kernel, r.reason) for r in prefill.rejected)[gluon]


def test_gluon_mxfp8_is_the_exact_w8a8_prefill_after_the_weight_only_kernels():
    hopper = simulated_cuda(90)
    prefill = dataclasses.replace(config("mxfp8"), min_m=65)
    weight_only = ["dequant_cublas", "triton_w8a16"]
    assert select_kernel(prefill, hopper).kernel.name == "dequant_cublas"
    assert select_kernel(prefill, hopper, disabled=weight_only).kernel.name == "gluon_mxfp8"
    ragged = select_kernel(dataclasses.replace(config("mxfp8", 576, 200), min_m=65), hopper, disabled=weight_only)
    assert "K % 32 == 0" in dict((r.kernel, r.reason) for r in ragged.rejected)["gluon_mxfp8"]


def test_bucket_label_names_the_bucket_holding_m():
    from qlinear.kernels.dispatch import bucket_label

    assert [bucket_label(m) for m in (1, 2, 16, 17, 64, 65, 1024, 1025, 100_000)] == [
        "1", "2-16", "2-16", "17-64", "17-64", "65-1024", "65-1024", "1025+", "1025+"]

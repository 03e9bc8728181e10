"""Online quantization of a whole model: plan every layer first, then replace them one by one."""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import torch
from torch import nn
from tqdm.auto import tqdm

from ..formats import quantize_in_row_chunks, requantize
from ..kernels import Dispatch, LayerConfig
from ..platform import Platform, platform_of
from ..schemes import Scheme, get_scheme
from .gated_mlp import fuse_gated_mlps
from .linear import QuantizedLinear, SchemeNotApplicable, check_applicable, check_finite, check_online, choose_dispatch
from .patterns import first_match

DEFAULT_IGNORE = ("lm_head",)


@dataclass
class LayerPlan:
    """What happens to one ``nn.Linear``: ``quantize`` with a dispatch table, ``ignore`` or ``skip``."""

    name: str
    out_features: int
    in_features: int
    action: str
    reason: str = ""
    dispatch: Dispatch | None = None

    def to_dict(self) -> dict:
        out = {"name": self.name, "shape": [self.out_features, self.in_features], "action": self.action}
        if self.reason:
            out["reason"] = self.reason
        if self.dispatch:
            out["kernels"] = self.dispatch.kernel_names()
            out.update(self.dispatch.to_dict())
        return out


@dataclass
class LayerReport:
    name: str
    shape: tuple[int, int]
    action: str
    kernel: str | None
    bytes_before: int
    bytes_after: int
    sqnr_db: float | None = None
    reason: str = ""


@dataclass
class QuantizationReport:
    """Per-layer outcome of :func:`quantize`: shape, kernel, bytes before/after, weight SQNR."""

    scheme: str
    platform: str
    layers: list[LayerReport] = field(default_factory=list)
    fused_mlps: list[str] = field(default_factory=list)  # gated MLPs fused by qlinear.layers.gated_mlp

    @property
    def bytes_before(self) -> int:
        return sum(r.bytes_before for r in self.layers)

    @property
    def bytes_after(self) -> int:
        return sum(r.bytes_after for r in self.layers)

    def to_dict(self) -> dict:
        layers = []
        for r in self.layers:
            d = asdict(r)
            if d["sqnr_db"] is not None and not math.isfinite(d["sqnr_db"]):
                d["sqnr_db"] = None
            layers.append(d)
        return {
            "scheme": self.scheme,
            "platform": self.platform,
            "bytes_before": self.bytes_before,
            "bytes_after": self.bytes_after,
            "layers": layers,
            "fused_mlps": self.fused_mlps,
        }

    def table(self) -> str:
        rows = [f"{'layer':48} {'shape':>11} {'kernel':18} {'MB before':>9} {'MB after':>8} {'SQNR dB':>7}"]
        for r in self.layers:
            shape = f"{r.shape[0]}x{r.shape[1]}"
            kernel = r.kernel or f"({r.action})"
            sq = f"{r.sqnr_db:7.2f}" if r.sqnr_db is not None else "      -"
            rows.append(
                f"{r.name:48} {shape:>11} {kernel:18} {r.bytes_before / 1e6:9.3f} {r.bytes_after / 1e6:8.3f} {sq}"
            )
        rows.append(
            f"{'total':48} {'':>11} {'':18} {self.bytes_before / 1e6:9.3f} {self.bytes_after / 1e6:8.3f}"
        )
        if self.fused_mlps:
            rows.append(f"SiLU-and-multiply fused into down_proj's per-token quantization in {len(self.fused_mlps)} MLPs")
        return "\n".join(rows)


def linear_layers(model: nn.Module) -> list[tuple[str, nn.Linear]]:
    return [(n, m) for n, m in model.named_modules() if isinstance(m, nn.Linear)]


def plan(
    model: nn.Module,
    scheme: Scheme | str,
    *,
    ignore: Sequence[str] = DEFAULT_IGNORE,
    skip_unsupported: bool = False,
    platform: Platform | None = None,
    backend: str | None = None,
    disabled: Sequence[str] = (),
    convert_to: Scheme | str | None = None,
) -> list[LayerPlan]:
    """Decide, for every ``nn.Linear`` in ``model``, whether and with which kernel it is quantized.

    Touches no weights. ``platform`` defaults to each layer's own device. With ``convert_to``, layers
    must fit both schemes and get the kernels of ``convert_to`` (see :func:`quantize`).

    Raises:
        SchemeNotApplicable: a layer's shape does not fit the scheme and ``skip_unsupported`` is False.
        NoKernelError: no kernel (or not the forced backend) can run a layer.
        ValueError: a scheme with static (calibrated) activation scales.
    """
    scheme = get_scheme(scheme)
    target = get_scheme(convert_to) if convert_to is not None else scheme
    check_online("", scheme)
    check_online("", target)
    plans = []
    for name, mod in linear_layers(model):
        n, k = mod.out_features, mod.in_features
        pattern = first_match(name, ignore)
        if pattern is not None:
            plans.append(LayerPlan(name, n, k, "ignore", f"matches ignore pattern {pattern!r}"))
            continue
        try:
            check_applicable(name, (n, k), scheme)
            check_applicable(name, (n, k), target)
        except SchemeNotApplicable as err:
            if not skip_unsupported:
                raise
            plans.append(LayerPlan(name, n, k, "skip", str(err)))
            continue
        where = platform or platform_of(mod.weight.device)
        config = LayerConfig(target, n, k, mod.bias is not None, name)
        plans.append(LayerPlan(name, n, k, "quantize", dispatch=choose_dispatch(config, where, backend=backend, disabled=disabled)))
    return plans


def _bytes(*tensors: torch.Tensor | None) -> int:
    return sum(t.numel() * t.element_size() for t in tensors if t is not None)


def quantize(
    model: nn.Module,
    scheme: Scheme | str,
    *,
    ignore: Sequence[str] = DEFAULT_IGNORE,
    skip_unsupported: bool = False,
    device: torch.device | str | None = None,
    backend: str | None = None,
    disabled: Sequence[str] = (),
    progress: bool = True,
    convert_to: Scheme | str | None = None,
    fuse_mlp: bool = True,
) -> QuantizationReport:
    """Replace the ``nn.Linear`` modules of ``model`` in place by :class:`QuantizedLinear`.

    Every layer is planned and checked first (shapes, NaN/Inf, kernel availability), so an error
    leaves the model untouched. Then layers are quantized one at a time: each is moved to
    ``device`` (if given), quantized 1024 rows at a time, and its float weight released, so peak
    extra memory is about one extra layer (its quantized copy) plus a 1024-row float32 chunk.

    Args:
        model: any PyTorch module.
        scheme: a scheme name (see :data:`qlinear.schemes.SCHEMES`) or :class:`Scheme`.
        ignore: module names kept in float: exact/dotted-suffix names, globs, or ``re:`` regexes.
            Default ``("lm_head",)``; embeddings are not Linear and are never touched.
        skip_unsupported: keep layers the scheme cannot represent in float (reported as skipped)
            instead of raising.
        device: where layers are quantized and will run; default: where each layer already is.
        backend: force a kernel or backend name (see ``qlinear kernels``).
        disabled: kernel names never to select.
        progress: show a progress bar.
        convert_to: quantize to ``scheme``, then convert each weight to this scheme's format and run
            it with this scheme's kernels, as a checkpoint of ``scheme`` converted at load would be
            (``load_quantized(..., convert_to=)``), e.g. ``"nvfp4_a16"`` converted to
            ``"fp8_per_block"`` runs on FP8 tensor cores on GPUs without FP4 ones. The report's SQNR
            is then the converted weight's against the float original.
        fuse_mlp: then replace each gated SiLU MLP whose ``down_proj`` takes per-token quantized
            input by one computing the SiLU-and-multiply inside that quantization
            (:func:`qlinear.layers.gated_mlp.fuse_gated_mlps`; the report lists them): the product is
            no longer written out and read back. Outputs are unchanged off CUDA; on CUDA silu's fast
            exp2 and division may move a value that sits at a bf16 rounding tie.

    Returns:
        A :class:`QuantizationReport`: per layer shape, kernel, bytes before/after, weight SQNR (dB).

    Raises:
        SchemeNotApplicable, NoKernelError, ValueError (NaN/Inf weights) — before any change.
    """
    scheme = get_scheme(scheme)
    runs_as = get_scheme(convert_to) if convert_to is not None else scheme
    target = platform_of(device) if device is not None else None
    plans = plan(model, scheme, ignore=ignore, skip_unsupported=skip_unsupported, platform=target,
                 backend=backend, disabled=disabled, convert_to=runs_as)
    modules = dict(linear_layers(model))
    for p in plans:
        if p.action == "quantize":
            check_finite(p.name, modules[p.name].weight.detach())

    label = scheme.name if runs_as is scheme else f"{scheme.name}->{runs_as.name}"
    report = QuantizationReport(label, (target or platform_of(None)).describe())
    for p in tqdm(plans, desc=f"quantize {label}", disable=not progress, leave=False):
        linear = modules[p.name]
        size = _bytes(linear.weight, linear.bias)
        if p.action != "quantize":
            report.layers.append(LayerReport(p.name, (p.out_features, p.in_features), p.action, None, size, size, reason=p.reason))
            continue
        if device is not None:
            linear.to(device)
        converting = runs_as is not scheme
        qweight, error = quantize_in_row_chunks(linear.weight.detach(), scheme.weight, measure=not converting)
        if converting:  # the reported error is the converted weight's against the original
            qweight, error = requantize(qweight, runs_as.weight, reference=linear.weight.detach())
        layer = QuantizedLinear(qweight, linear.bias, runs_as, p.dispatch, p.name)
        model.set_submodule(p.name, layer)
        del linear
        after = sum(_bytes(b) for b in layer.buffers()) + _bytes(layer.bias)
        report.layers.append(
            LayerReport(p.name, (p.out_features, p.in_features), "quantize", p.dispatch.kernel_names(), size, after, error)
        )
    if fuse_mlp:
        report.fused_mlps = fuse_gated_mlps(model)
    return report


"""The compressed-tensors checkpoint format (``quant_method: "compressed-tensors"``), as data.

Written by llm-compressor and read by vLLM and transformers; reference:
``shared/reference/checkpoint-formats.md`` §3.a. Each entry of :data:`FORMS` pairs a qlinear scheme
with the ``config_groups`` arguments that describe it and the tensor names it uses on disk. The
reader matches a file's config against them; the writer emits the entry's config. qlinear writes
float scales in float32 (exact); llm-compressor writes them in the model's dtype, and the reader
takes either.

This module maps schemes to and from ``quantization_config``; it does no I/O.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from ..schemes import SCHEMES, Scheme
from .layout import OnDisk

QUANT_METHOD = "compressed-tensors"
_PACKED_FP4 = OnDisk(weight="weight_packed")
_PACKED_NVFP4 = OnDisk(weight="weight_packed", global_scale="weight_global_scale", global_is_divisor=True)


@dataclass(frozen=True)
class StoredScheme:
    """What a checkpoint's config says: the scheme, where its tensors are, which modules to skip.

    Attributes:
        scheme: the qlinear scheme the layers run as.
        on_disk: tensor names of each quantized Linear.
        ignore: modules kept in float (names, globs or ``re:`` patterns).
        note: how qlinear's computation knowingly differs from the checkpoint's recipe ("" if not).
    """

    scheme: Scheme
    on_disk: OnDisk
    ignore: list[str] = field(default_factory=list)
    note: str = ""


@dataclass(frozen=True)
class Form:
    """One scheme as compressed-tensors describes it.

    ``weights``/``inputs`` hold the quantization arguments that identify the scheme (matched on
    read, written on write); ``scale_dtype`` (and ``zp_dtype``, derived) are written but not required
    on read (older versions omit them). ``write_refusal`` is why qlinear does not write this form ("" if it does);
    ``note`` is how qlinear runs a checkpoint of this form differently from its recipe.
    """

    scheme: str
    format: str
    weights: dict
    inputs: dict | None
    on_disk: OnDisk = OnDisk()
    scale_dtype: str | None = None
    write_refusal: str = ""
    note: str = ""


def _w(num_bits: int, kind: str, strategy: str, **more) -> dict:
    return {"num_bits": num_bits, "type": kind, "strategy": strategy, **more}


FORMS: tuple[Form, ...] = (
    Form("fp8_per_tensor", "float-quantized", _w(8, "float", "tensor"), _w(8, "float", "tensor", dynamic=True)),
    Form("fp8_static", "float-quantized", _w(8, "float", "tensor"), _w(8, "float", "tensor", dynamic=False),
         OnDisk(input_scale="input_scale")),
    Form("fp8_per_channel", "float-quantized", _w(8, "float", "channel"), _w(8, "float", "token", dynamic=True)),
    Form("fp8_per_block", "float-quantized", _w(8, "float", "block", block_structure=[128, 128]),
         _w(8, "float", "group", group_size=128, dynamic=True)),
    Form("int8_per_channel", "int-quantized", _w(8, "int", "channel"), _w(8, "int", "token", dynamic=True)),
    Form("int8_asym_act", "int-quantized", _w(8, "int", "channel"),
         _w(8, "int", "token", dynamic=True, symmetric=False)),
    Form("fp8_a16", "float-quantized", _w(8, "float", "channel"), None),
    Form("nvfp4_a16", "nvfp4-pack-quantized", _w(4, "float", "tensor_group", group_size=16), None,
         _PACKED_NVFP4, "torch.float8_e4m3fn"),
    Form("nvfp4", "nvfp4-pack-quantized", _w(4, "float", "tensor_group", group_size=16),
         _w(4, "float", "tensor_group", group_size=16, dynamic="local"), _PACKED_NVFP4, "torch.float8_e4m3fn",
         write_refusal="compressed-tensors NVFP4 (W4A4) stores a calibrated static input_global_scale, and "
                       "qlinear's nvfp4 computes the activation global scale per token at run time; write "
                       "nvfp4_a16 instead",
         note="the checkpoint's static input_global_scale is not used: activations get a per-token global "
              "scale computed at run time (on GPUs without FP4 tensor cores they are not quantized at all)"),
    Form("mxfp4_a16", "mxfp4-pack-quantized", _w(4, "float", "group", group_size=32), None, _PACKED_FP4, "torch.uint8"),
    Form("mxfp4_a16", "mxfp4-pack-quantized", _w(4, "float", "group", group_size=32),
         _w(4, "float", "group", group_size=32, dynamic=True), _PACKED_FP4, "torch.uint8",
         write_refusal="read only",
         note="MXFP4 activations (W4A4) are not quantized: qlinear has MXFP4 weight-only kernels only"),
    Form("mxfp8", "mxfp8-quantized", _w(8, "float", "group", group_size=32),
         _w(8, "float", "group", group_size=32, dynamic=True), scale_dtype="torch.uint8"),
    Form("mxfp8_a16", "mxfp8-quantized", _w(8, "float", "group", group_size=32), None, scale_dtype="torch.uint8"),
)


class NotExpressible(ValueError):
    """The scheme has no compressed-tensors form qlinear writes; the message says why."""


def _full_args(args: dict, scale_dtype: str | None) -> dict:
    """The arguments with compressed-tensors' defaults filled in, as its own writer emits them
    (zero points, of the asymmetric INT8 forms only, are int8)."""
    zp_dtype = None if args.get("symmetric", True) else "torch.int8"
    base = {"symmetric": True, "dynamic": False, "group_size": None, "block_structure": None, "actorder": None,
            "observer": "minmax", "observer_kwargs": {}, "scale_dtype": scale_dtype, "zp_dtype": zp_dtype}
    return {**base, **args}


def writable_form(scheme: Scheme) -> Form:
    """The form qlinear writes ``scheme`` in.

    Raises:
        NotExpressible: no such form; the message says why.
    """
    forms = [f for f in FORMS if f.scheme == scheme.name]
    writable = [f for f in forms if not f.write_refusal]
    if writable:
        return writable[0]
    if forms:
        raise NotExpressible(f"{scheme.name} is not written as compressed-tensors: {forms[0].write_refusal}")
    raise NotExpressible(f"{scheme.name} has no compressed-tensors form")


def config_for_scheme(scheme: Scheme, ignore: list[str]) -> dict:
    """``quantization_config`` for ``scheme``, quantizing every ``Linear`` but ``ignore`` (exact names).

    Raises:
        NotExpressible: for schemes this writer does not produce (the message says why).
    """
    form = writable_form(scheme)
    group = {
        "targets": ["Linear"],
        "weights": _full_args(form.weights, form.scale_dtype),
        "input_activations": _full_args(form.inputs, form.scale_dtype) if form.inputs else None,
        "output_activations": None,
        "format": form.format,
    }
    return {
        "quant_method": QUANT_METHOD,
        "format": form.format,
        "quantization_status": "compressed",
        "config_groups": {"group_0": group},
        "ignore": sorted(ignore),
        "kv_cache_scheme": None,
        "producer": "qlinear",
    }


def _matches(args: dict | None, want: dict | None) -> bool:
    if args is None or want is None:
        return args is None and want is None
    return (all(args.get(key) == value for key, value in want.items())
            and args.get("symmetric", True) is want.get("symmetric", True))


def scheme_from_config(qc: dict, source: str) -> StoredScheme:
    """The scheme of a compressed-tensors ``quantization_config``.

    Raises:
        ValueError: not compressed-tensors, several config groups, targets other than ``Linear``,
            asymmetric arguments, or a combination qlinear does not read; the message names
            ``source`` (the config file) and what was found.
    """
    if qc.get("quant_method") != QUANT_METHOD:
        raise ValueError(f"{source}: quant_method {qc.get('quant_method')!r} is not {QUANT_METHOD!r}")
    groups = qc.get("config_groups") or {}
    if len(groups) != 1:
        raise ValueError(f"{source}: qlinear reads one config group, found {len(groups)} ({', '.join(groups)})")
    (group,) = groups.values()
    targets = list(group.get("targets", ["Linear"]))
    if targets != ["Linear"]:
        raise ValueError(f"{source}: qlinear reads config groups that target 'Linear', found {targets}")
    weights, inputs = group.get("weights"), group.get("input_activations")
    if weights is not None and weights.get("symmetric", True) is not True:
        raise ValueError(f"{source}: asymmetric weights (weight_zero_point) are not supported; qlinear reads "
                         "symmetric weights, with symmetric or asymmetric INT8 activations")
    fmt = group.get("format") or qc.get("format")
    for form in FORMS:
        if _matches(weights, form.weights) and _matches(inputs, form.inputs) and fmt in (None, form.format):
            return StoredScheme(SCHEMES[form.scheme], form.on_disk, list(qc.get("ignore", [])), form.note)
    readable = sorted({f.scheme for f in FORMS})
    raise ValueError(f"{source}: format {fmt!r} with weights {weights} and input_activations {inputs} matches no "
                     f"scheme qlinear reads ({', '.join(readable)})")

"""The ``qlinear`` command line: generate, perplexity, explain, kernels."""
from __future__ import annotations

import argparse
import copy
import json
import logging
import sys
from collections import Counter

import torch

from . import kernels as kernel_registry
from .evaluate import generate, linear_bytes, perplexity, token_windows, weight_bytes
from .layers import DEFAULT_IGNORE, plan, quantize
from .layers.gated_mlp import gated_silu_mlp_names
from .models import load_model, model_label, resolve_device
from .platform import CPU, Platform, platform_of, simulated_cuda
from .schemes import ONLINE_SCHEMES, SCHEMES, get_scheme
from .text import load_text

BASELINE = "bf16"


def _add_model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default=None, help="local transformers model directory or .gguf file (default: embedded SmolLM2-135M)")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda[:N] (default: auto)")
    p.add_argument("--backend", default=None, help="force a kernel or backend (see `qlinear kernels`)")
    p.add_argument("--ignore", action="append", default=None, help="module to keep in float (name, glob or re:regex; repeatable)")
    p.add_argument("--skip-unsupported", action="store_true", help="keep layers the scheme cannot represent in float")
    p.add_argument("--convert-to", default=None, metavar="SCHEME",
                   help="convert the weights to this scheme after quantizing or reading them and run its kernels "
                        "(e.g. NVFP4 -> fp8_per_block for FP8 tensor cores)")


def _schemes(text: str) -> list[str]:
    names = [s.strip() for s in text.split(",") if s.strip()]
    if names == ["all"]:
        return list(ONLINE_SCHEMES)
    for n in names:
        if n != BASELINE:
            get_scheme(n)
    return names


def _quantize_args(args) -> dict:
    return {
        "ignore": tuple(args.ignore) if args.ignore else DEFAULT_IGNORE,
        "skip_unsupported": args.skip_unsupported,
        "backend": args.backend,
        "convert_to": get_scheme(args.convert_to).name if args.convert_to else None,
    }


def _label(scheme: str, convert_to: str | None) -> str:
    return f"{scheme}->{convert_to}" if convert_to and convert_to != scheme else scheme


def _checkpoint(path) -> bool:
    from .checkpoints import is_quantized_checkpoint

    return path is not None and is_quantized_checkpoint(path)


def _load_checkpoint(path, device, convert_to=None):
    """A pre-quantized checkpoint: ``(model, tokenizer, label)``; the scheme is read from it."""
    from transformers import AutoTokenizer

    from .checkpoints import load_quantized, stored_scheme

    model, _ = load_quantized(path, device=device, progress=True, convert_to=convert_to)
    return model, AutoTokenizer.from_pretrained(str(path)), _label(stored_scheme(path).scheme.name, convert_to)


def _kernels_used(model) -> Counter:
    from .layers import QuantizedLinear

    return Counter(m.dispatch.kernel_names() for m in model.modules() if isinstance(m, QuantizedLinear))


def cmd_generate(args) -> int:
    device = resolve_device(args.device)
    if _checkpoint(args.model):
        model, tok, scheme = _load_checkpoint(args.model, device, _quantize_args(args)["convert_to"])
    else:
        if args.scheme is None:
            raise ValueError("--scheme is required unless --model is a pre-quantized checkpoint")
        q = _quantize_args(args)
        scheme = get_scheme(args.scheme).name  # a bad name fails before the model loads
        model, tok = load_model(args.model, device=device)
        quantize(model, scheme, device=device, **q)
        scheme = _label(scheme, q["convert_to"])
    text, n, seconds = generate(model, tok, args.prompt, args.max_new_tokens)
    used = _kernels_used(model)
    print(f"model: {model_label(args.model)}  scheme: {scheme}  device: {platform_of(device).describe()}")
    print(f"kernels: {', '.join(f'{k} x{c}' for k, c in used.items())}")
    print(f"prompt: {args.prompt}\n---\n{text}\n---")
    print(f"{n} tokens in {seconds:.2f} s ({n / seconds:.1f} tokens/s)")
    return 0


def cmd_perplexity(args) -> int:
    device = resolve_device(args.device)
    checkpoint = _checkpoint(args.model)
    if checkpoint:
        base, tok, scheme = _load_checkpoint(args.model, device, _quantize_args(args)["convert_to"])
        schemes = [f"{scheme} (checkpoint)"]
    else:
        if args.scheme is None:
            raise ValueError("--scheme is required unless --model is a pre-quantized checkpoint")
        schemes = _schemes(args.scheme)
        if BASELINE not in schemes:
            schemes = [BASELINE, *schemes]
        base, tok = load_model(args.model, device=device)
    ids = tok(load_text(args.text), return_tensors="pt").input_ids[0]
    windows = token_windows(ids, args.tokens, args.context)
    rows = []
    for name in schemes:
        model = base if checkpoint else copy.deepcopy(base)
        kernels_used: list[str] = sorted(_kernels_used(model)) if checkpoint else []
        label = name
        if name != BASELINE and not checkpoint:
            report = quantize(model, name, device=device, progress=not args.json, **_quantize_args(args))
            kernels_used = sorted({r.kernel for r in report.layers if r.kernel})
            label = report.scheme
        ppl, tokens, seconds = perplexity(model, windows, batch=args.batch)
        rows.append({
            "scheme": label, "perplexity": ppl, "tokens": tokens, "seconds": seconds,
            "tokens_per_s": tokens / seconds, "weight_mb": weight_bytes(model) / 1e6,
            "linear_mb": linear_bytes(model) / 1e6, "kernels": kernels_used,
        })
        del model
    ref = rows[0]["perplexity"]
    for r in rows:
        r["change_pct"] = 100.0 * (r["perplexity"] / ref - 1.0)
    meta = {"model": model_label(args.model), "text": args.text, "tokens": int(windows.numel()),
            "context": args.context, "device": platform_of(device).describe(), "torch": torch.__version__}
    if args.json:
        print(json.dumps({**meta, "results": rows}, indent=2))
        return 0
    print(f"model: {meta['model']}\ntext: {args.text}, {meta['tokens']} tokens, context {args.context}; device: {meta['device']}")
    print(f"{'scheme':18} {'perplexity':>10} {'vs bf16':>8} {'weights MB':>10} {'linear MB':>9} {'tokens/s':>9}  kernels")
    for r in rows:
        print(f"{r['scheme']:18} {r['perplexity']:10.3f} {r['change_pct']:+7.2f}% {r['weight_mb']:10.1f} "
              f"{r['linear_mb']:9.1f} {r['tokens_per_s']:9.1f}  {', '.join(r['kernels']) or '-'}")
    return 0


def parse_platform(text: str | None, device: torch.device) -> Platform:
    """``cpu``, ``sm_80``/``sm80``/``80`` (simulated CUDA), or None for the real device."""
    if text is None:
        return platform_of(device)
    if text == "cpu":
        return CPU
    digits = text.lower().removeprefix("sm_").removeprefix("sm")
    if not digits.isdigit():
        raise ValueError(f"--platform takes cpu or sm_NN (e.g. sm_90), got {text!r}")
    return simulated_cuda(int(digits))


def _checkpoint_plans(path, platform, backend, convert_to=None):
    """Plans for a pre-quantized checkpoint: its layers as stored, kernels selected for ``platform``;
    also the names of its gated SiLU MLPs."""
    from torch import nn

    from .checkpoints import load_quantized
    from .kernels.registry import planning_only
    from .layers import LayerPlan, QuantizedLinear
    from .layers.linear import choose_dispatch

    with planning_only():  # loaded on the CPU only to be planned for ``platform``, never run here
        model, scheme = load_quantized(path, device="cpu", convert_to=convert_to)
    plans = []
    for name, m in model.named_modules():
        if isinstance(m, QuantizedLinear):
            plans.append(LayerPlan(name, m.out_features, m.in_features, "quantize",
                                   dispatch=choose_dispatch(m.config, platform, backend=backend)))
        elif isinstance(m, nn.Linear):
            plans.append(LayerPlan(name, m.out_features, m.in_features, "ignore", "not quantized in the checkpoint"))
    return scheme, plans, gated_silu_mlp_names(model)


def cmd_explain(args) -> int:
    device = resolve_device(args.device)
    platform = parse_platform(args.platform, device)
    q = _quantize_args(args)
    note = ""
    if _checkpoint(args.model):
        from .checkpoints import stored_scheme

        stored = stored_scheme(args.model)
        note, source = stored.note, stored.scheme.name
        scheme, plans, mlps = _checkpoint_plans(args.model, platform, q["backend"], q["convert_to"])
    else:
        if args.scheme is None:
            raise ValueError("--scheme is required unless --model is a pre-quantized checkpoint")
        source = get_scheme(args.scheme).name
        scheme = get_scheme(q["convert_to"] or source)
        model, _ = load_model(args.model, device="cpu", with_tokenizer=False)
        plans = plan(model, source, platform=platform, ignore=q["ignore"], convert_to=q["convert_to"],
                     skip_unsupported=q["skip_unsupported"], backend=q["backend"])
        mlps = gated_silu_mlp_names(model)
    label = _label(source, q["convert_to"])
    gated_down_projs = {f"{name}.down_proj" for name in mlps}

    def compiled_quantization(p) -> str:
        outside = p.dispatch.quantizes_input_outside(kernel_registry.LayerConfig(scheme, p.out_features, p.in_features, name=p.name))
        return "compiler" if outside else "op"

    def silu_mul_fused(p) -> bool:  # what fuse_gated_mlps will do to this layer's MLP
        return p.name in gated_down_projs and compiled_quantization(p) == "compiler"

    if args.json:
        layers = [{**p.to_dict(), **({"compiled_activation_quantization": compiled_quantization(p)} if p.dispatch else {}),
                   **({"silu_mul_fused_into_quantization": True} if p.dispatch and silu_mul_fused(p) else {})}
                  for p in plans]
        print(json.dumps({"model": model_label(args.model), "scheme": label, "scheme_spec": scheme.describe(),
                          "checkpoint_note": note, "platform": platform.describe(), "layers": layers}, indent=2))
        return 0
    print(f"model: {model_label(args.model)}\nscheme: {label} ({scheme.describe()})\nplatform: {platform.describe()}")
    print(f"checkpoint note: {note}\n" if note else "")
    groups: dict[tuple, list[str]] = {}
    for p in plans:
        kernels = p.dispatch.kernel_names() if p.dispatch else f"({p.action})"
        print(f"{p.name:48} {p.out_features:>6}x{p.in_features:<6} {kernels}")
        if p.dispatch:
            why = tuple(
                (r.label, r.selection.kernel.name + (" (measured: qlinear tune or the GPU's built-in default)" if r.selection.measured else "")
                 + (f"\n        note: {r.selection.deviation}" if r.selection.deviation else ""),
                 tuple((x.kernel, x.reason) for x in r.selection.rejected))
                for r in p.dispatch.routes
            )
            if silu_mul_fused(p):
                why += (("", "", (("-", "x = silu(gate_proj) * up_proj is computed inside this layer's per-token "
                                   "quantization, one pass in eager mode and compiled (qlinear.layers.gated_mlp; "
                                   "quantize(fuse_mlp=False) keeps it apart)"),)),)
            elif compiled_quantization(p) == "compiler":
                why += (("", "", (("-", "under torch.compile x is quantized per token by the compiler, fused into "
                                   "the op before the layer (QLINEAR_FUSE_ACT_QUANT=0: inside the layer's op)"),)),)
        else:
            why = (("", "", (("-", p.reason),)),)
        groups.setdefault((p.out_features, p.in_features, why), []).append(p.name)
    print("\nwhy (per shape; M = rows of x):")
    for (n, k, why), names in groups.items():
        print(f"- {n}x{k}, {len(names)} layer(s), e.g. {names[0]}")
        for bucket, kernel, rejected in why:
            if bucket:
                print(f"    M {bucket:>6}: {kernel}")
            for name, reason in rejected:
                print(f"        rejected {name}: {reason}" if name != "-" else f"    {reason}")
    routes = [r for p in plans if p.dispatch for r in p.dispatch.routes]
    if platform.kind == "cuda" and routes and not any(r.selection.measured for r in routes):
        print(f"\nno choice above was measured on {platform.device_name} ({label} has no `qlinear tune` cache entry or "
              "built-in default here): they follow the static priority list; `qlinear tune` times the candidates on "
              "this GPU and caches the fastest per M bucket")
    return 0


def cmd_kernels(args) -> int:
    here = platform_of(resolve_device(args.device))
    rows = []
    for k in kernel_registry.all_kernels():
        served = [s for s in SCHEMES.values()
                  if any(k.can_implement(kernel_registry.LayerConfig(s, 4096, 4096, min_m=lo, max_m=hi))[0]
                         for lo, hi in kernel_registry.M_BUCKETS)]  # prefill-only kernels serve some buckets
        ok, reason = k.is_supported(here)
        lists = [kind for kind in kernel_registry.registry.PLATFORM_KINDS if k in kernel_registry.candidates(Platform(kind))]
        rows.append({"kernel": k.name, "backend": k.backend, "summary": k.summary, "schemes": [s.name for s in served],
                     "platforms": lists, "runs_here": ok, "reason": reason})
    if args.json:
        print(json.dumps({"platform": here.describe(), "kernels": rows}, indent=2))
        return 0
    print(f"platform: {here.describe()}\n")
    for r in rows:
        status = "runs here" if r["runs_here"] else f"not here: {r['reason']}"
        print(f"{r['kernel']}  [{r['backend']}; lists: {', '.join(r['platforms'])}]  {status}")
        print(f"    {r['summary']}\n    schemes: {', '.join(r['schemes'])}")
    return 0


def cmd_bench(args) -> int:
    from . import bench

    if not torch.cuda.is_available():
        raise ValueError("qlinear bench times GPU kernels and needs a CUDA GPU")
    shapes = [tuple(int(v) for v in s.lower().split("x")) for s in args.shape] if args.shape else bench.PRESETS[args.preset]
    schemes = _schemes(args.schemes)
    ms = [int(v) for v in args.m.split(",")]
    dev = platform_of(torch.device("cuda")).describe()
    if args.e2e:
        from . import e2e

        print(f"device: {dev}; torch {torch.__version__}; Llama-3.1-8B shape, random weights, "
              f"{args.layers or 32} layers; decode steps as CUDA-graph replays"
              + ("; decoder layers torch.compile'd" if args.compile else ""))
        results = e2e.run(schemes, layers=args.layers, compile=args.compile)
        base = results[0]
        for r in results[1:]:
            label = "bound (linears free)" if r.scheme == e2e.LINEAR_FREE else f"{r.scheme} speedup"
            print(f"{label:30} decode " + " ".join(f"b={b}: {base.decode_ms[b] / ms:.2f}x" for b, ms in r.decode_ms.items())
                  + f"  prefill {base.prefill_ms / r.prefill_ms:.2f}x")
        return 0
    ceil = bench.measure_ceilings()
    print(f"device: {dev}; torch {torch.__version__}; copy {ceil.copy_bytes_per_s / 1e12:.2f} TB/s, "
          f"fp8 {ceil.fp8_flops_per_s / 1e12:.0f} TFLOPS, bf16 {ceil.bf16_flops_per_s / 1e12:.0f} TFLOPS")
    if args.act_quant:
        bench.bench_act_quant(ceil)
    rows = []
    for n, k in shapes:
        rows += bench.bench_case(n, k, ms, schemes, ceil, kernels=args.kernels.split(",") if args.kernels else None,
                                 graph=args.graph)
    bench.print_table(rows)
    if args.csv:
        bench.write_csv(rows, args.csv)
    if args.plot:
        bench.plot(rows, args.plot)
    return 0


def cmd_quantize(args) -> int:
    from .checkpoints import save_compressed_tensors
    from .checkpoints.compressed_tensors import writable_form

    device = resolve_device(args.device)
    scheme = get_scheme(args.scheme).name
    q = _quantize_args(args)
    writable_form(get_scheme(q["convert_to"] or scheme))  # refuse what the format cannot express before any work
    if args.max_shard_mb <= 0:
        raise ValueError(f"--max-shard-mb must be positive, got {args.max_shard_mb}")
    model, tok = load_model(args.model, device=device)
    report = quantize(model, scheme, device=device, **q)
    out = save_compressed_tensors(model, args.out, tokenizer=tok, max_shard_bytes=int(args.max_shard_mb * 2**20))
    print(report.table())
    print(f"wrote a compressed-tensors checkpoint ({report.scheme}) to {out}")
    return 0


def cmd_tune(args) -> int:
    from . import bench, tuning
    from .formats import quantize as quantize_tensor
    from .layers.quantize import linear_layers

    if not torch.cuda.is_available():
        raise ValueError("qlinear tune times kernels on a CUDA GPU")
    model, _ = load_model(args.model, device="cpu", with_tokenizer=False)
    ignore = tuple(args.ignore) if args.ignore else DEFAULT_IGNORE
    from .layers.patterns import first_match

    shapes = sorted({(m.out_features, m.in_features) for name, m in linear_layers(model) if first_match(name, ignore) is None})
    del model
    here = platform_of(torch.device("cuda"))
    for scheme_name in _schemes(args.scheme):
        scheme = get_scheme(scheme_name)
        for n, k in shapes:
            if k % scheme.k_multiple:
                continue
            weights = [quantize_tensor(torch.randn(n, k, device="cuda", dtype=torch.bfloat16), scheme.weight)
                       for _ in range(bench._copies(n * k))]

            def time_kernel(kernel, m):
                return bench.time_layers(weights, scheme, kernel, torch.randn(m, k, device="cuda", dtype=torch.bfloat16),
                                         graph=args.graph)

            timings = tuning.tune_shape(scheme_name, n, k, here, time_kernel)
            choice = tuning.fastest(timings)
            path = tuning.record(here, scheme_name, n, k, choice)
            for label, times in timings.items():
                print(f"{scheme_name} {n}x{k} M {label:>7}: " + ", ".join(f"{kn} {us:.1f} us" for kn, us in sorted(times.items(), key=lambda t: t[1])))
    print(f"choices stored in {path}")
    return 0


GRAPH_HELP = ("time every M as CUDA-graph replays (the GPU's time); default: graphs up to M=64, eager above, "
              "which counts the host's launch cost")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="qlinear", description="Quantized linear layers for LLM inference.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log kernel selection details")
    sub = parser.add_subparsers(dest="command", required=True)
    schemes_help = f"one of: {', '.join(SCHEMES)}"

    g = sub.add_parser("generate", help="quantize the model and generate text")
    g.add_argument("--scheme", default=None, help=f"{schemes_help} (read from --model when it is a checkpoint)")
    g.add_argument("--prompt", default="Explain what a Python decorator is in two sentences.")
    g.add_argument("--max-new-tokens", type=int, default=64)
    _add_model_args(g)
    g.set_defaults(func=cmd_generate)

    p = sub.add_parser("perplexity", help="perplexity of bf16 and each scheme")
    p.add_argument("--scheme", default=None, help=f"comma-separated, or 'all'; {schemes_help} (read from --model when it is a checkpoint)")
    p.add_argument("--text", default="pydoc", help="'pydoc' (CPython documentation, built in), 'austen' or 'austen:emma,...' "
                   "(Jane Austen's novels from Debian's r-cran-janeaustenr; needs rdata) or a text file")
    p.add_argument("--tokens", type=int, default=8192)
    p.add_argument("--context", type=int, default=1024)
    p.add_argument("--batch", type=int, default=4, help="windows per forward pass")
    p.add_argument("--json", action="store_true")
    _add_model_args(p)
    p.set_defaults(func=cmd_perplexity)

    e = sub.add_parser("explain", help="each layer's kernel and every rejected candidate's reason")
    e.add_argument("--scheme", default=None, help=f"{schemes_help} (read from --model when it is a checkpoint)")
    e.add_argument("--platform", default=None, help="simulate another platform: cpu or sm_NN (e.g. sm_80)")
    e.add_argument("--json", action="store_true")
    _add_model_args(e)
    e.set_defaults(func=cmd_explain)

    b = sub.add_parser("bench", help="time every candidate kernel against bf16 and cuBLAS FP8 (GPU)")
    b.add_argument("--preset", choices=["llama3-8b", "qwen3-32b", "deepseek-v3", "issue"], default="llama3-8b")
    b.add_argument("--shape", action="append", help="NxK (repeatable); overrides --preset")
    b.add_argument("--schemes", default="fp8_per_block,fp8_per_channel,int8_per_channel")
    b.add_argument("--m", default="1,2,4,8,16,32,64,128,256,512,1024,2048,4096,8192")
    b.add_argument("--kernels", default=None, help="only these kernel names (comma-separated)")
    b.add_argument("--csv", default=None)
    b.add_argument("--plot", default=None, help="PNG path")
    b.add_argument("--act-quant", action="store_true", help="also time the fused activation quantization kernels")
    b.add_argument("--e2e", action="store_true", help="Llama-3.1-8B-shaped decoder: decode step and 4096-token prefill")
    b.add_argument("--layers", type=int, default=None, help="decoder layers for --e2e (default 32)")
    b.add_argument("--compile", action="store_true",
                   help="--e2e with every decoder layer torch.compile'd (bf16 too); quantized kernels stay opaque ops, per-token "
                        "activation quantization is fused by the compiler (QLINEAR_FUSE_ACT_QUANT=0: in the op)")
    b.add_argument("--graph", action="store_true", help=GRAPH_HELP)
    b.set_defaults(func=cmd_bench)

    w = sub.add_parser("quantize", help="quantize a model and write a compressed-tensors checkpoint")
    w.add_argument("--scheme", required=True, help=schemes_help)
    w.add_argument("--out", required=True, help="output directory")
    w.add_argument("--max-shard-mb", type=float, default=5120, help="largest safetensors shard (default 5120 MiB)")
    _add_model_args(w)
    w.set_defaults(func=cmd_quantize)

    t = sub.add_parser("tune", help="time the candidate kernels per M bucket for a model's shapes; cache the choices")
    t.add_argument("--scheme", required=True, help=f"comma-separated, or 'all'; {schemes_help}")
    t.add_argument("--model", default=None)
    t.add_argument("--ignore", action="append", default=None)
    t.add_argument("--graph", action="store_true", help=GRAPH_HELP)
    t.set_defaults(func=cmd_tune)

    k = sub.add_parser("kernels", help="registered kernels, their schemes, and whether they run here")
    k.add_argument("--device", default="auto")
    k.add_argument("--json", action="store_true")
    k.set_defaults(func=cmd_kernels)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        return args.func(args)
    except (ValueError, FileNotFoundError) as err:
        print(f"qlinear: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

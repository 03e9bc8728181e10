"""Where a 4096-token prefill of the Llama-3.1-8B-shaped decoder spends its GPU time, eager against
torch.compile'd decoder layers: the CUDA kernels of one forward, grouped and summed (torch.profiler).

    PYTHONPATH=. python3 bench/profile_e2e_prefill.py [--layers 4] [--schemes bf16,fp8_per_channel]
"""
from __future__ import annotations

import argparse
from collections import defaultdict

import torch

from qlinear.e2e import build_model, compile_decoder_layers
from qlinear.layers import quantize


def kernel_times_ms(model, ids) -> dict[str, float]:
    with torch.inference_mode():
        for _ in range(3):
            model(ids, use_cache=False, logits_to_keep=1)
        torch.cuda.synchronize()
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CUDA]) as prof:
            model(ids, use_cache=False, logits_to_keep=1)
            torch.cuda.synchronize()
    totals: dict[str, float] = defaultdict(float)
    for event in prof.events():
        if event.device_type == torch.autograd.DeviceType.CUDA:
            totals[event.name[:90]] += event.device_time_total / 1000.0
    return dict(totals)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--schemes", default="bf16,fp8_per_channel")
    parser.add_argument("--tokens", type=int, default=4096)
    parser.add_argument("--top", type=int, default=14)
    args = parser.parse_args()
    for scheme in args.schemes.split(","):
        for compiled in (False, True):
            torch._dynamo.reset()
            model = build_model(args.layers)
            if scheme != "bf16":
                quantize(model, scheme, progress=False)
            if compiled:
                compile_decoder_layers(model)
            ids = torch.randint(0, model.config.vocab_size, (1, args.tokens), device="cuda")
            times = kernel_times_ms(model, ids)
            total = sum(times.values())
            print(f"\n## {scheme}, {'compiled' if compiled else 'eager'}, {args.layers} layers, "
                  f"{args.tokens} tokens: {total:.2f} ms of kernels, {len(times)} distinct kernels")
            for name, ms in sorted(times.items(), key=lambda kv: -kv[1])[: args.top]:
                print(f"{ms:8.3f} ms  {name}")
            del model
            torch.cuda.empty_cache()


if __name__ == "__main__":
    main()

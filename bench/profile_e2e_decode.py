"""Where one decode step (batch 1) of the Llama-3.1-8B-shaped decoder spends its GPU time, with the
decoder layers torch.compile'd: the step as a CUDA-graph replay (``qlinear.e2e.decode_step_ms``),
and the CUDA kernels of one replay under torch.profiler, grouped by name (time and launches).
Replay time minus the kernels' sum is the time between kernels.

    PYTHONPATH=. python3 bench/profile_e2e_decode.py [--layers 32] [--schemes bf16,fp8_per_channel]
"""
from __future__ import annotations

import argparse
from collections import defaultdict

import torch

from qlinear.e2e import build_model, capture_decode_step, compile_decoder_layers, decode_step_ms
from qlinear.layers import quantize


@torch.inference_mode()
def replay_kernels(model, batch: int = 1) -> dict[str, tuple[float, int]]:
    graph = capture_decode_step(model, batch)
    graph.replay()
    torch.cuda.synchronize()
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CUDA]) as prof:
        graph.replay()
        torch.cuda.synchronize()
    totals: dict[str, list] = defaultdict(lambda: [0.0, 0])
    for event in prof.events():
        if event.device_type == torch.autograd.DeviceType.CUDA:
            totals[event.name[:80]][0] += event.device_time_total / 1000.0
            totals[event.name[:80]][1] += 1
    return {k: (v[0], v[1]) for k, v in totals.items()}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--layers", type=int, default=32)
    parser.add_argument("--schemes", default="bf16,fp8_per_channel")
    parser.add_argument("--top", type=int, default=16)
    args = parser.parse_args()
    for scheme in args.schemes.split(","):
        torch._dynamo.reset()
        model = build_model(args.layers)
        if scheme != "bf16":
            quantize(model, scheme, progress=False)
        compile_decoder_layers(model)
        step = decode_step_ms(model, 1)
        times = replay_kernels(model)
        total = sum(ms for ms, _ in times.values())
        launches = sum(n for _, n in times.values())
        print(f"\n## {scheme}, compiled, {args.layers} layers, decode batch 1: replay {step:.3f} ms, "
              f"kernels {total:.3f} ms in {launches} launches ({len(times)} distinct), between kernels "
              f"{step - total:.3f} ms")
        for name, (ms, n) in sorted(times.items(), key=lambda kv: -kv[1][0])[: args.top]:
            print(f"{ms:8.3f} ms {n:5}x  {name}")
        del model
        torch.cuda.empty_cache()


if __name__ == "__main__":
    main()

"""A/B (one run): split-K partials of the Gluon e2m1 decode GEMM stored token-major for the real
tokens only (new) against all 8 columns row-major (old copy), plus bitwise equality of outputs."""
import dataclasses, itertools, sys
import torch
sys.path.insert(0, "bench")
import _e2m1_mma_old as old
from qlinear.bench import _copies, _rotating, graph_median_us, measure_ceilings
from qlinear.formats import quantize
from qlinear.kernels import Dispatch, GluonW4A16Kernel
from qlinear.kernels.triton import e2m1_mma as new
from qlinear.layers import QuantizedLinear
from qlinear.schemes import SCHEMES

ceil = measure_ceilings()
print(f"copy {ceil.copy_bytes_per_s / 1e12:.2f} TB/s", flush=True)
for name, (n, k) in itertools.product(("nvfp4_a16", "mxfp4_a16"), [(4096, 4096), (14336, 4096), (4096, 14336), (28672, 4096)]):
    scheme = SCHEMES[name]
    gen = torch.Generator(device="cuda").manual_seed(n + k)
    qw = quantize(torch.randn(n, k, device="cuda", generator=gen, dtype=torch.bfloat16), scheme.weight)
    layers = [QuantizedLinear(dataclasses.replace(qw, data=qw.data.clone(), scale=qw.scale.clone()), None, scheme,
                              Dispatch.single(GluonW4A16Kernel), "ab") for _ in range(_copies(n * k // 2))]
    lay = layers[0].kernel.layout
    mx = scheme.weight.scale_dtype == "e8m0"
    floor = 1e6 * (n * k // 2 + n * k // scheme.weight.group_size) / ceil.copy_bytes_per_s
    for m in (1, 4, 16):
        x = torch.randn(m, k, device="cuda", dtype=torch.bfloat16)
        cfg = new.pick_e2m1_mma_config(n, k, m)
        run = lambda mod, L: mod.e2m1_mma(x, L.weight, L.weight_scale, lay.post_scale, mx=mx, config=cfg,
                                          scale_bias=lay.scale_bias)
        same = torch.equal(run(new, layers[0]), run(old, layers[0]))
        t = {}
        for rep in range(2):
            for label, mod in (("old", old), ("new", new)):
                t.setdefault(label, []).append(graph_median_us(_rotating([lambda L=L, mod=mod: run(mod, L) for L in layers])))
        print(f"{name:10} {n:6}x{k:<6} M={m:<3} {cfg.key():18} old {t['old'][0]:6.1f} {t['old'][1]:6.1f}  new {t['new'][0]:6.1f} {t['new'][1]:6.1f} us"
              f"  ({100 * floor / min(t['new']):4.1f}% of floor new)  bitwise equal: {same}", flush=True)
    del layers
    torch.cuda.empty_cache()

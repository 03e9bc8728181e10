"""Which 128x128 weight-scale layout does this torch's cuBLASLt blockwise _scaled_mm read correctly?

    PYTHONPATH=. python3 bench/probe_cublas_blockwise.py
Layouts: 'plain' = the [N/128, K/128] grid transposed (stride (1, K/128)); 'padded' = the same grid
stored with its K/128 dimension padded to a multiple of 4 (PyTorch #166752's requirement).
"""
import torch

from qlinear.formats import dequantize, fake_quantize, quantize
from qlinear.kernels.triton.act_quant import quantize_per_group
from qlinear.schemes import SCHEMES

s = SCHEMES["fp8_per_block"]
print("torch", torch.__version__)
for kb in (1, 2, 3, 4, 5, 8):
    for m, n in ((4, 256), (128, 384)):
        k = 128 * kb
        w = torch.randn(n, k, device="cuda")
        x = torch.randn(m, k, device="cuda", dtype=torch.bfloat16)
        qw = quantize(w, s.weight)
        ref = fake_quantize(x, s.activation).double() @ dequantize(qw, torch.float64).t()
        q, sa = quantize_per_group(x, 128, m_major=True)
        nb = qw.scale.shape[0]
        padded = torch.ones(nb, -(-kb // 4) * 4, device="cuda")
        padded[:, :kb] = qw.scale
        out = []
        for name, sb in (("plain", qw.scale.t()), ("padded", padded[:, :kb].t())):
            try:
                y = torch._scaled_mm(q, qw.data.t(), scale_a=sa, scale_b=sb, out_dtype=torch.bfloat16)
                rel = float((y.double() - ref).abs().mean() / ref.abs().mean())
                out.append(f"{name}: {rel:.2e}")
            except Exception as err:  # noqa: BLE001
                out.append(f"{name}: {type(err).__name__} {str(err)[:90]}")
        print(f"K/128={kb} M={m} N={n}: " + "; ".join(out), flush=True)

"""``gluon_w4a16``: NVFP4 and MXFP4 weight-only decode (M <= 64) on :mod:`.triton.e2m1_mma`.

The packed weight is read once, 16 bytes per lane, and each 32-bit word is decoded in registers
straight into ``mma.sync`` fragments (bf16 tensor cores, so any sm_80+ GPU); the activation is
staged once per program. It reads the layer's canonical buffers and shares ``triton_w4a16``'s
in-register values and ``post_scale`` (:class:`~.triton_weight_only.WeightOnlyLayout`).
Prefill (M > 64) stays with ``dequant_cublas``.
"""
from __future__ import annotations

import torch

from ..platform import Platform
from .base import LayerConfig, Verdict, importable, require_cuda
from .dispatch import DECODE_MAX_M
from .triton_weight_only import BF16_MMA, _runs_as_w4a16, _weight_only_verdict, _WeightOnly


class GluonW4A16Kernel(_WeightOnly):
    name = "gluon_w4a16"
    backend = "gluon"
    summary = ("Gluon W4A16 decode (M <= 64): NVFP4/MXFP4 codes decoded from each 32-bit load straight into "
               "mma.sync fragments, activation staged once per program, split-K in the same launch (sm_80+)")

    @classmethod
    def is_supported(cls, platform: Platform) -> Verdict:
        ok, reason = require_cuda(platform, BF16_MMA, "bf16 tensor cores")
        return importable("triton.e2m1_mma", "Triton's Gluon API (mma_v2)") if ok else (ok, reason)

    @classmethod
    def can_implement(cls, config: LayerConfig) -> Verdict:
        verdict = _weight_only_verdict(config, _runs_as_w4a16(config.scheme),
                                       "NVFP4 or MXFP4 e2m1 weights (W4A16; W4A4 runs as W4A16)")
        if verdict[0] and (config.max_m is None or config.max_m > DECODE_MAX_M):
            return False, f"decode sizes only (M <= {DECODE_MAX_M}): 8 tokens per MMA column tile, up to 8 tiles"
        return verdict

    def prepare(self, layer) -> None:
        from .triton.e2m1_mma import pick_e2m1_mma_config

        super().prepare(layer)
        n, k = self.config.out_features, self.config.in_features
        # one config per MMA column-tile count (1, 2, 4, 8 tiles of 8 tokens): a dict lookup per call
        self.configs = {tiles: pick_e2m1_mma_config(n, k, 8 * tiles) for tiles in (1, 2, 4, 8)}

    def apply(self, layer, x: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        from .triton.dequant_gemm import MXFP4
        from .triton.e2m1_mma import e2m1_mma, token_tiles

        lay = self.layout
        return e2m1_mma(x.contiguous(), layer.weight, layer.weight_scale, lay.post_scale, mx=lay.wfmt == MXFP4,
                        config=self.configs[token_tiles(x.shape[0])], scale_bias=lay.scale_bias, bias=bias)

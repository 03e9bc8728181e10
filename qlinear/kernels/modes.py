"""Run-mode switches read from the environment."""
import os


def batch_invariant_mode() -> bool:
    """``QLINEAR_BATCH_INVARIANT=1``: only kernels whose per-row result does not depend on M (fixed
    tiles, no split-K), and one kernel for every M. Read when layers are built and when configs are chosen."""
    return os.environ.get("QLINEAR_BATCH_INVARIANT", "") not in ("", "0")


def fuse_activation_quantization() -> bool:
    """Under ``torch.compile``, leave per-token activation quantization to the compiler, which fuses it
    into the op that produced x (the default); ``QLINEAR_FUSE_ACT_QUANT=0`` keeps it inside the layer's
    opaque op, where qlinear's kernel computes eager mode's numbers bit for bit. Read when layers are built."""
    return os.environ.get("QLINEAR_FUSE_ACT_QUANT", "1") != "0"

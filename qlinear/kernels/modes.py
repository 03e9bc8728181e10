"""Run-mode switches read from the environment."""
import os


def batch_invariant_mode() -> bool:
    """``QLINEAR_BATCH_INVARIANT=1``: only kernels whose per-row result does not depend on M (fixed
    tiles, no split-K), and one kernel for every M. Read when layers are built and when configs are chosen."""
    return os.environ.get("QLINEAR_BATCH_INVARIANT", "") not in ("", "0")

"""Pre-quantized checkpoints: compressed-tensors writer and reader."""
from .compressed_tensors import NotExpressible, config_for_scheme, scheme_from_config
from .reader import CheckpointError, is_quantized_checkpoint, load_quantized
from .writer import save_compressed_tensors

__all__ = [
    "CheckpointError",
    "NotExpressible",
    "config_for_scheme",
    "is_quantized_checkpoint",
    "load_quantized",
    "save_compressed_tensors",
    "scheme_from_config",
]

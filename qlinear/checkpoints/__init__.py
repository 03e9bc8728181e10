"""Pre-quantized checkpoints: read compressed-tensors, ``fp8`` (DeepSeek/Qwen) and ModelOpt; write compressed-tensors."""
from .compressed_tensors import NotExpressible, StoredScheme, config_for_scheme, scheme_from_config
from .layout import CheckpointError, OnDisk
from .reader import is_quantized_checkpoint, load_quantized, stored_scheme
from .writer import save_compressed_tensors

__all__ = [
    "CheckpointError",
    "NotExpressible",
    "OnDisk",
    "StoredScheme",
    "config_for_scheme",
    "is_quantized_checkpoint",
    "load_quantized",
    "save_compressed_tensors",
    "scheme_from_config",
    "stored_scheme",
]

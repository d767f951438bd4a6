"""dprog's block library: pure data describing every block. Imports neither torch nor dearpygui."""

from .library import BLOCKS, CATEGORIES, LEGACY_TYPES, REGISTRY, lookup
from .spec import BlockSpec, Param, Port
from .types import BATCH, ShapeError, TensorType, fmt_shape

__all__ = ["BATCH", "BLOCKS", "CATEGORIES", "LEGACY_TYPES", "REGISTRY", "BlockSpec", "Param", "Port",
           "ShapeError", "TensorType", "fmt_shape", "lookup"]

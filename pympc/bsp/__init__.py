"""BSP supersteps (:mod:`pympc.bsp.core`) and their cost report (:mod:`pympc.bsp.report`)."""

from .core import BSP

__all__ = ["BSP"]

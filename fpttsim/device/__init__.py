"""The simulated device: memory arena, cost model, time, and the learning loop."""

from fpttsim.device.cost import CostModel, Work
from fpttsim.device.loop import Device, DeviceResult
from fpttsim.device.memory import COMPONENTS, Arena, BudgetError, Buffer, plan
from fpttsim.device.timeline import Clock, Timeline

__all__ = [
    "COMPONENTS",
    "Arena",
    "BudgetError",
    "Buffer",
    "Clock",
    "CostModel",
    "Device",
    "DeviceResult",
    "Timeline",
    "Work",
    "plan",
]

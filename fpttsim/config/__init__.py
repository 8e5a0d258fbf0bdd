"""Scenarios and hardware profiles: YAML files validated into frozen models."""

from fpttsim.config.loader import (
    find_shipped,
    load_profile,
    load_scenario,
    parse_overrides,
    shipped_profiles,
    shipped_scenarios,
)
from fpttsim.config.profile import (
    ArithmeticConfig,
    ComputeConfig,
    EnergyConfig,
    MemoryConfig,
    Profile,
    QuantityFormat,
    ResolvedFormat,
)
from fpttsim.config.scenario import (
    AddingTask,
    CopyTask,
    DeviceConfig,
    GradcheckConfig,
    LearningConfig,
    ModelConfig,
    Scenario,
    SineTask,
    TaskConfig,
    TrainingConfig,
)

__all__ = [
    "AddingTask",
    "ArithmeticConfig",
    "ComputeConfig",
    "CopyTask",
    "EnergyConfig",
    "DeviceConfig",
    "GradcheckConfig",
    "LearningConfig",
    "MemoryConfig",
    "ModelConfig",
    "Profile",
    "QuantityFormat",
    "ResolvedFormat",
    "Scenario",
    "SineTask",
    "TaskConfig",
    "TrainingConfig",
    "find_shipped",
    "load_profile",
    "load_scenario",
    "parse_overrides",
    "shipped_profiles",
    "shipped_scenarios",
]

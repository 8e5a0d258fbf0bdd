"""fpttsim: simulate on-device and neuromorphic streaming learning with FPTT.

Forward propagation of errors through time (FPTT) computes the exact gradient
of a recurrent network with two forward passes and memory independent of the
sequence length. fpttsim simulates it, checks it against backpropagation
through time, and trains with it online.

The functions below load scenarios and profiles and do what the command
line's commands do; their results are typed objects with ``to_dict()``,
``to_json()`` and, where a picture helps, ``plot()``. The packages
:mod:`fpttsim.device` (the simulated device's memory plan, arena, cost model
and clock) and :mod:`fpttsim.sweeps` (sweep files, executors, reports) are
part of the public API too.
"""

from fpttsim import device, sweeps
from fpttsim.api import (
    RunResult,
    budget,
    export_nir,
    fptt_methods,
    gradcheck,
    gradient_quality,
    recommend_precision,
    run,
    schema,
    sweep,
)
from fpttsim.budget import BudgetResult
from fpttsim.config import Profile, Scenario, load_profile, load_scenario
from fpttsim.errors import (
    BudgetError,
    CheckFailed,
    ConfigError,
    FpttsimError,
    NumericalError,
)
from fpttsim.gradcheck import GradcheckResult
from fpttsim.methods import MethodsResult
from fpttsim.mixed import Recommendation
from fpttsim.nir_export import NirExport
from fpttsim.study import StudyResult

__all__ = [
    "BudgetError",
    "BudgetResult",
    "CheckFailed",
    "ConfigError",
    "FpttsimError",
    "GradcheckResult",
    "MethodsResult",
    "NirExport",
    "NumericalError",
    "Profile",
    "Recommendation",
    "RunResult",
    "Scenario",
    "StudyResult",
    "budget",
    "device",
    "export_nir",
    "fptt_methods",
    "gradcheck",
    "gradient_quality",
    "load_profile",
    "load_scenario",
    "recommend_precision",
    "run",
    "schema",
    "sweep",
    "sweeps",
]

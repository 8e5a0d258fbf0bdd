"""What every command builds from a scenario: task, network, initial weights.

Random draws are separated by purpose, each from its own stream derived from
the scenario's seed, so that changing one (say, more held-out windows) leaves
the others as they were:

    task.stream(seed)            training windows
    default_rng([seed, 0])       initial parameters
    default_rng([seed, 1])       held-out windows
    default_rng([seed, 2])       finite-difference directions
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fpttsim.data import Task, make_task
from fpttsim.network import Network

PARAMETERS, HELD_OUT, DIRECTIONS = 0, 1, 2


def rng_for(scenario, purpose: int) -> np.random.Generator:
    """The scenario's random stream for one purpose (see the module notes)."""
    return np.random.default_rng([scenario.seed, purpose])


@dataclass(frozen=True)
class Experiment:
    """A scenario's task, network and initial parameters."""

    task: Task
    net: Network
    theta: np.ndarray


def prepare(scenario) -> Experiment:
    """Build the task, the network and its initial parameters."""
    task = make_task(scenario.task)
    net = Network.from_config(scenario.model, task)
    model = scenario.model
    theta = net.initialise(
        rng_for(scenario, PARAMETERS), model.r_min, model.r_max, model.max_phase
    )
    return Experiment(task, net, theta)

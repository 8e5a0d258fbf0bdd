"""Segmented FPTT's trade-off: learner memory against gradient quality, as K varies.

For one LRU layer of 32 units on the copy task at T = 1000 with
``r_min = 0.9`` (where plain FPTT loses its gradient in fp32), prints for
K = 1, 2, 4, 8, 16, 32 segments (and 1 and 2 refinement passes on plain
FPTT): the learner's working memory on the profile (the budget's bytes) and
the gradient cosine with exact BPTT, median and worst over seeds, with only the
profile's error and Jacobian-product formats (FPTT's own loss) and in the
whole profile. BPTT's memory and cosine are the reference line.

    python benchmarks/segments.py [--profiles P,...] [--seeds N]
"""

from __future__ import annotations

import argparse

import numpy as np

from fpttsim.budget import budget
from fpttsim.config import load_profile, load_scenario
from fpttsim.config.scenario import FpttConfig
from fpttsim.experiment import prepare
from fpttsim.precision import compare, on_device, windows_at, zero_if_nan

METHODS = [
    ("plain", FpttConfig()),
    ("refine 1", FpttConfig(refine=1)),
    ("refine 2", FpttConfig(refine=2)),
    *((f"K = {k}", FpttConfig(segments=k)) for k in (2, 4, 8, 16, 32)),
]
OVERRIDES = {"task.length": 1000, "model.r_min": 0.9}


def learner_bytes(profile: str, method: FpttConfig | None) -> int:
    """Working bytes of the learner (FPTT with ``method``, or BPTT for None)."""
    overrides = {**OVERRIDES, "profile": profile}
    if method is None:
        result = budget(load_scenario("quickstart", overrides), simulate=False)
        return result.algorithms["bptt"].working_bytes
    overrides["learning.fptt.segments"] = method.segments
    overrides["learning.fptt.refine"] = method.refine
    result = budget(load_scenario("quickstart", overrides), simulate=False)
    return result.algorithms["fptt"].working_bytes


def main() -> None:
    """Print one table per profile."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profiles", default="cortex-m4f,bf16-systolic")
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args()
    for name in args.profiles.split(","):
        profile = load_profile(name)
        rows = {label: ([], []) for label, _ in METHODS}
        rows["bptt"] = ([], [])
        for seed in range(args.seeds):
            scenario = load_scenario("quickstart", {**OVERRIDES, "seed": seed})
            experiment = prepare(scenario)
            net = experiment.net
            arith, own, theta = on_device(net, experiment.theta, profile, seed)
            raw = windows_at(scenario, 1000, 1)[0]
            for label, method in METHODS:
                found = compare(net, theta, raw, arith, own, method)
                rows[label][0].append(zero_if_nan(found.own))
                rows[label][1].append(zero_if_nan(found.whole))
            rows["bptt"][0].append(1.0)
            rows["bptt"][1].append(zero_if_nan(found.bptt))
        print(
            f"\n{name}, T = 1000, r_min = 0.9: cosine median (worst) of "
            f"{args.seeds} seeds"
        )
        print("| method | working bytes | own formats | whole profile |")
        print("|---|---:|---:|---:|")
        for label, method in [*METHODS, ("bptt", None)]:
            cells = [f"{np.median(v):.4f} ({np.min(v):.4f})" for v in rows[label]]
            print(
                f"| {label} | {learner_bytes(name, method):,} | {cells[0]} | "
                f"{cells[1]} |",
                flush=True,
            )


if __name__ == "__main__":
    main()

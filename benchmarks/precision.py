"""How well the precision budget predicts FPTT's longest window, measured.

For each shipped gradient-check scenario and each profile, runs the budget's
prediction and its check by simulation, and prints a Markdown table:
predicted and measured longest window at which FPTT's own gradient keeps a
cosine of 0.99 with exact BPTT, their ratio, and the budget's note where
they differ by more than a factor of 2.

    python benchmarks/precision.py [--profiles P,...] [--scenarios S,...]
"""

from __future__ import annotations

import argparse
import time

from fpttsim.config import load_profile, load_scenario
from fpttsim.precision import check, predict

SCENARIOS = (
    "gradcheck-lru",
    "gradcheck-diagonal",
    "gradcheck-rnn",
    "gradcheck-gru",
    "gradcheck-deep-lru",
    "quickstart",
)
PROFILES = ("cortex-m4f", "bf16-systolic", "fp16-edge-npu", "loihi2", "fp8-h100")


def main() -> None:
    """Print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenarios", default=",".join(SCENARIOS))
    parser.add_argument("--profiles", default=",".join(PROFILES))
    args = parser.parse_args()
    print("| scenario | profile | predicted | measured | ratio | note |")
    print("|---|---|---:|---:|---:|---|")
    agree = total = 0
    start = time.perf_counter()
    for name in args.scenarios.split(","):
        for profile_name in args.profiles.split(","):
            scenario = load_scenario(name, {"profile": profile_name})
            profile = load_profile(profile_name)
            prediction = predict(scenario, profile)
            result = check(scenario, profile, prediction, windows=1)
            measured = result.measured_max_length
            ratio = result.ratio
            total += 1
            agree += result.agrees
            print(
                f"| {name} | {profile_name} | {prediction.max_length:.0f} | "
                f"{'> %d' % result.max_length if measured is None else measured} | "
                f"{'' if ratio is None else f'{ratio:.2f}'} | {result.note} |",
                flush=True,
            )
    print(
        f"\nwithin a factor of 2: {agree} of {total} "
        f"({time.perf_counter() - start:.0f} s)"
    )


if __name__ == "__main__":
    main()

"""Values per second of fpttsim's quantize against ml_dtypes' casts.

Run with the project's interpreter::

    .venv/bin/python benchmarks/quantize.py [--sizes 1000000 10000000]

For each format and size it times, on the same standard-normal float64
array, the best of several repeats of:

- ``quantize(x, fmt)``: float64 in, float64 out, rounded;
- ``x.astype(dtype)``: ml_dtypes' (or numpy's, for fp16) one-way cast to the
  narrow type, which writes fewer bytes than quantize does;
- ``x.astype(dtype).astype(float64)``: the cast and back, which produces
  what quantize produces.

pychop is timed too when it can be imported. The table goes to stdout.
"""

from __future__ import annotations

import argparse
import time

import ml_dtypes
import numpy as np

from fpttsim.numerics import quantize

DTYPES = {
    "bf16": ml_dtypes.bfloat16,
    "fp16": np.float16,
    "fp8-e4m3": ml_dtypes.float8_e4m3fn,
    "fp8-e5m2": ml_dtypes.float8_e5m2,
}
# pychop's parameters (exponent bits, significand bits including the hidden one)
PYCHOP = {"bf16": (8, 8), "fp16": (5, 11), "fp8-e4m3": (4, 4), "fp8-e5m2": (5, 3)}


def best_time(fn, repeats: int) -> float:
    """The shortest of ``repeats`` wall-clock timings of ``fn()``, seconds."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def pychop_chopper(name: str):
    """A function rounding with pychop, or the reason there is none."""
    try:
        import pychop
    except ImportError:
        return None, (
            "pychop skipped: not installed. Its wheel requires numpy>=2 (with "
            "pandas, dask and scikit-learn), and this project pins numpy<2 for "
            "lava-nc, so it cannot share this environment."
        )
    exp_bits, sig_bits = PYCHOP[name]
    chop = pychop.LightChop(exp_bits=exp_bits, sig_bits=sig_bits, rmode=1)
    return chop, ""


def main() -> None:
    """Time every format and size, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10**6, 10**7])
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    header = (
        f"{'format':<10} {'n':>9} {'quantize':>10} {'astype':>10} "
        f"{'roundtrip':>10} {'q/astype':>9} {'q/rtrip':>8} {'pychop':>10}"
    )
    print("values per second (millions); ratios are time(quantize) / time(other)")
    print(header)
    print("-" * len(header))
    notes = set()
    for name, dtype in DTYPES.items():
        quantize(np.ones(8), name)  # compile (or load the cache) before timing
        for n in args.sizes:
            x = rng.standard_normal(n)
            t_q = best_time(lambda x=x, name=name: quantize(x, name), args.repeats)
            t_a = best_time(lambda x=x, d=dtype: x.astype(d), args.repeats)
            t_r = best_time(
                lambda x=x, d=dtype: x.astype(d).astype(np.float64), args.repeats
            )
            chop, note = pychop_chopper(name)
            if chop is None:
                notes.add(note)
                pychop_rate = "-"
            else:
                t_p = best_time(lambda x=x, c=chop: c(x), args.repeats)
                pychop_rate = f"{n / t_p / 1e6:.1f}"
            print(
                f"{name:<10} {n:>9} {n / t_q / 1e6:>10.1f} {n / t_a / 1e6:>10.1f} "
                f"{n / t_r / 1e6:>10.1f} {t_q / t_a:>9.2f} {t_q / t_r:>8.2f} "
                f"{pychop_rate:>10}"
            )
    for note in sorted(notes):
        print(note)


if __name__ == "__main__":
    main()

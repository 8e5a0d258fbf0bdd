"""The ``fpttsim`` command line: parsing, progress on stderr, exit codes.

Exit codes: 0 success; 1 the simulation ran but a check failed (or met a
numerical dead end); 2 bad input, with a message naming the file, the line
and the key.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import sys
from datetime import datetime
from pathlib import Path

from fpttsim import api, report
from fpttsim import methods as methods_module
from fpttsim import study as study_module
from fpttsim.config import (
    find_shipped,
    load_profile,
    shipped_profiles,
    shipped_scenarios,
)
from fpttsim.config.schema import KINDS
from fpttsim.errors import CheckFailed, ConfigError, NumericalError
from fpttsim.nir_export import check_time_step
from fpttsim.progress import Progress

EXIT_OK, EXIT_CHECK_FAILED, EXIT_BAD_INPUT = 0, 1, 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fpttsim",
        description="Simulate on-device streaming learning with forward "
        "propagation of errors through time (FPTT).",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def scenario_command(
        name: str, help_text: str, optional: bool = False, profile: bool = True
    ) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_text, description=help_text)
        sub.add_argument(
            "scenario",
            metavar="SCENARIO",
            nargs="?" if optional else None,
            help="path or shipped name",
        )
        if profile:
            sub.add_argument(
                "--profile", metavar="P", help="hardware profile (path or name)"
            )
        _set_option(sub)
        sub.add_argument(
            "--json", action="store_true", help="print one JSON document on stdout"
        )
        return sub

    run = scenario_command(
        "run", "simulate the device learning a scenario online", optional=True
    )
    run.add_argument(
        "--out", metavar="DIR", help="output folder (default runs/<name>-<timestamp>)"
    )
    run.add_argument(
        "--resume",
        metavar="DIR",
        help="continue the interrupted run in DIR from its last checkpoint "
        "(SCENARIO may then be left out)",
    )
    scenario_command("gradcheck", "check every algorithm's gradient against BPTT")
    budget = scenario_command(
        "budget",
        "memory, cost and precision budgets of a scenario on a device, before training",
    )
    budget.add_argument(
        "--threshold",
        type=float,
        default=0.99,
        metavar="C",
        help="gradient cosine FPTT must keep with the exact gradient (0.99)",
    )
    budget.add_argument(
        "--no-check",
        action="store_true",
        help="predict only: do not simulate lengths around the prediction",
    )
    budget.add_argument(
        "--max-length",
        type=int,
        default=20000,
        metavar="T",
        help="longest window the check simulates (20000)",
    )
    budget.add_argument(
        "--plot", metavar="DIR", help="write memory and precision figures into DIR"
    )

    recommend = scenario_command(
        "recommend",
        "the fewest extra bits on FPTT's errors and Jacobian product that reach "
        "a gradient cosine, and what they cost",
    )
    recommend.epilog = (
        "The errors (delta) and the Jacobian product (P) are widened by the same "
        "number of fraction bits, every other quantity staying in the device's "
        "format; the precision budget suggests where to start, simulation "
        "decides. Exit status: 0 when a width reaches the target, 1 when none "
        "does, 2 on bad input."
    )
    recommend.add_argument(
        "--target",
        type=float,
        default=0.99,
        metavar="C",
        help="gradient cosine to reach, in (0, 1) (0.99)",
    )
    recommend.add_argument(
        "--against",
        choices=("exact", "bptt"),
        default="exact",
        help="cosine with exact float64 BPTT, or with BPTT in the device's own "
        "arithmetic (exact)",
    )
    recommend.add_argument(
        "--windows",
        type=int,
        default=2,
        metavar="N",
        help="windows simulated per candidate, their median counts (2)",
    )

    export = scenario_command(
        "export-nir",
        "write a real-diagonal network's recurrent core as a NIR graph",
        profile=False,
    )
    export.epilog = (
        "The first layer's input projection diag(gamma) B, its leaky "
        "integrators and its cell output C h + D u are exported; each decay "
        "lam becomes NIR's tau = -dt / ln(lam) and r = 1 / (1 - lam), exact "
        "for inputs held over each step of dt. The layer normalisation, the "
        "GELU MLP, the layers above and the readout have no NIR form and are "
        "listed as left out. Only model.cell: diagonal maps."
    )
    export.add_argument(
        "--out", metavar="FILE", required=True, help="the NIR file to write (HDF5)"
    )
    export.add_argument(
        "--weights",
        metavar="RUN_DIR",
        help="a run's folder (or its parameters.npz) from `fpttsim run --out`; "
        "default: the scenario's initial weights",
    )
    export.add_argument(
        "--dt",
        type=float,
        metavar="SECONDS",
        help="time step (default 1 / device.rate_hz, the stream's sample period)",
    )

    study = commands.add_parser("study", help="run a study over a grid of runs")
    studies = study.add_subparsers(dest="study", required=True, metavar="STUDY")
    quality = studies.add_parser(
        "gradient-quality",
        help="FPTT's gradient cosine over r_min x T x profile",
        description="FPTT's gradient cosine with exact BPTT over a grid of the "
        "smallest eigenvalue modulus r_min, the window length T and the "
        "profile, with the median and spread over seeds; checks the precision "
        "budget's prediction at every point.",
    )
    _grid_arguments(quality, study_module)
    quality.add_argument(
        "--threshold", type=float, default=0.99, metavar="C", help="cosine (0.99)"
    )

    methods = studies.add_parser(
        "fptt-methods",
        help="refined, segmented and mixed-precision FPTT against plain, at equal bits",
        description="Each method's gradient cosine with exact BPTT and with "
        "BPTT at equal bits, its end residual, error passes and learner "
        "memory, over r_min x T x profile (median over seeds); BPTT is a "
        "point of its own. Methods: plain, segments:K, refine:K, neumann:M, "
        "wide (errors and Jacobian product one float width up), wide:FORMAT, "
        "joined by + (segments:8+wide).",
    )
    _grid_arguments(methods, methods_module)
    methods.add_argument(
        "--methods",
        metavar="M,M,...",
        help=f"methods ({','.join(methods_module.DEFAULT_METHODS)})",
    )

    sweep = commands.add_parser(
        "sweep",
        help="run every run of a sweep file, resumably, locally or on Dask",
        description="Run a sweep: a base scenario over axes of its keys. "
        "Finished runs are kept in DIR/runs/<key>/ and listed in "
        "DIR/results.jsonl; rerunning skips them.",
    )
    sweep.add_argument("sweep", metavar="SWEEP", help="the sweep file (YAML)")
    sweep.add_argument("--out", metavar="DIR", required=True, help="sweep folder")
    where = sweep.add_mutually_exclusive_group()
    where.add_argument(
        "--scheduler", metavar="ADDRESS", help="a Dask scheduler, tcp://HOST:PORT"
    )
    where.add_argument(
        "--dask", action="store_true", help="start a local Dask cluster of N workers"
    )
    sweep.add_argument(
        "--workers", type=int, metavar="N", help="worker processes (default: cores)"
    )
    sweep.add_argument(
        "--dry-run",
        action="store_true",
        help="list the runs and their memory budget verdicts; run nothing",
    )
    sweep.add_argument(
        "--retry-failed", action="store_true", help="run failed runs again"
    )
    sweep.add_argument(
        "--report", action="store_true", help="write the report when done"
    )
    report_cmd = commands.add_parser(
        "sweep-report", help="tabulate and plot a sweep's results"
    )
    report_cmd.add_argument("out", metavar="DIR", help="the sweep folder")
    report_cmd.add_argument("--metric", metavar="M", help="metric to plot")
    report_cmd.add_argument("--x", metavar="AXIS", help="axis along x")
    report_cmd.add_argument("--lines", metavar="AXIS", help="axis drawn as lines")
    report_cmd.add_argument(
        "--panels", metavar="AXIS", help="axis drawn as separate panels"
    )

    schema = commands.add_parser(
        "schema",
        help="print the JSON Schema of scenario, profile or sweep files, for editors",
    )
    schema.add_argument("kind", choices=list(KINDS), metavar="KIND")

    profiles = commands.add_parser("profiles", help="list or show hardware profiles")
    profiles.add_argument("name", nargs="?", metavar="NAME")
    profiles.add_argument(
        "--json", action="store_true", help="print the profiles as JSON on stdout"
    )
    commands.add_parser("scenarios", help="list the shipped scenarios")
    return parser


def _grid_arguments(parser: argparse.ArgumentParser, module) -> None:
    """A study's options: the base scenario, its grid, workers and outputs."""

    def listed(values) -> str:
        return ",".join(f"{v:g}" if isinstance(v, float) else str(v) for v in values)

    parser.add_argument(
        "scenario",
        metavar="SCENARIO",
        nargs="?",
        default="quickstart",
        help="base scenario: its cell, sizes and task (default quickstart)",
    )
    parser.add_argument("--out", metavar="DIR", required=True, help="output folder")
    _set_option(parser)
    parser.add_argument(
        "--r-min",
        metavar="R,R,...",
        help=f"r_min values ({listed(module.DEFAULT_R_MIN)})",
    )
    parser.add_argument(
        "--lengths",
        metavar="T,T,...",
        help=f"lengths ({listed(module.DEFAULT_LENGTHS)})",
    )
    parser.add_argument(
        "--profiles",
        metavar="P,P,...",
        help="profiles, or number formats for every quantity "
        f"({listed(module.DEFAULT_PROFILES)})",
    )
    parser.add_argument(
        "--seeds",
        type=int,
        default=module.DEFAULT_SEEDS,
        help=f"seeds per point ({module.DEFAULT_SEEDS})",
    )
    parser.add_argument(
        "--workers", type=int, metavar="N", help="processes (default: the cores)"
    )
    parser.add_argument(
        "--json", action="store_true", help="print the summary as JSON on stdout"
    )


def _grid_options(args: argparse.Namespace, module) -> dict:
    """The keyword arguments of a study's grid from its options."""
    if args.workers is not None and args.workers < 1:
        raise ConfigError(f"expected N >= 1, got {args.workers}", key="--workers")
    return {
        "r_min": _listed(args.r_min, float, "--r-min", module.DEFAULT_R_MIN),
        "lengths": _listed(args.lengths, int, "--lengths", module.DEFAULT_LENGTHS),
        "profiles": _listed(args.profiles, str, "--profiles", module.DEFAULT_PROFILES),
        "seeds": args.seeds,
        "workers": args.workers,
        "out": args.out,
    }


def _set_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a scenario key, e.g. --set model.hidden=16 (repeatable)",
    )


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="fpttsim: %(message)s")
    try:
        code = _COMMANDS[args.command](args)
        sys.stdout.flush()  # a closed pipe shows here, not at interpreter exit
        return code
    except BrokenPipeError:
        # The reader went away (`fpttsim scenarios | head -1`): stop quietly,
        # with the status a shell gives a process killed by SIGPIPE.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 128 + 13
    except ConfigError as exc:
        print(f"fpttsim: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except (NumericalError, CheckFailed) as exc:
        print(f"fpttsim: {exc}", file=sys.stderr)
        return EXIT_CHECK_FAILED
    except KeyboardInterrupt:
        print("fpttsim: interrupted", file=sys.stderr)
        return 130


def _overrides(args: argparse.Namespace) -> list[str]:
    """The ``--set`` overrides, with ``--profile`` checked and added last."""
    if not args.profile:
        return list(args.overrides)
    try:
        load_profile(args.profile)
    except ConfigError as exc:
        if Path(args.profile).is_file():
            raise  # the profile file exists but is invalid: it names itself
        raise ConfigError(exc.message, file="--profile") from exc
    # a path on the command line is relative to the working directory, not
    # to the scenario's folder as a path written in the scenario is
    path = Path(args.profile)
    profile = str(path.resolve()) if path.is_file() else args.profile
    return [*args.overrides, f"profile={profile}"]


def _run(args: argparse.Namespace) -> int:
    if args.resume:
        if args.out and Path(args.out) != Path(args.resume):
            raise ConfigError(
                f"--out {args.out} differs from --resume {args.resume}: a resumed "
                "run writes into its own folder",
                key="--out",
            )
        scenario = None
        if args.scenario is not None or args.overrides or args.profile:
            scenario = api.load_scenario(args.scenario, _overrides(args))
        out = Path(args.resume)
        steps, label, length = _resumed_sizes(out, scenario)
    else:
        if args.scenario is None:
            raise ConfigError(
                "expected a scenario (a path or a shipped name), or --resume DIR",
                key="SCENARIO",
            )
        scenario = api.load_scenario(args.scenario, _overrides(args))
        out = Path(args.out or f"runs/{scenario.name}-{_timestamp()}")
        steps, label = scenario.training.steps, scenario.name
        length = scenario.task.length
    # Opened at the first step, so that input errors found before training
    # are the first thing on stderr.
    progress: list[Progress] = []

    def on_step(step: int, row: dict) -> None:
        if not progress:
            progress.append(Progress(steps, label=label))
        progress[0].update(step, **_shown(row, length))

    try:
        result = api.run(scenario, out, on_step=on_step, resume=bool(args.resume))
    finally:
        if progress:
            progress[0].close()
    if args.json:
        print(result.to_json())
    else:
        print(_run_summary(result))
    if result.training.stopped:
        print(f"fpttsim: {result.training.stopped}", file=sys.stderr)
        return EXIT_CHECK_FAILED
    return EXIT_OK


def _resumed_sizes(out: Path, scenario) -> tuple[int, str, int]:
    """Steps, name and window length of the run a checkpoint belongs to."""
    from fpttsim.device.loop import read_checkpoint

    saved, _, _ = read_checkpoint(out)
    chosen = scenario or saved
    return chosen.training.steps, chosen.name, chosen.task.length


def _shown(row: dict, length: int) -> dict:
    shown = {k: row[k] for k in ("window", "loss", "accuracy") if k in row}
    if row.get("seconds"):
        shown["samples/s"] = row["window"] * length / row["seconds"]
    return shown


def _timestamp() -> str:
    return datetime.now().strftime("%Y%m%d-%H%M%S")


def _run_summary(result: api.RunResult) -> str:
    sc = result.scenario
    tr = result.training
    model, task = sc.model, sc.task
    lines = [
        f"{sc.name}: {model.layers} x {model.cell} ({model.hidden} units), "
        f"{task.kind} task T={task.length}, {sc.learning.algorithm}, "
        f"{sc.training.steps} steps in {tr.seconds:.1f} s",
        f"  held-out loss      {tr.initial['loss']:.4g} -> {tr.final['loss']:.4g}",
    ]
    if "accuracy" in tr.final:
        lines.append(
            f"  held-out accuracy  {tr.initial['accuracy']:.1%} -> "
            f"{tr.final['accuracy']:.1%}"
        )
    memory, device = tr.memory, tr.device
    arena = memory["arena"]["working"]
    lines.append(
        f"  memory             {_size(memory['total_bytes'])} in all; working peak "
        f"{_size(arena['peak_bytes'])} of {_bytes(arena['capacity_bytes'])} "
        f"({result.profile.name})"
    )
    timeline = device["timeline"]
    verdict = "keeps up" if timeline["keeps_up"] else "does NOT keep up"
    lines.append(
        f"  device             {verdict} at {device['rate_hz']:g} Hz: duty "
        f"{timeline['duty_cycle']:.2%}, {timeline['windows_learned']} of "
        f"{timeline['windows']} windows learnt, "
        f"{device['energy_per_sample_joules'] * 1e6:.3g} uJ per sample"
    )
    events = {k: v for k, v in tr.numerical_events.items() if v}
    lines.append(
        "  numerical events   "
        + (", ".join(f"{k} {v}" for k, v in events.items()) if events else "none")
    )
    lines.append(
        f"  rounding events    {_events_line(tr.arithmetic_events['learning'])}"
    )
    if tr.stopped:
        lines.append(f"  stopped after      {tr.steps_done} steps")
    lines.append(f"  outputs            {result.out}/")
    return "\n".join(lines)


def _events_line(events: dict) -> str:
    """``state: saturated 3; error: flushed_to_zero 12`` or ``none``."""
    if not events:
        return "none"
    return "; ".join(
        f"{quantity}: " + ", ".join(f"{name} {n}" for name, n in counts.items())
        for quantity, counts in events.items()
    )


def _gradcheck(args: argparse.Namespace) -> int:
    result = api.gradcheck(args.scenario, _overrides(args))
    if args.json:
        print(json.dumps(report.jsonable(result.to_dict()), indent=2))
    else:
        print(_gradcheck_table(result))
    return EXIT_OK if result.passed else EXIT_CHECK_FAILED


def _gradcheck_table(result) -> str:
    lines = [
        f"{result.scenario} on {result.profile}: gradients against float64 BPTT "
        f"(loss {result.loss:.6g})",
        f"  {'algorithm':<10} {'cosine':>20} {'rel. error':>11} "
        f"{'residual':>10}  verdict",
    ]
    for name, check in result.algorithms.items():
        if check.passed is None:
            verdict = "measured" if check.exact else "approximate"
        else:
            verdict = "exact: ok" if check.passed else "exact: FAILED"
        if check.events:
            verdict += f"  ({_events_line(check.events)})"
        residual = "-" if check.residual is None else f"{check.residual:.1e}"
        lines.append(
            f"  {name:<10} {check.cosine:>20.16f} {check.rel_error:>11.2e} "
            f"{residual:>10}  {verdict}"
        )
    fd = result.finite_difference
    lines.append(
        f"  bptt vs central differences ({fd['directions']} directions, "
        f"eps {fd['epsilon']:g}): rel. error {fd['rel_error']:.2e}  "
        + ("ok" if fd["passed"] else "FAILED")
    )
    return "\n".join(lines)


def _check_threshold(value: float, key: str = "--threshold") -> None:
    if not 0.0 < value < 1.0:
        raise ConfigError(f"expected a cosine in (0, 1), got {value}", key=key)


def _budget(args: argparse.Namespace) -> int:
    _check_threshold(args.threshold)
    if args.max_length < 1:
        raise ConfigError(
            f"expected a length >= 1, got {args.max_length}", key="--max-length"
        )
    scenario = api.load_scenario(args.scenario, _overrides(args))
    result = api.budget(
        scenario,
        threshold=args.threshold,
        simulate=not args.no_check,
        max_length=args.max_length,
    )
    if args.plot:
        result.write_figures(args.plot)
    if args.json:
        print(json.dumps(report.jsonable(result.to_dict()), indent=2))
    else:
        print(_budget_tables(result))
    own = result.algorithms.get(scenario.learning.algorithm)
    return EXIT_OK if own is None or own.fits else EXIT_CHECK_FAILED


def _size(n: float) -> str:
    """Bytes in the largest binary unit, one decimal."""
    for unit, size in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if abs(n) >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n:.0f} B"


def _budget_tables(result) -> str:
    lines = [
        f"{result.scenario} on {result.profile}, T = {result.length}: working "
        f"memory {_size(result.working_memory_bytes)}, replay memory "
        f"{_size(result.replay_memory_bytes)}",
        "",
        f"  {'algorithm':<11}{'working':>12}{'replay':>12}{'max T':>15}"
        f"{'us/sample':>11}{'nJ/sample':>11}  verdict",
    ]
    for name, alg in result.algorithms.items():
        longest = alg.max_length_that_fits
        longest = "any" if longest is None else f"{longest:,}"
        per = alg.cost["per_sample"]
        margin = alg.margin_bytes["working"]
        verdict = (
            f"fits, {_size(margin)} to spare"
            if alg.fits
            else "does NOT fit: "
            + ", ".join(
                f"{m} {_size(-v)} over" for m, v in alg.margin_bytes.items() if v < 0
            )
        )
        if alg.note:
            verdict += f" ({alg.note})"
        lines.append(
            f"  {name:<11}{_size(alg.working_bytes):>12}"
            f"{_size(alg.replay_bytes):>12}{longest:>15}"
            f"{per['seconds'] * 1e6:>11.3g}{per['joules'] * 1e9:>11.3g}  {verdict}"
        )
    pred = result.prediction
    limit = pred.max_length
    limit_text = "no limit" if math.isinf(limit) else f"T <= {limit:,.0f}"
    lines += [
        "",
        f"  precision: FPTT keeps cosine >= {pred.threshold} "
        f"({pred.wanted_bits:.1f} bits) up to {limit_text} (predicted; cosine "
        f"{pred.cosine_at(pred.length):.4f} at T = {pred.length})",
    ]
    for i, layer in enumerate(pred.layers):
        sp = layer.spectrum
        lines.append(
            f"    layer {i + 1} ({sp.cell}): min |lambda| {sp.smallest_modulus:.4g}, "
            f"{sp.rate_bits:.3g} bits lost a step"
        )
    needs = []
    for quantity, bits in pred.required.items():
        parts = ", ".join(f"{v} {k.replace('_', ' ')}" for k, v in bits.items())
        needs.append(f"{quantity} {parts}")
    lines.append(f"    at T = {pred.length} the formats need: " + "; ".join(needs))
    chk = result.check
    if chk is not None:
        measured = chk.measured_max_length
        measured = f"beyond {chk.max_length:,}" if measured is None else f"{measured:,}"
        lines.append(
            f"    measured: FPTT keeps it up to T = {measured} (with the profile's "
            "error and P formats); "
            + ("agrees within 2x" if chk.agrees else f"DISAGREES: {chk.note}")
        )

        lines.append(
            "    "
            + "  ".join(f"T={m.length}: {m.cosine:.4f}" for m in chk.measured)
            + "   (cosine with exact BPTT, whole profile)"
        )
    return "\n".join(lines)


def _recommend(args: argparse.Namespace) -> int:
    _check_threshold(args.target, "--target")
    if args.windows < 1:
        raise ConfigError(f"expected N >= 1, got {args.windows}", key="--windows")
    scenario = api.load_scenario(args.scenario, _overrides(args))

    def on_trial(trial) -> None:
        formats = ", ".join(f"{q} {name}" for q, name in trial.formats.items())
        verdict = "meets" if trial.meets else "misses"
        print(
            f"fpttsim: k = +{trial.extra_bits} ({formats}): cosine "
            f"{trial.cosine:.6f}, {verdict} {args.target}",
            file=sys.stderr,
        )

    result = api.recommend_precision(
        scenario,
        target=args.target,
        against=args.against,
        windows=args.windows,
        on_trial=on_trial,
    )
    if args.json:
        print(result.to_json())
    else:
        print(result.to_text())
    return EXIT_OK if result.reached else EXIT_CHECK_FAILED


def _export(args: argparse.Namespace) -> int:
    dt = None if args.dt is None else check_time_step(args.dt, key="--dt")
    result = api.export_nir(
        args.scenario, args.out, overrides=args.overrides, weights=args.weights, dt=dt
    )
    print(result.to_json() if args.json else _export_summary(result))
    return EXIT_OK


def _export_summary(result) -> str:
    low, high = result.tau_range
    lines = [
        f"{result.scenario}: layer 1's recurrent core written to {result.path} "
        f"(NIR, weights {result.weights})",
        f"  time step      dt = {result.dt:g} s, {result.dt_source}; "
        f"tau from {low:.4g} s to {high:.4g} s",
    ]
    for node in result.nodes:
        sizes = f"{node['input_size']} -> {node['output_size']}"
        lines.append(f"  node           {node['name']:<11} {node['type']:<7} {sizes}")
    lines.append("  not exported")
    lines += [f"    {part['part']}: {part['reason']}" for part in result.left_out]
    return "\n".join(lines)


def _listed(text: str | None, convert, key: str, default):
    """A comma-separated option as a tuple, or ``default`` when not given."""
    if text is None:
        return default
    try:
        values = tuple(convert(v.strip()) for v in text.split(",") if v.strip())
    except ValueError as exc:
        raise ConfigError(f"expected a comma-separated list: {exc}", key=key) from exc
    if not values:
        raise ConfigError("expected at least one value", key=key)
    return values


def _study(args: argparse.Namespace) -> int:
    if args.study == "fptt-methods":
        listed = _listed(args.methods, str, "--methods", methods_module.DEFAULT_METHODS)
        grid = _grid_options(args, methods_module)
        result = api.fptt_methods(args.scenario, args.overrides, methods=listed, **grid)
        summary = _methods_summary
    else:
        _check_threshold(args.threshold)
        grid = _grid_options(args, study_module)
        result = api.gradient_quality(
            args.scenario, args.overrides, threshold=args.threshold, **grid
        )
        summary = _study_summary
    print(result.to_json() if args.json else summary(result, args.out))
    return EXIT_OK


def _methods_summary(result, out) -> str:
    length = max(result.lengths)
    lines = [
        f"{result.scenario}: FPTT's methods at T = {length}, median over "
        f"{result.seeds} seeds, {result.seconds:.0f} s; cosine with BPTT at equal "
        "bits (with exact BPTT)",
        f"  {'profile':<10}{'method':<20}{'memory B':>10}{'passes':>8}  "
        + "".join(f"{f'r_min {r:g}':>20}" for r in result.r_min),
    ]
    summary = {
        (e["profile"], e["method"], e["r_min"]): e
        for e in result.summary()
        if e["length"] == length
    }
    for profile in result.profiles:
        for method in result.methods:
            first = summary[profile, method, result.r_min[0]]
            passes = max(
                summary[profile, method, r]["error_passes"] for r in result.r_min
            )
            cells = "".join(
                f"{summary[profile, method, r]['cosine_bptt']:>11.4f} "
                f"({summary[profile, method, r]['cosine']:.4f})"
                for r in result.r_min
            )
            lines.append(
                f"  {profile:<10}{method:<20}{first['learner_bytes']:>10,}"
                f"{passes:>8.2g}  {cells}"
            )
    lines.append(f"  written to {out}: fptt_methods.csv, summary.csv, study.json,")
    lines.append("  fptt_methods.png, fptt_methods_pareto.png")
    return "\n".join(lines)


def _study_summary(result, out) -> str:
    lines = [
        f"{result.scenario}: FPTT's gradient cosine with exact BPTT (median over "
        f"{result.seeds} seeds), {result.seconds:.0f} s",
        f"  {'profile':<14}{'T':>6}  " + "".join(f"{r:>8g}" for r in result.r_min),
    ]
    summary = {(e["profile"], e["r_min"], e["length"]): e for e in result.summary()}
    for profile in result.profiles:
        for length in result.lengths:
            cells = "".join(
                f"{summary[profile, r, length]['cosine']:>8.4f}" for r in result.r_min
            )
            lines.append(f"  {profile:<14}{length:>6}  {cells}")
    disagreements = result.disagreements()
    lines.append(
        "  the precision budget's prediction agrees within 2x at every point"
        if not disagreements
        else f"  the prediction disagrees at {len(disagreements)} points:"
    )
    for d in disagreements:
        lines.append(
            f"    {d['profile']} r_min {d['r_min']:g} T {d['length']}: {d['why']}"
        )
    lines.append(f"  written to {out}: gradient_quality.csv, summary.csv, study.json,")
    lines.append("  gradient_quality.png, heatmaps.png")
    return "\n".join(lines)


def _sweep(args: argparse.Namespace) -> int:
    from fpttsim import sweeps

    if args.workers is not None and args.workers < 1:
        raise ConfigError(f"expected N >= 1, got {args.workers}", key="--workers")
    loaded = sweeps.load_sweep(args.sweep)
    if args.dry_run:
        print(_dry_run(loaded, Path(args.out)))
        return EXIT_OK
    try:
        outcome = api.sweep(
            loaded,
            args.out,
            workers=args.workers,
            scheduler=args.scheduler,
            dask=args.dask,
            retry_failed=args.retry_failed,
            progress=True,
        )
    except KeyboardInterrupt:
        done = len(sweeps.finished_runs(Path(args.out)))
        print(
            f"fpttsim: interrupted; {done} of {len(loaded.runs)} runs are kept in "
            f"{args.out}: run the same command to finish",
            file=sys.stderr,
        )
        return 130
    print(
        f"{loaded.spec.name}: {outcome.total} runs, {outcome.skipped} already done, "
        f"{outcome.done} run now ({outcome.failed} failed)"
        + ("; results.jsonl repaired from runs/" if outcome.repaired else "")
    )
    for summary in outcome.summaries.values():
        if summary.get("status") != "done":
            print(f"  failed {summary['key']} {summary['axes']}: {summary['error']}")
    if args.report:
        sweeps.sweep_report(args.out)
    return (
        EXIT_OK
        if not any(s.get("status") != "done" for s in outcome.summaries.values())
        else EXIT_CHECK_FAILED
    )


def _dry_run(loaded, out: Path) -> str:
    from fpttsim.sweeps import finished_runs

    finished = finished_runs(out)
    lines = [
        f"{loaded.spec.name}: {len(loaded.runs)} runs of `{loaded.spec.command}` "
        f"on {loaded.base}",
    ]
    for run in loaded.runs:
        scenario = api.load_scenario(loaded.base, run.overrides)
        result = api.budget(scenario, simulate=False)
        alg = result.algorithms[scenario.learning.algorithm]
        verdict = "fits" if alg.fits else "does NOT fit"
        state = "done" if run.key in finished else "to run"
        axes = ", ".join(f"{k}={v}" for k, v in run.axes.items())
        lines.append(
            f"  {run.key}  {state:<6}  {axes}  [{scenario.learning.algorithm} "
            f"{_size(alg.total_bytes)}, {verdict} {result.profile}]"
        )
    return "\n".join(lines)


def _sweep_report(args: argparse.Namespace) -> int:
    from fpttsim.sweeps import sweep_report

    for path in sweep_report(args.out, args.metric, args.x, args.lines, args.panels):
        print(path)
    return EXIT_OK


def _schema(args: argparse.Namespace) -> int:
    from fpttsim.config.schema import schema_text

    print(schema_text(args.kind), end="")
    return EXIT_OK


def _profiles(args: argparse.Namespace) -> int:
    if args.name is not None:
        profile = load_profile(args.name)
        path = find_shipped("hardware_profiles", args.name)
        if args.json:
            print(json.dumps(profile.to_json_dict(), indent=2))
        elif path is not None:
            print(path.read_text(), end="")
        else:
            print(json.dumps(profile.model_dump(mode="json"), indent=2))
        return EXIT_OK

    profiles = {name: load_profile(name) for name in shipped_profiles()}
    if args.json:
        listed = [profile.to_json_dict() for profile in profiles.values()]
        print(json.dumps(listed, indent=2))
        return EXIT_OK
    rows = [("name", "default", "working", "replay", "ops/s", "description")]
    for name, profile in profiles.items():
        memory = profile.memory
        replay = f"{_bytes(memory.replay_bytes)} {memory.replay_memory}"
        description = " ".join(profile.description.split())
        if len(description) > 48:
            description = description[:45] + "..."
        rows.append(
            (
                name,
                profile.arithmetic.default,
                _bytes(memory.working_bytes),
                replay,
                f"{profile.compute.ops_per_second:.3g}",
                description,
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
        print("  ".join([*cells, row[-1]]))
    return EXIT_OK


def _size(count: float) -> str:
    """``259377`` as ``253.3 KiB``."""
    for power, unit in ((30, "GiB"), (20, "MiB"), (10, "KiB")):
        if count >= 2**power:
            return f"{count / 2**power:.1f} {unit}"
    return f"{count:.0f} B"


def _bytes(count: int) -> str:
    """``196608`` as ``192 KiB``: the largest binary unit that divides it."""
    for power, unit in ((40, "TiB"), (30, "GiB"), (20, "MiB"), (10, "KiB")):
        if count >= 2**power and count % 2 ** (power - 10) == 0:
            return f"{count / 2**power:g} {unit}"
    return f"{count} B"


def _scenarios(args: argparse.Namespace) -> int:
    print("\n".join(shipped_scenarios()))
    return EXIT_OK


_COMMANDS = {
    "run": _run,
    "gradcheck": _gradcheck,
    "budget": _budget,
    "recommend": _recommend,
    "export-nir": _export,
    "study": _study,
    "schema": _schema,
    "sweep": _sweep,
    "sweep-report": _sweep_report,
    "profiles": _profiles,
    "scenarios": _scenarios,
}

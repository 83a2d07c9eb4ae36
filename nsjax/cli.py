"""Command line: ``nsjax sample`` (one ensemble), ``nsjax export-schedule`` (lists for diffusers)
and ``nsjax reproduce`` (the paper's study).

Run ``nsjax <command> --help`` for the options. Results are JSON a notebook can load.
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import sys
from collections.abc import Sequence

__all__ = ["main", "build_parser"]


# -- argument types: errors name the range --------------------------------------------------------
def positive_int(text: str) -> int:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, got {text!r}") from None
    if not value.is_integer() or value < 1:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, got {text!r}")
    return int(value)


def _float_in(low, high, *, low_open=True, high_open=True):
    lo_s, hi_s = ("(" if low_open else "["), (")" if high_open else "]")
    span = f"{lo_s}{'-inf' if low is None else low}, {'inf' if high is None else high}{hi_s}"

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be a number in {span}, got {text!r}") from None
        ok = math.isfinite(value)
        if low is not None:
            ok &= value > low if low_open else value >= low
        if high is not None:
            ok &= value < high if high_open else value <= high
        if not ok:
            raise argparse.ArgumentTypeError(f"must lie in {span}, got {text!r}")
        return value

    return parse


def schedule_name(text: str) -> str:
    """A preset name (``nsjax.registry.PRESETS``) or ``file:PATH``, a schedule file."""
    from .registry import PRESETS
    from .schedule_files import PREFIX, read_schedule

    if text.startswith(PREFIX):
        try:
            read_schedule(text)
        except ValueError as error:
            raise argparse.ArgumentTypeError(str(error)) from None
        return text
    if text not in PRESETS:
        raise argparse.ArgumentTypeError(
            f"must be one of {list(PRESETS)} or file:FILE.json (nsjax optimize), got {text!r}"
        )
    return text


probability = _float_in(0.0, 1.0)
positive_float = _float_in(0.0, None)
real = _float_in(None, None)


# -- nsjax sample ----------------------------------------------------------------------------------
def add_target_arguments(parser: argparse.ArgumentParser) -> None:
    """Target options shared by commands."""
    group = parser.add_argument_group("target")
    group.add_argument(
        "--target",
        choices=("gm", "cw"),
        default="gm",
        help="gm: two-mode Gaussian mixture; cw: Curie-Weiss spins (default gm)",
    )
    group.add_argument("--d", type=positive_int, default=10_000, help="dimension d >= 1 (default 1e4)")
    group.add_argument(
        "--p", type=probability, default=0.8, help="GM weight of the +r mode, in (0, 1) (default 0.8)"
    )
    group.add_argument(
        "--sigma2", type=positive_float, default=0.25, help="GM per-mode variance > 0 (default 1/4)"
    )
    group.add_argument(
        "--theta", type=positive_float, default=2.0, help="CW inverse temperature > 0 (default 2)"
    )
    group.add_argument(
        "--h",
        type=real,
        default=0.5 * math.log(4),
        help="CW field; default (1/2) ln 4 as in the paper's notebooks (P(M > 0) = 0.79 at theta = 2)",
    )
    group.add_argument(
        "--posterior",
        choices=("exact", "two-saddle"),
        default="exact",
        help="CW posterior: exact (Hubbard-Stratonovich) or the paper's two-saddle",
    )


def make_target(args):
    from .targets import CurieWeiss, GaussianMixture

    if args.target == "gm":
        return GaussianMixture(dim=args.d, p=args.p, sigma2=args.sigma2)
    if args.posterior == "two-saddle" and args.theta <= 1:
        raise argparse.ArgumentTypeError("--theta must be > 1 with --posterior two-saddle")
    return CurieWeiss(dim=args.d, theta=args.theta, h=args.h, posterior=args.posterior)


def add_sample_parser(sub) -> None:
    from .registry import PRESETS
    from .solvers import SOLVERS

    parser = sub.add_parser(
        "sample",
        help="sample one ensemble and print its features as JSON",
        description="Integrate the probability-flow ODE for an ensemble of particles and report "
        "the high-level and low-level features against their exact references.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    add_target_arguments(parser)
    group = parser.add_argument_group("sampler")
    group.add_argument(
        "--schedule",
        type=schedule_name,
        default="ve-dilated",
        metavar="{" + ",".join(PRESETS) + ",file:FILE.json}",
        help="interpolant noise + schedule (vp/ve: constant steps; *-dilated: "
        "the paper's; ddpm/vpsde/cosine/vesde/edm: standard, by SNR matching; file:FILE.json: "
        "a schedule learned by nsjax optimize, with its own noise)",
    )
    group.add_argument("--form", choices=("linear", "trig"), default="linear", help="interpolant")
    group.add_argument("--kappa", type=positive_float, default=3.0, help="dilation kappa > 0")
    group.add_argument(
        "--sigma-max", type=positive_float, default=None, help="sigma_max of vesde/edm (default 348/80)"
    )
    group.add_argument("--particles", type=positive_int, default=1000, help="ensemble size")
    group.add_argument(
        "--steps",
        type=positive_int,
        default=20,
        help="fixed steps N (ignored with an adaptive solver and --adaptive)",
    )
    group.add_argument(
        "--solver",
        choices=sorted(SOLVERS),
        default="euler",
        help="euler; fused fixed-step heun/midpoint/ralston/rk4; "
        "diffrax-<name>: diffrax's generic tableaus; bosh3/tsit5/dopri5 adaptive; "
        "exponential/multistep (fixed steps): ddim/dpm-solver-2/dpmpp-2m/dpmpp-3m/unipc/deis/ipndm",
    )
    group.add_argument(
        "--adaptive",
        action="store_true",
        help="adaptive steps with a PID controller (tsit5, dopri5, bosh3, heun)",
    )
    group.add_argument("--rtol", type=positive_float, default=1e-3, help="adaptive rtol")
    group.add_argument(
        "--max-steps",
        type=positive_int,
        default=100_000,
        help="cap on adaptive steps per schedule piece; a particle that runs out ends the run with "
        "exit status 3",
    )
    group.add_argument("--atol", type=positive_float, default=1e-6, help="adaptive atol")
    group.add_argument(
        "--engine",
        choices=("full", "reduced"),
        default="full",
        help="full d-dimensional particles, or the reduction (any d): exact for GM, "
        "asymptotically exact for CW (nsjax.cw_reduction)",
    )
    group.add_argument(
        "--chunk-size",
        type=positive_int,
        default=None,
        help="particles per vmapped chunk (default: from --memory-gb)",
    )
    group.add_argument(
        "--memory-gb", type=positive_float, default=2.0, help="working-memory budget that sets the chunk size"
    )
    group.add_argument(
        "--sharding",
        choices=("particles", "dim"),
        default=None,
        help="spread the run over every local device: one block of particles per device, or each "
        "particle's coordinates (default: one device)",
    )
    group.add_argument("--x64", action="store_true", help="float64 (default float32)")
    group.add_argument("--seed", type=int, default=0, help="PRNG seed")
    group.add_argument("--out", metavar="FILE.json", default=None, help="also write the JSON here")
    parser.set_defaults(func=run_sample)


def run_sample(args) -> dict:
    import jax

    if args.x64:
        jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp

    from .ensemble import sample
    from .features import estimate
    from .reduction import ReducedGM
    from .registry import preset
    from .solvers import make_solver

    if args.schedule == "vp-dilated" or args.schedule == "ve-dilated":
        if args.kappa >= math.sqrt(args.d):
            raise argparse.ArgumentTypeError(
                f"--kappa must lie in (0, sqrt(d)) = (0, {math.sqrt(args.d):.4g}), got {args.kappa}"
            )
    target = make_target(args)
    interpolant, schedule = preset(
        args.schedule, args.d, kappa=args.kappa, form=args.form, sigma_max=args.sigma_max
    )
    system = target
    if args.engine == "reduced":
        from .cw_reduction import ReducedCW

        system = ReducedGM(target) if args.target == "gm" else ReducedCW(target)
    result = sample(
        system,
        interpolant,
        schedule,
        jax.random.PRNGKey(args.seed),
        args.particles,
        steps=None if args.adaptive else args.steps,
        solver=make_solver(args.solver),
        rtol=args.rtol,
        atol=args.atol,
        chunk_size=args.chunk_size,
        memory_budget=int(args.memory_gb * 2**30),
        dtype=jnp.float64 if args.x64 else jnp.float32,
        sharding=args.sharding,
        max_steps=args.max_steps,
    )
    observed = system if args.engine == "reduced" and args.target == "cw" else target  # any-d reference
    features = estimate(observed, result.statistics)
    features["particles_used"] = features.pop("particles")  # finite ones; "particles": asked for
    report = {
        "target": args.target,
        "schedule": args.schedule,
        "schedule_file": args.schedule[5:] if args.schedule.startswith("file:") else None,
        "d": args.d,
        "particles": args.particles,
        "steps": None if args.adaptive else args.steps,
        "solver": args.solver,
        "engine": args.engine,
        "kappa": args.kappa,
        "nfe": float(result.nfe.mean()),
        "nfe_max": int(result.nfe.max()),
        "wall_seconds": result.wall_seconds,
        "chunk_size": result.chunk_size,
        "sharding": args.sharding,
        "num_devices": result.info.get("num_devices", 1),
        "dtype": "float64" if args.x64 else "float32",
        "seed": args.seed,
    }
    if args.target == "gm":
        report.update(p=args.p, sigma2=args.sigma2)
    else:
        report.update(theta=args.theta, h=args.h, posterior=args.posterior)
        features["spin_error"] = features["spin_error_hat"]
    report.update(features)
    return report


# -- nsjax export-schedule -------------------------------------------------------------------------
def add_export_parser(sub) -> None:
    from .registry import SCHEDULES

    parser = sub.add_parser(
        "export-schedule",
        help="print a schedule's N-step timesteps (VP) or sigmas (VE) for diffusers, as JSON",
        description="The N-step grid nsjax steps on, mapped by SNR matching to DDPM timesteps "
        "(--kind vp, for timesteps=) or sigmas (--kind ve, for sigmas=) of diffusers pipelines.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--format", choices=("diffusers",), default="diffusers", help="output format")
    parser.add_argument("--kind", choices=("vp", "ve"), required=True, help="noise: vp (c = 1) or ve (c = sqrt(d))")
    parser.add_argument("--d", type=positive_int, default=196_608, help="dimension d >= 1 (256x256x3)")
    parser.add_argument("--steps", type=positive_int, default=10, help="steps N")
    parser.add_argument("--schedule", default="vp-dilated", help=f"schedule name, one of {sorted(SCHEDULES)}")
    parser.add_argument("--kappa", type=positive_float, default=None, help="dilation kappa (default 3)")
    parser.add_argument(
        "--sigma-max", type=positive_float, default=348.0,
        help="VE: clip larger sigmas (inf at tau = 0) to the model's sigma_max (CelebA-HQ VE: 348)",
    )
    parser.add_argument("--out", metavar="FILE.json", default=None, help="also write the JSON here")
    parser.set_defaults(func=run_export)


def run_export(args) -> dict:
    from .export import to_diffusers
    from .interpolants import make_interpolant
    from .registry import make_schedule, noise_scale, resolve

    entry = resolve(args.schedule)
    c = noise_scale(args.kind, args.d)
    params = {"kappa": args.kappa} if "kappa" in entry.params else {}
    schedule = make_schedule(entry.name, args.d, noise_scale=c, **params)
    report = to_diffusers(schedule, make_interpolant("linear", c), args.steps, args.kind, sigma_max=args.sigma_max)
    return {"schedule": entry.name, "d": args.d, **report}


# -- entry point -----------------------------------------------------------------------------------
_EXTRA_COMMANDS = ("nsjax.reproduce", "nsjax.optimize")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="nsjax",
        description="Noise schedules of generative models in high dimensions (JAX). "
        "Aranguri, Biroli, Mezard, Vanden-Eijnden, arXiv:2501.00988.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add_sample_parser(sub)
    add_export_parser(sub)
    for module in _EXTRA_COMMANDS:
        try:
            importlib.import_module(module).add_parser(sub)
        except ModuleNotFoundError as error:
            if error.name != module:
                raise
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        report = args.func(args)
    except (argparse.ArgumentTypeError, ValueError) as error:
        parser.error(str(error))
    except FloatingPointError as error:
        print(f"nsjax: error: {error}", file=sys.stderr)
        return 3
    if report is not None:
        text = json.dumps(report, indent=2)
        print(text)
        out = getattr(args, "out", None)
        if out and not getattr(args, "out_is_folder", False):
            with open(out, "w") as handle:
                handle.write(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

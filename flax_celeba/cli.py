r"""``flax-celeba``: convert checkpoints, sample images, measure features, sweep step counts.

Examples (checkpoints downloaded beforehand; nothing is downloaded here)::

    flax-celeba convert ckpt/ddpm-celebahq-256 ckpt/ddpm-flax
    flax-celeba sample --model ckpt/ddpm-flax --method ancestral --steps 1000 \
        --num-images 16 --out out/ddpm
    flax-celeba sample --model ckpt/ddpm-flax --method ode:vp-dilated --steps 50 \
        --num-images 16 --out out/dvp
    flax-celeba features out/ddpm
    flax-celeba sweep --model ckpt/ncsnpp-flax --out out/sweep-ve
"""

from __future__ import annotations

import argparse
import csv
import importlib
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

__all__ = ["main", "build_parser"]

DEFAULT_STEPS = {"epsilon": (10, 20, 50, 100, 200, 500, 1000), "score": (333, 500, 667, 1000)}
DEFAULT_METHODS = {
    "epsilon": ("ancestral", "ode:constant", "ode:vp-dilated"),
    "score": ("pc", "ode:constant", "ode:ve-dilated"),
}


def _load_classifier(spec: str):
    """``module:attribute`` -> the classifier object (called with no argument if it is a class)."""
    module_name, _, attr = spec.partition(":")
    if not attr:
        raise ValueError(f"--classifier must be MODULE:ATTRIBUTE, got {spec!r}")
    obj = getattr(importlib.import_module(module_name), attr)
    return obj() if isinstance(obj, type) else obj


def _measure(folder: Path, args: argparse.Namespace) -> dict:
    from .features import (
        high_level_error,
        load_histogram,
        load_images,
        make_detector,
        no_face_percentage,
    )

    images = load_images(folder)
    result: dict = {"folder": str(folder), "num_images": int(len(images))}
    detector = make_detector(args.detector, args.detector_model)
    result["no_face_percent"] = no_face_percentage(images, detector)
    result["detector"] = args.detector
    if args.classifier:
        if not args.reference:
            raise ValueError("--classifier needs --reference HISTOGRAM.json (see `reference`)")
        classifier = _load_classifier(args.classifier)
        result["attribute_kl"] = high_level_error(
            images, classifier, load_histogram(args.reference)
        )
    return result


def _cmd_convert(args: argparse.Namespace) -> int:
    from .convert import convert

    out = convert(args.src, args.dst)
    print(f"wrote {out}")
    return 0


def _sample_kwargs(args: argparse.Namespace) -> dict:
    return dict(
        interpolant=args.interpolant,
        kappa=args.kappa,
        solver=args.solver,
        correct_steps=args.correct_steps,
        batch_size=args.batch_size,
        seed=args.seed,
    )


def _cmd_sample(args: argparse.Namespace) -> int:
    from .pipeline import generate, load_model, save_samples

    model = load_model(args.model, sigma_max=args.sigma_max)
    if args.method is None:  # the model's native sampler
        args.method = "ancestral" if model.parameterization == "epsilon" else "pc"
    start = time.perf_counter()
    images = generate(model, args.method, args.steps, args.num_images, **_sample_kwargs(args))
    meta = {
        "command": " ".join(sys.argv),
        "model": str(args.model),
        "method": args.method,
        "steps": args.steps,
        "num_images": args.num_images,
        "seed": args.seed,
        "seconds": time.perf_counter() - start,
    }
    out = save_samples(args.out, images, meta)
    print(f"wrote {out / 'grid.png'} and {out / 'samples.npz'}")
    return 0


def _cmd_features(args: argparse.Namespace) -> int:
    result = _measure(Path(args.folder), args)
    (Path(args.folder) / "features.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))
    return 0


def _cmd_reference(args: argparse.Namespace) -> int:
    from .features import attribute_histogram, load_images, save_histogram

    classifier = _load_classifier(args.classifier)
    labels = classifier(load_images(args.folder))
    histogram = attribute_histogram(labels, classifier.num_classes)
    counts = np.bincount(np.asarray(labels, np.int64), minlength=classifier.num_classes)
    save_histogram(args.out, histogram, args.classifier, counts=counts)
    print(f"wrote {args.out}: {histogram.round(4).tolist()} ({int(counts.sum())} images)")
    return 0


def _check_sweep(model, methods: Sequence[str], steps: Sequence[int]) -> None:
    """Every method and step count is valid for ``model`` before any image is drawn."""
    from .pipeline import make_schedule

    native = {"ancestral": "epsilon", "pc": "score"}
    for n in steps:
        if n < 1:
            raise ValueError(f"--steps: {n}, need step counts >= 1")
    for method in methods:
        if method in native:
            if model.parameterization != native[method]:
                raise ValueError(
                    f"--methods: {method!r} needs a {native[method]} model, this one is a "
                    f"{model.parameterization} model"
                )
        elif method.startswith("ode:"):
            make_schedule(method[4:], model, 1.0)  # ValueError naming the known schedules
        else:
            raise ValueError(f"--methods: unknown method {method!r} (ancestral, pc, ode:SCHEDULE)")


def _write_csv(path: Path, rows: list[dict]) -> None:
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=sorted({k for r in rows for k in r}))
        writer.writeheader()
        writer.writerows(rows)


def _cmd_sweep(args: argparse.Namespace) -> int:
    from .pipeline import generate, load_model, save_samples

    model = load_model(args.model, sigma_max=args.sigma_max)
    steps = args.steps or DEFAULT_STEPS[model.parameterization]
    methods = args.methods or DEFAULT_METHODS[model.parameterization]
    _check_sweep(model, methods, steps)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for method in methods:
        for n in steps:
            folder = out / f"{method.replace(':', '-')}_{n}"
            start = time.perf_counter()
            images = generate(model, method, n, args.num_images, **_sample_kwargs(args))
            seconds = time.perf_counter() - start
            save_samples(folder, images, {"method": method, "steps": n, "seconds": seconds})
            row = {"method": method, "steps": n, "seconds": round(seconds, 2)}
            row.update({k: v for k, v in _measure(folder, args).items() if k != "folder"})
            rows.append(row)
            _write_csv(out / "sweep.csv", rows)  # after every cell: a crash keeps what was done
            print(json.dumps(row))
    print(f"wrote {out / 'sweep.csv'}")
    return 0


def _fixed_step_solvers() -> tuple[str, ...]:
    from nsjax.solvers import SOLVERS

    return tuple(name for name in SOLVERS if name not in ("bosh3", "tsit5", "dopri5"))


_FIXED_STEP_SOLVERS = _fixed_step_solvers()


def _add_sampling(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, help="converted or diffusers model folder")
    p.add_argument("--num-images", type=int, default=16)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--interpolant",
        choices=("vp", "ve"),
        default=None,
        help="ODE noise scale: vp = 1, ve = sqrt(d) (default: by model kind)",
    )
    p.add_argument("--kappa", type=float, default=3.0, help="dilated schedules' kappa")
    p.add_argument(
        "--solver",
        default="euler",
        choices=_FIXED_STEP_SOLVERS,
        help="ODE solver: Runge-Kutta (euler, heun, rk4, ...) or exponential/multistep "
        "(ddim, dpm-solver-2, dpmpp-2m, dpmpp-3m, unipc, deis, ipndm)",
    )
    p.add_argument("--correct-steps", type=int, default=None, help="PC corrector steps")
    p.add_argument(
        "--sigma-max",
        type=float,
        default=None,
        help="VE sigma_max: 380 (diffusers config) or 348 (score_sde)",
    )


def _add_measuring(p: argparse.ArgumentParser) -> None:
    p.add_argument("--detector", default="haar", choices=("haar", "yunet", "mtcnn"))
    p.add_argument("--detector-model", default=None, help="ONNX file for --detector yunet")
    p.add_argument("--classifier", default=None, help="attribute classifier MODULE:ATTRIBUTE")
    p.add_argument("--reference", default=None, help="reference histogram JSON")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``flax-celeba``."""
    parser = argparse.ArgumentParser(prog="flax-celeba", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("convert", help="diffusers UNet folder -> flax_celeba folder")
    p.add_argument("src")
    p.add_argument("dst")
    p.set_defaults(func=_cmd_convert)

    p = sub.add_parser("sample", help="draw images; writes grid.png and samples.npz")
    _add_sampling(p)
    p.add_argument(
        "--method",
        default=None,
        help="ancestral | pc | ode:SCHEDULE (default: the model's native sampler)",
    )
    p.add_argument("--schedule", default=None, help="shorthand for --method ode:SCHEDULE")
    p.add_argument("--steps", type=int, required=True)
    p.add_argument("--out", required=True)
    p.set_defaults(func=_cmd_sample)

    p = sub.add_parser("features", help="no-face percentage (and attribute KL) of a folder")
    p.add_argument("folder")
    _add_measuring(p)
    p.set_defaults(func=_cmd_features)

    p = sub.add_parser("reference", help="attribute histogram of data images (for the KL)")
    p.add_argument("folder")
    p.add_argument("--classifier", required=True)
    p.add_argument("--out", required=True)
    p.set_defaults(func=_cmd_reference)

    p = sub.add_parser("sweep", help="features against the number of steps (the paper's study)")
    _add_sampling(p)
    _add_measuring(p)
    p.add_argument(
        "--steps", type=int, nargs="*", default=None, help="default: VP 10 .. 1000, VE 333 .. 1000"
    )
    p.add_argument("--methods", nargs="*", default=None)
    p.add_argument("--out", required=True)
    p.set_defaults(func=_cmd_sweep)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``flax-celeba`` console script."""
    args = build_parser().parse_args(argv)
    if args.command == "sample":
        if args.schedule and args.method:
            raise SystemExit("give --method or --schedule, not both")
        if args.schedule:
            args.method = f"ode:{args.schedule}"
    try:
        return args.func(args)
    except (FileNotFoundError, ValueError, ImportError, FloatingPointError) as err:
        print(f"flax-celeba {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())

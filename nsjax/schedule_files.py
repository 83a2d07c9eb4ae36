"""Schedule files: a learned schedule as JSON a notebook, the CLI and flax_celeba can load.

Format ``nsjax-schedule/1``::

    {"format": "nsjax-schedule/1", "family": "two-phase", "noise": "vp" | "ve",
     "log_kappa": float, "kappa": float, "split": float, "first": [a_1, ...], "second": [...],
     ...metadata (solver, steps, nfe, dims, target, objective, history, git_revision, created)}

``family: "two-phase"`` is :class:`nsjax.schedules.TwoPhase`; the file holds no ``d``: the same
parameters give the schedule at any dimension (``load_schedule(path, dim)``).
"""

from __future__ import annotations

import datetime
import json
import math
import os
import subprocess
from typing import Any

import jax.numpy as jnp

from .schedules import TwoPhase, Warp

__all__ = [
    "FORMAT",
    "PREFIX",
    "schedule_dict",
    "save_schedule",
    "read_schedule",
    "load_schedule",
    "git_revision",
]

FORMAT = "nsjax-schedule/1"
PREFIX = "file:"
"""Schedule names ``file:PATH`` (CLI ``--schedule``, :func:`nsjax.preset`) load a schedule file."""


def git_revision() -> str | None:
    """The repository's ``git`` commit (with ``-dirty``), or ``None`` outside a checkout."""
    here = os.path.dirname(os.path.abspath(__file__))
    try:
        out = subprocess.run(
            ["git", "describe", "--always", "--dirty", "--abbrev=40"],
            cwd=here,
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def schedule_dict(schedule: TwoPhase, **metadata: Any) -> dict[str, Any]:
    """The JSON-ready record of a :class:`TwoPhase` schedule (its dimension is not stored)."""
    if not isinstance(schedule, TwoPhase):
        raise TypeError(f"schedule must be a nsjax.schedules.TwoPhase, got {type(schedule).__name__}")
    log_kappa = float(schedule.log_kappa)
    record = {
        "format": FORMAT,
        "family": "two-phase",
        "noise": schedule.noise,
        "log_kappa": log_kappa,
        "kappa": math.exp(log_kappa),
        "split": schedule.split,
        "first": [float(v) for v in jnp.ravel(schedule.first.coefficients)],
        "second": [float(v) for v in jnp.ravel(schedule.second.coefficients)],
    }
    record.update(metadata)
    record.setdefault("git_revision", git_revision())
    record.setdefault("created", datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"))
    return record


def save_schedule(path: str, schedule: TwoPhase, **metadata: Any) -> dict[str, Any]:
    """Write :func:`schedule_dict` to ``path``; returns the record."""
    record = schedule_dict(schedule, **metadata)
    with open(path, "w") as handle:
        json.dump(record, handle, indent=2)
        handle.write("\n")
    return record


def read_schedule(path: str) -> dict[str, Any]:
    """The record of a schedule file, validated (clear errors naming the file and the field)."""
    if isinstance(path, str) and path.startswith(PREFIX):
        path = path[len(PREFIX) :]
    try:
        with open(path) as handle:
            record = json.load(handle)
    except FileNotFoundError:
        raise ValueError(f"schedule file {path!r} does not exist") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"schedule file {path!r} is not valid JSON: {error}") from None
    if not isinstance(record, dict) or record.get("format") != FORMAT:
        found = record.get("format") if isinstance(record, dict) else type(record).__name__
        raise ValueError(f"schedule file {path!r}: format must be {FORMAT!r}, got {found!r}")
    if record.get("family") != "two-phase":
        raise ValueError(f"schedule file {path!r}: family must be 'two-phase', got {record.get('family')!r}")
    for field, kind in (
        ("noise", str),
        ("log_kappa", (int, float)),
        ("split", (int, float)),
        ("first", list),
        ("second", list),
    ):
        if not isinstance(record.get(field), kind) or isinstance(record.get(field), bool):
            raise ValueError(f"schedule file {path!r}: field {field!r} is missing or has the wrong type")
    if not all(isinstance(v, (int, float)) and math.isfinite(v) for v in record["first"] + record["second"]):
        raise ValueError(f"schedule file {path!r}: warp coefficients must be finite numbers")
    if not math.isfinite(record["log_kappa"]):
        raise ValueError(f"schedule file {path!r}: log_kappa must be finite, got {record['log_kappa']}")
    return record


def load_schedule(path: str, dim: Any, *, dtype: Any = None) -> TwoPhase:
    """The schedule of file ``path`` (``file:`` prefix optional) at dimension ``dim``."""
    record = read_schedule(path)
    dtype = dtype or jnp.result_type(float)
    return TwoPhase(
        jnp.asarray(record["log_kappa"], dtype),
        dim,
        Warp(jnp.asarray(record["first"], dtype)),
        Warp(jnp.asarray(record["second"], dtype)),
        noise=record["noise"],
        split=float(record["split"]),
    )

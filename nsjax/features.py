"""Generic feature estimators: ensemble means of per-particle values, with standard errors
and errors against exact references (docs/theory.md §6).

Each target owns its observables (:class:`nsjax.targets.AbstractTarget`): ``statistics(x)``
gives per-particle scalars inside the sampler (so whole ensembles never need to be stored), and
``features(stats)`` turns them, on the host, into named :class:`Feature`\\ s: per-particle values
whose mean estimates the feature, and the exact finite-``d`` reference. :func:`estimate` only
averages: ``hat = mean_b values_b``, ``stderr = std_b(values_b) / sqrt(n)``, and the error
``|hat - ref|`` or ``|hat / ref - 1|`` (``relative``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, NamedTuple, Protocol

import numpy as np

__all__ = ["Feature", "Observable", "estimate", "finite_particles"]


class Feature(NamedTuple):
    """One feature of a target: ``hat = mean(values)`` estimates ``reference``.

    Attributes:
        values: per-particle values (``(n,)``; may be a subset of the particles, e.g. those
            assigned to one mode, for a conditional mean).
        reference: the exact finite-``d`` value.
        relative: the error is ``|hat / reference - 1|`` when true, ``|hat - reference|`` otherwise.
    """

    values: np.ndarray
    reference: float
    relative: bool


class Observable(Protocol):
    """Anything with features (every :class:`nsjax.targets.AbstractTarget`): this module
    imports no target, the targets import :class:`Feature` from here."""

    def features(self, stats: dict[str, np.ndarray]) -> dict[str, Feature]: ...


def _mean_and_stderr(values: np.ndarray) -> tuple[float, float]:
    n = values.size
    if n == 0:
        return float("nan"), float("nan")
    mean = float(values.mean())
    stderr = float(values.std(ddof=1) / math.sqrt(n)) if n > 1 else float("nan")
    return mean, stderr


def finite_particles(stats: dict[str, Any]) -> np.ndarray:
    """``(n,)`` mask of the particles whose every statistic is finite.

    Every statistic must have the particle axis first, the same ``n`` for all.
    """
    if not isinstance(stats, Mapping):
        raise TypeError(f"stats must be a dict {{name: array of shape (n, ...)}}, got {type(stats).__name__}")
    arrays = {name: np.asarray(value) for name, value in stats.items()}
    if not arrays:
        raise ValueError(
            "stats must hold at least one per-particle statistic (shape (n, ...)), got an empty dict"
        )
    for name, a in arrays.items():
        if not (np.issubdtype(a.dtype, np.number) or a.dtype == bool):
            raise TypeError(f"stats[{name!r}] must be a numeric array of shape (n, ...), got dtype {a.dtype}")
    sizes = {name: (a.shape[0] if a.ndim else None) for name, a in arrays.items()}
    n = next(iter(sizes.values()))
    if n is None or any(size != n for size in sizes.values()):
        raise ValueError(
            f"stats must be arrays of shape (n, ...) sharing one leading particle axis, got sizes {sizes}"
        )
    mask = np.ones(n, dtype=bool)
    for a in arrays.values():
        mask &= np.isfinite(a.reshape(n, -1)).all(axis=1)
    return mask


def estimate(
    target: Observable, stats: dict[str, Any], *, allow_empty: bool = False
) -> dict[str, float | int]:
    """Features of ``target`` from per-particle statistics: estimates, references, errors.

    A particle with any non-finite statistic is excluded from every feature (a NaN overlap is
    not a particle of the minus mode). Returns a flat dict: ``<f>_hat``, ``<f>_ref``,
    ``<f>_stderr`` and ``<f>_error`` for each feature ``f`` of ``target.features``, plus
    ``nonfinite`` (particles excluded) and ``particles`` (particles used).

    Raises:
        ValueError: when no particle has finite statistics, unless ``allow_empty`` (then every
            estimate and error is NaN, ``particles`` is 0: for tables that must keep the row).
    """
    if not callable(getattr(target, "features", None)):
        raise TypeError(f"target must be an nsjax target or any object with features(stats), got {target!r}")
    finite = finite_particles(stats)
    used = int(finite.sum())
    if used == 0 and not allow_empty:
        raise ValueError(
            f"stats must have >= 1 particle whose statistics are all finite, got {finite.size} "
            "particles and none finite (each has a non-finite statistic): no feature can be "
            "estimated (allow_empty=True keeps the row)"
        )
    kept = {name: np.asarray(value)[finite] for name, value in stats.items()}
    try:
        target_features = target.features(kept)
    except KeyError as missing:
        raise ValueError(
            f"stats must hold the statistics of {type(target).__name__}.statistics "
            f"(one of them is missing: {missing}), got keys {sorted(stats)}"
        ) from None
    out: dict[str, float | int] = {}
    for name, feature in target_features.items():
        hat, stderr = _mean_and_stderr(np.asarray(feature.values, dtype=np.float64))
        ref = feature.reference
        out[f"{name}_hat"], out[f"{name}_ref"], out[f"{name}_stderr"] = hat, ref, stderr
        out[f"{name}_error"] = abs(hat / ref - 1) if feature.relative else abs(hat - ref)
    out["nonfinite"] = int(finite.size - used)
    out["particles"] = used
    return out

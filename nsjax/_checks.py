"""Argument validation: every error names the parameter and the allowed range."""

from __future__ import annotations

from typing import Any

import jax


def _is_concrete(value: Any) -> bool:
    return not isinstance(value, jax.core.Tracer)


def check_dim(name: str, value: Any) -> int:
    """Return ``value`` as an int >= 1 or raise ``ValueError`` naming ``name``."""
    if isinstance(value, bool) or not float(value).is_integer():
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    if value < 1:
        raise ValueError(f"{name} must be >= 1, got {value!r}")
    return int(value)


def check_range(
    name: str,
    value: Any,
    low: float | None = None,
    high: float | None = None,
    *,
    low_open: bool = True,
    high_open: bool = True,
) -> Any:
    """Check ``low < value < high`` (open or closed ends) when ``value`` is concrete.

    Traced values (inside ``jit``/``vmap``) cannot be checked and pass through.
    """
    if not _is_concrete(value):
        return value
    try:
        import numpy as np

        arr = np.asarray(value, dtype=float)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number, got {value!r}") from None
    lo_s = "(" if low_open else "["
    hi_s = ")" if high_open else "]"
    span = f"{lo_s}{'-inf' if low is None else low}, {'inf' if high is None else high}{hi_s}"
    bad = ~np.isfinite(arr)
    if low is not None:
        bad |= (arr <= low) if low_open else (arr < low)
    if high is not None:
        bad |= (arr >= high) if high_open else (arr > high)
    if bad.any():
        raise ValueError(f"{name} must lie in {span}, got {value!r}")
    return value


def check_positive(name: str, value: Any) -> Any:
    """Check ``value > 0`` (finite)."""
    return check_range(name, value, 0.0, None)

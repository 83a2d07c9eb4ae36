"""Argument validation: every error names the parameter and the allowed range."""

from __future__ import annotations

from typing import Any

import jax


def _is_concrete(value: Any) -> bool:
    return not isinstance(value, jax.core.Tracer)


def _as_float(name: str, value: Any, allowed: str) -> float:
    """``float(value)`` for a real scalar, else ``TypeError`` naming ``name`` and ``allowed``."""
    import numpy as np

    if not _is_concrete(value):
        return float(value)  # JAX's own concretization error, as before
    if isinstance(value, (str, bytes, bool)) or value is None or np.ndim(value) != 0:
        raise TypeError(f"{name} must be {allowed}, got {value!r}")
    try:
        return float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be {allowed}, got {value!r}") from None


def check_dim(name: str, value: Any, low: int = 1) -> int:
    """Return ``value`` as an int >= ``low`` (default 1) or raise naming ``name``.

    ``TypeError`` for a non-number (string, ``None``, array, bool), ``ValueError`` for a
    non-integer, non-finite or too small number.
    """
    allowed = f"an integer >= {low}"
    number = _as_float(name, value, allowed)
    if not number.is_integer():
        raise ValueError(f"{name} must be {allowed}, got {value!r}")
    if number < low:
        raise ValueError(f"{name} must be {allowed}, got {value!r}")
    return int(number)


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
    import numpy as np

    lo_s = "(" if low_open else "["
    hi_s = ")" if high_open else "]"
    span = f"{lo_s}{'-inf' if low is None else low}, {'inf' if high is None else high}{hi_s}"
    if isinstance(value, (str, bytes)) or value is None:
        raise TypeError(f"{name} must be a number in {span}, got {value!r}")
    try:
        arr = np.asarray(value, dtype=float)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a number in {span}, got {value!r}") from None
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


def check_scalar(name: str, value: Any, span: str) -> Any:
    """Check that a concrete ``value`` is a scalar (shape ``()``); ``span`` names the range."""
    import numpy as np

    if _is_concrete(value) and not isinstance(value, (str, bytes)) and value is not None:
        if np.ndim(value) != 0:
            raise ValueError(
                f"{name} must be a scalar in {span}, got an array of shape {np.shape(value)}"
            )
    return value


def check_dtype(dtype: Any) -> Any:
    """float32 or float64 (the latter only with ``jax_enable_x64``)."""
    import jax.numpy as jnp

    try:
        dtype = jnp.dtype(dtype)
    except (TypeError, ValueError):
        raise TypeError(f"dtype must be float32 or float64, got {dtype!r}") from None
    if dtype not in (jnp.float32, jnp.float64):
        raise ValueError(f"dtype must be float32 or float64, got {dtype}")
    if dtype == jnp.float64 and not jax.config.jax_enable_x64:
        raise ValueError(
            "dtype float64 needs 64-bit mode: call jax.config.update('jax_enable_x64', True) first"
        )
    return dtype

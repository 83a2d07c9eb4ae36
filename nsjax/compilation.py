"""How the engine compiles: XLA options per backend and a filtered ``jit`` that applies them.

Performance only, no mathematics: the programs compute the same quantities with or without these
options (sums may be reassociated, within rounding: :data:`REASSOCIATE`).
"""

from __future__ import annotations

import functools

import equinox as eqx
import jax

__all__ = ["xla_options", "jit"]


REASSOCIATE = {
    "xla_cpu_enable_fast_math": True,
    "xla_cpu_fast_math_honor_nans": True,
    "xla_cpu_fast_math_honor_infs": True,
    "xla_cpu_fast_math_honor_division": True,
    "xla_cpu_fast_math_honor_functions": True,
}
"""XLA:CPU's fast math with every "honor" switch on: NaN, inf, division and library functions keep
IEEE semantics, what is left is LLVM's licence to reassociate and contract (FMA). Without it a
reduction whose terms need more than a multiply-add (the CW power sums: one division and eight
products per coordinate) runs as a scalar loop; with it the loop is vectorised. Summation order
changes within rounding."""


def xla_options() -> dict[str, str | bool]:
    """Per-compile XLA options of the solve. CPU: reductions stay in XLA's own fused loops
    instead of YNNPACK library calls (``xla_cpu_experimental_ynn_fusion_type``), measured ~25%
    less time per Euler step at ``d = 1e6``, and may be reassociated (:data:`REASSOCIATE`: the
    exact CW posterior ~2x faster per evaluation; ``benchmarks/RESULTS.md``); other backends, or a
    jaxlib that no longer knows the options: none."""
    return dict(_accepted_options(jax.default_backend()))


@functools.cache
def _accepted_options(backend: str) -> tuple[tuple[str, str | bool], ...]:
    if backend != "cpu":
        return ()
    options = {"xla_cpu_experimental_ynn_fusion_type": "", **REASSOCIATE}
    try:
        jax.jit(lambda x: x + 1, compiler_options=options).lower(1.0).compile()
    except Exception:  # an unknown option is an error at compile time
        return ()
    return tuple(options.items())


def jit(fun):
    """``eqx.filter_jit`` semantics (arrays traced, everything else static) with
    :func:`xla_options` at the top level (a call nested in another trace inherits its options)."""

    @functools.cache
    def compiled(options: tuple[tuple[str, str | bool], ...]):
        def inner(dynamic, static):
            return fun(*eqx.combine(dynamic, static))

        return jax.jit(inner, static_argnums=1, compiler_options=dict(options))

    @functools.wraps(fun)
    def wrapper(*args):
        dynamic, static = eqx.partition(args, eqx.is_array)
        nested = any(isinstance(leaf, jax.core.Tracer) for leaf in jax.tree.leaves(dynamic))
        options = () if nested else tuple(sorted(xla_options().items()))
        return compiled(options)(dynamic, static)

    return wrapper

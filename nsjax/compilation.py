"""How the engine compiles: XLA options per backend and a filtered ``jit`` that applies them.

Performance only, no mathematics: the programs are the same with or without these options.
"""

from __future__ import annotations

import functools

import equinox as eqx
import jax

__all__ = ["xla_options", "jit"]


def xla_options() -> dict[str, str]:
    """Per-compile XLA options of the solve. CPU: reductions stay in XLA's own fused loops
    instead of YNNPACK library calls (``xla_cpu_experimental_ynn_fusion_type``), measured ~25%
    less time per Euler step at ``d = 1e6`` (``benchmarks/RESULTS.md``); other backends, or a
    jaxlib that no longer knows the option: none."""
    return dict(_accepted_options(jax.default_backend()))


@functools.cache
def _accepted_options(backend: str) -> tuple[tuple[str, str], ...]:
    if backend != "cpu":
        return ()
    options = {"xla_cpu_experimental_ynn_fusion_type": ""}
    try:
        jax.jit(lambda x: x + 1, compiler_options=options).lower(1.0).compile()
    except Exception:  # an unknown option is an error at compile time
        return ()
    return tuple(options.items())


def jit(fun):
    """``eqx.filter_jit`` semantics (arrays traced, everything else static) with
    :func:`xla_options` at the top level (a call nested in another trace inherits its options)."""

    @functools.cache
    def compiled(options: tuple[tuple[str, str], ...]):
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

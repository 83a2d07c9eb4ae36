"""Sums over the coordinates of a particle, written so that XLA fuses what feeds them."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from .._types import Array, Float

ROW = 32
"""Coordinates per partial sum: XLA:CPU rewrites a longer reduction into a tree of reduce-windows."""


def coordinate_sum(x: Float[Array, " dim"]) -> Float[Array, ""]:
    """``sum_i x_i``: sums of rows of :data:`ROW` coordinates, then the sum of those.

    XLA:CPU splits any reduction over more than 32 elements into a tree of reduce-windows, which
    do not fuse the elementwise computation that produces ``x``: ``x`` would be stored first and
    read back. A reduction over rows of 32 keeps its producer fused (one read of the producer's
    inputs, ``d / 32`` partial sums written); the ``optimization_barrier`` keeps XLA from merging
    the two sums back into one long reduction. Rounding: sequential within a row, XLA's pairwise
    tree across rows, as for ``jnp.sum``.
    """
    d = x.shape[-1]
    main = (d // ROW) * ROW
    total = jnp.zeros((), x.dtype)
    if main:
        partial = jnp.sum(x[:main].reshape(main // ROW, ROW), axis=1)
        total = jnp.sum(jax.lax.optimization_barrier(partial))
    if d - main:
        total = total + jnp.sum(x[main:])
    return total

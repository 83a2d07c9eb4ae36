"""Shape-annotated array aliases shared by the public API (jaxtyping)."""

from jaxtyping import Array, ArrayLike, Float, Int, PRNGKeyArray

Scalar = Float[Array, ""]
"""A 0-d float array."""
ScalarLike = float | Float[ArrayLike, ""]
"""A Python float or 0-d float array."""
Vector = Float[Array, " dim"]
"""One particle in R^d."""
Batch = Float[Array, "particles dim"]
"""An ensemble of particles."""

__all__ = ["Array", "ArrayLike", "Batch", "Float", "Int", "PRNGKeyArray", "Scalar", "ScalarLike", "Vector"]

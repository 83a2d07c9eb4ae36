"""Test configuration: 64-bit mode so that oracles compare in float64 (float32 is asked for
explicitly where a test is about float32)."""

import jax

jax.config.update("jax_enable_x64", True)

"""Stochastic interpolants ``I_tau = alpha(tau) x0 + beta(tau) x1`` (docs/theory.md §1).

The noise is ``x0 ~ N(0, c^2 I_d)`` with ``c = noise_scale``: **VP** ``c = 1``, **VE** ``c = sqrt(d)``.
Every method takes the interpolation time twice, as ``tau`` and its complement
``tau_c = 1 - tau``; schedules compute ``tau_c`` without cancellation, and interpolants use it
wherever ``1 - tau`` appears, so that the end point ``tau -> 1`` keeps full relative precision.

The velocity of the probability-flow ODE is written in the form that stays finite at ``tau = 1``::

    b(tau, x) = alpha' E[x0 | I_tau = x] + beta' E[x1 | I_tau = x]
              = beta' eta(tau, x) - c^2 (alpha alpha') score(tau, x),

using Tweedie's formula ``score = (beta eta - x) / (c^2 alpha^2)``. ``alpha alpha'`` is finite for
both built-in interpolants (linear: ``-(1 - tau)``, trig: ``-tau``), so the velocity is finite
wherever the score is.
"""

from __future__ import annotations

import abc
import math
from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp

from ._checks import check_dim, check_positive, check_scalar
from ._types import Array, Float

__all__ = [
    "AbstractInterpolant",
    "Linear",
    "Trig",
    "Custom",
    "vp",
    "ve",
    "make_interpolant",
]

TimeLike = Float[Array, ""]


class AbstractInterpolant(eqx.Module):
    """``I_tau = alpha(tau) x0 + beta(tau) x1`` with ``x0 ~ N(0, c^2 I)``.

    Subclasses give ``alpha, beta`` and their ``tau``-derivatives, each a function of
    ``(tau, tau_c)`` with ``tau_c = 1 - tau``.
    """

    noise_scale: eqx.AbstractVar[float]

    @abc.abstractmethod
    def alpha(self, tau: TimeLike, tau_c: TimeLike) -> TimeLike:
        """``alpha(tau)``, with ``alpha(0) = 1, alpha(1) = 0``."""

    @abc.abstractmethod
    def beta(self, tau: TimeLike, tau_c: TimeLike) -> TimeLike:
        """``beta(tau)``, with ``beta(0) = 0, beta(1) = 1``."""

    @abc.abstractmethod
    def dalpha(self, tau: TimeLike, tau_c: TimeLike) -> TimeLike:
        """``d alpha / d tau``."""

    @abc.abstractmethod
    def dbeta(self, tau: TimeLike, tau_c: TimeLike) -> TimeLike:
        """``d beta / d tau``."""

    def alpha_dalpha(self, tau: TimeLike, tau_c: TimeLike) -> TimeLike:
        """``alpha alpha'``: finite at ``tau = 1`` for the built-in interpolants."""
        return self.alpha(tau, tau_c) * self.dalpha(tau, tau_c)

    def score_from_denoiser(self, tau: TimeLike, tau_c: TimeLike, x: Array, eta: Array) -> Array:
        """Tweedie: ``grad log rho_tau(x) = (beta eta - x) / (c^2 alpha^2)``.

        At ``alpha = 0`` (the end point) the score of a target without density is undefined;
        there it returns 0, the value for which the velocity reduces to ``beta'(1) x``
        (``E[x0 | I_1 = x] = 0`` because noise and data are independent).
        """
        alpha = self.alpha(tau, tau_c)
        c2a2 = self.noise_scale**2 * alpha**2
        safe = jnp.where(c2a2 > 0, c2a2, 1.0)
        return jnp.where(c2a2 > 0, (self.beta(tau, tau_c) * eta - x) / safe, 0.0)

    def velocity(self, tau: TimeLike, tau_c: TimeLike, x: Array, eta: Array, score: Array) -> Array:
        """``b = beta' eta - c^2 (alpha alpha') score`` (docs/theory.md §1).

        Equal to ``(alpha'/alpha) x + (beta' - alpha' beta / alpha) eta`` wherever ``alpha > 0``.
        """
        del x
        return self.dbeta(tau, tau_c) * eta - self.noise_scale**2 * self.alpha_dalpha(tau, tau_c) * score

    def velocity_from_denoiser(self, tau: TimeLike, tau_c: TimeLike, x: Array, eta: Array) -> Array:
        """Velocity from a denoiser alone, through :meth:`score_from_denoiser`."""
        return self.velocity(tau, tau_c, x, eta, self.score_from_denoiser(tau, tau_c, x, eta))


class Linear(AbstractInterpolant):
    """``alpha = 1 - tau``, ``beta = tau`` (the paper's main choice).

    ``b = (eta - x) / (1 - tau)``.
    """

    noise_scale: float = 1.0

    def __check_init__(self):
        check_positive("noise_scale", self.noise_scale)
        check_scalar("noise_scale", self.noise_scale, "(0, inf)")

    def alpha(self, tau, tau_c):
        return tau_c

    def beta(self, tau, tau_c):
        return tau

    def dalpha(self, tau, tau_c):
        return -jnp.ones_like(tau)

    def dbeta(self, tau, tau_c):
        return jnp.ones_like(tau)

    def alpha_dalpha(self, tau, tau_c):
        return -tau_c


class Trig(AbstractInterpolant):
    """``alpha = sqrt(1 - tau^2)``, ``beta = tau`` (released experiments' variant).

    ``b = (eta - tau x) / (1 - tau^2)``; ``alpha alpha' = -tau``.
    """

    noise_scale: float = 1.0

    def __check_init__(self):
        check_positive("noise_scale", self.noise_scale)
        check_scalar("noise_scale", self.noise_scale, "(0, inf)")

    def alpha(self, tau, tau_c):
        return jnp.sqrt(tau_c * (1 + tau))

    def beta(self, tau, tau_c):
        return tau

    def dalpha(self, tau, tau_c):
        return -tau / self.alpha(tau, tau_c)

    def dbeta(self, tau, tau_c):
        return jnp.ones_like(tau)

    def alpha_dalpha(self, tau, tau_c):
        return -tau


class Custom(AbstractInterpolant):
    """A user's ``(alpha, beta)`` pair, functions of ``tau``; derivatives by autodiff.

    Precision near ``tau = 1`` is whatever ``alpha_fn`` gives for ``tau`` close to 1.

    Example::

        Custom(lambda tau: jnp.cos(jnp.pi * tau / 2), lambda tau: jnp.sin(jnp.pi * tau / 2))
    """

    alpha_fn: Callable[[Array], Array] = eqx.field(static=True)
    beta_fn: Callable[[Array], Array] = eqx.field(static=True)
    noise_scale: float

    def __init__(self, alpha_fn, beta_fn, noise_scale: float = 1.0):
        for name, fn in (("alpha_fn", alpha_fn), ("beta_fn", beta_fn)):
            if not callable(fn):
                raise TypeError(
                    f"{name} must be a callable tau -> {name[:-3]}(tau), shape () to shape (), got {fn!r}"
                )
        self.alpha_fn = alpha_fn
        self.beta_fn = beta_fn
        self.noise_scale = check_scalar("noise_scale", check_positive("noise_scale", noise_scale), "(0, inf)")

    def alpha(self, tau, tau_c):
        return self.alpha_fn(tau)

    def beta(self, tau, tau_c):
        return self.beta_fn(tau)

    def dalpha(self, tau, tau_c):
        return jax.jvp(self.alpha_fn, (tau,), (jnp.ones_like(tau),))[1]

    def dbeta(self, tau, tau_c):
        return jax.jvp(self.beta_fn, (tau,), (jnp.ones_like(tau),))[1]


def vp(form: str = "linear") -> AbstractInterpolant:
    """Variance-preserving noise, ``c = 1``."""
    return make_interpolant(form, 1.0)


def ve(dim: int, form: str = "linear") -> AbstractInterpolant:
    """Variance-exploding noise, ``c = sqrt(d)``."""
    return make_interpolant(form, math.sqrt(check_dim("dim", dim)))


def make_interpolant(form: str, noise_scale: float) -> AbstractInterpolant:
    """``Linear`` or ``Trig`` by name."""
    forms = {"linear": Linear, "trig": Trig}
    if not isinstance(form, str) or form not in forms:
        raise ValueError(f"interpolant form must be one of {sorted(forms)}, got {form!r}")
    check_positive("noise_scale", noise_scale)
    return forms[form](noise_scale=noise_scale if eqx.is_array(noise_scale) else float(noise_scale))

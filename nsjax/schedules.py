"""Noise schedules: monotone maps ``t -> tau(t)`` on ``[0, 1]`` (docs/theory.md §4, §5).

A schedule is an ``equinox.Module`` made of smooth *pieces* separated by ``breakpoints``.
``schedule.evaluate(t, piece)`` returns ``ScheduleValue(tau, tau_c, rate)`` of one piece's smooth
formula (``tau_c = 1 - tau`` computed without cancellation, ``rate = d tau / d t``), valid for
any ``t`` so that a Runge–Kutta stage evaluated on a breakpoint takes its own piece's one-sided
slope. Samplers integrate piece by piece on ``schedule.intervals()`` (see :mod:`nsjax.solve`).

``schedule(t)`` evaluates the whole piecewise map (the right piece at a breakpoint).

Standard schedules of diffusion models (§5) are mapped by signal-to-noise matching: a process
``x_s = a_s x1 + sigma_s z`` is the linear interpolant with noise scale ``c`` at
``tau = c a_s / (sigma_s + c a_s)``, ``1 - tau = sigma_s / (sigma_s + c a_s)``. They span
``[tau(0), tau(1)] = [tau_min, tau_max]`` rather than ``[0, 1]``; :mod:`nsjax.solve` handles the
ends as diffusion samplers do: it starts from pure noise ``alpha(tau_min) x0`` (the signal
``beta(tau_min) x1`` is dropped: exact when ``tau_min = 0``) and, when ``tau_max < 1``, ends with one
denoising step ``X <- eta(tau_max, X)`` (one extra velocity-field evaluation, counted in NFE).
"""

from __future__ import annotations

import abc
import math
from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ._checks import check_dim, check_positive, check_range, check_scalar
from ._types import Array, Float, Int

__all__ = [
    "ScheduleValue",
    "AbstractSchedule",
    "Constant",
    "DilatedVP",
    "DilatedVE",
    "AbstractProcessSchedule",
    "DDPM",
    "VPSDE",
    "Cosine",
    "VESDE",
    "EDM",
    "ZeroSNR",
    "Tabulated",
    "tau_to_sigma",
    "tau_to_ddpm_timestep",
    "Selected",
    "Warp",
    "TwoPhase",
]

T = Float[Array, "*shape"]


class ScheduleValue(NamedTuple):
    """``tau(t)``, ``tau_c(t) = 1 - tau(t)`` and ``rate(t) = tau'(t)``."""

    tau: T
    tau_c: T
    rate: T


def _value(tau, tau_c, rate, t) -> ScheduleValue:
    shape_like = jnp.zeros_like(t)
    return ScheduleValue(tau + shape_like, tau_c + shape_like, rate + shape_like)


class AbstractSchedule(eqx.Module):
    """A monotone map ``t -> tau`` on ``[0, 1]``, smooth between ``breakpoints``.

    ``ends_at_data``: whether ``tau(1) = 1`` exactly (otherwise samplers end with a denoising
    step).
    """

    ends_at_data = True

    @property
    def breakpoints(self) -> tuple[float, ...]:
        """Sorted kinks of the map in ``(0, 1)``: grids always contain them."""
        return ()

    @abc.abstractmethod
    def evaluate(self, t: T, piece: int) -> ScheduleValue:
        """Smooth formula of piece ``piece`` (``0 <= piece <= len(breakpoints)``), at any ``t``."""

    def intervals(self) -> tuple[tuple[float, float], ...]:
        """``((t_0, t_1), ...)``: the ``[0, 1]`` sub-intervals on which each piece applies."""
        edges = (0.0, *self.breakpoints, 1.0)
        return tuple(zip(edges[:-1], edges[1:]))

    def value(self, t: T) -> ScheduleValue:
        """The piecewise map at ``t`` (right-continuous at breakpoints)."""
        t = jnp.asarray(t)
        if not self.breakpoints:
            return self.evaluate(t, 0)
        values = [self.evaluate(t, k) for k in range(len(self.breakpoints) + 1)]
        index = sum((t >= b).astype(jnp.int32) for b in self.breakpoints)
        return jax.tree.map(lambda *vs: jnp.choose(index, vs, mode="clip"), *values)

    def __call__(self, t: T) -> tuple[T, T]:
        """``(tau(t), 1 - tau(t))``."""
        value = self.value(t)
        return value.tau, value.tau_c

    def rate(self, t: T) -> T:
        """``tau'(t)``."""
        return self.value(t).rate

    def check_noise_scale(self, noise_scale) -> None:
        """Raise if this schedule was built for another interpolant noise scale ``c`` (schedules
        mapped by signal-to-noise matching depend on ``c``; the others fit any)."""


class Constant(AbstractSchedule):
    """``tau(t) = t``: the paper's constant denoising step.

    ``breaks``: optional breakpoints (e.g. ``(0.5,)``), which change nothing in the map but put
    those times on every grid, so that the constant schedule shares one compiled sweep with the
    two-phase dilations (:class:`Selected`).
    """

    breaks: tuple[float, ...] = eqx.field(static=True, default=())

    def __check_init__(self):
        message = f"breaks must be a tuple of increasing times in (0, 1), got {self.breaks!r}"
        if not isinstance(self.breaks, (tuple, list)):
            raise TypeError(message)
        if any(isinstance(b, (str, bytes, bool)) or b is None for b in self.breaks):
            raise TypeError(message)
        try:
            values = [float(b) for b in self.breaks]
        except (TypeError, ValueError):
            raise TypeError(message) from None
        if any(not 0.0 < b < 1.0 for b in values) or values != sorted(set(values)):
            raise ValueError(message)

    @property
    def breakpoints(self):
        return self.breaks

    def evaluate(self, t, piece):
        t = jnp.asarray(t)
        return _value(t, 1 - t, 1.0, t)


def _check_kappa(kappa, dim):
    check_positive("kappa", kappa)
    check_scalar("kappa", kappa, "(0, sqrt(dim))")
    if not isinstance(dim, jax.core.Tracer):
        check_range("kappa", kappa, 0.0, math.sqrt(float(dim)))


def _check_dim_value(dim):
    """``dim >= 1`` when concrete (``dim`` may be traced: sweeps over ``d``)."""
    if not isinstance(dim, jax.core.Tracer) and not eqx.is_array(dim):
        check_dim("dim", dim)
    else:
        check_range("dim", dim, 1.0, None, low_open=False)


class _Dilated(AbstractSchedule):
    """The paper's two-phase dilations: ``kappa`` in ``(0, sqrt(d))``, breakpoint ``t = 1/2``.

    ``kappa`` and ``dim`` are pytree leaves: a sweep over ``d`` or a gradient in ``kappa``
    needs no other class.
    """

    kappa: Float[Array, ""] | float
    dim: Float[Array, ""] | float

    def __check_init__(self):
        _check_dim_value(self.dim)
        _check_kappa(self.kappa, self.dim)

    @property
    def breakpoints(self):
        return (0.5,)

    @property
    def window(self) -> Float[Array, ""] | float:
        """``a = kappa / sqrt(d)`` (a Python float when both are: weakly typed, so float32 times
        give float32 values)."""
        dim = self.dim
        root = math.sqrt(dim) if isinstance(dim, (int, float)) else jnp.sqrt(dim)
        return self.kappa / root

    def _linear(self, t, piece, corner, corner_c):
        """The piecewise-linear map through ``tau(1/2) = corner`` (``1 - corner = corner_c``)::

            tau = 2 corner t,    1 - tau = (1 - 2t) + 2 t corner_c     (t <= 1/2)
            1 - tau = corner_c (2 - 2t)                               (t >= 1/2)
        """
        if piece == 0:
            return _value(2 * corner * t, (1 - 2 * t) + 2 * t * corner_c, 2 * corner, t)
        tau_c = corner_c * (2 - 2 * t)
        return _value(1 - tau_c, tau_c, 2 * corner_c, t)


class DilatedVP(_Dilated):
    """Time-dilated VP schedule (docs/theory.md §4; paper, VP dilation), breakpoint ``t = 1/2``.

    With ``a = kappa / sqrt(d)``::

        tau = 2 a t                      (t <= 1/2)
        tau = a + (1 - a)(2t - 1)        (t >= 1/2),   1 - tau = (1 - a)(2 - 2t).

    Half of the steps cover the speciation window ``tau sqrt(d) = O(1)``.
    """

    def evaluate(self, t, piece):
        a = self.window
        return self._linear(jnp.asarray(t), piece, a, 1 - a)


class DilatedVE(_Dilated):
    """Time-dilated VE schedule (docs/theory.md §4), breakpoint ``t = 1/2``; ``a = kappa / sqrt(d)``.

    ``form="linear"`` (for the linear interpolant)::

        tau = 2 (1 - a) t                (t <= 1/2)
        1 - tau = a (2 - 2t)             (t >= 1/2)    so  sqrt(d)(1 - tau) = kappa (2 - 2t).

    ``form="trig"`` (for the trig interpolant)::

        tau = 2 t sqrt(1 - a^2)          (t <= 1/2)
        tau = sqrt(1 - a^2 (2 - 2t)^2)   (t >= 1/2)

    Half of the steps resolve the per-mode variance, where the noise per coordinate
    ``sqrt(d) alpha`` is O(1).
    """

    form: str = eqx.field(static=True, default="linear")

    def __check_init__(self):
        if self.form not in ("linear", "trig"):
            raise ValueError(f"form must be 'linear' or 'trig', got {self.form!r}")

    def evaluate(self, t, piece):
        t = jnp.asarray(t)
        a = self.window
        if self.form == "linear":
            return self._linear(t, piece, 1 - a, a)
        if piece == 0:
            root = jnp.sqrt((1 - a) * (1 + a))
            # 1 - 2 t root = (1 - 2t) + 2t (1 - root), with 1 - root = a^2 / (1 + root).
            return _value(2 * t * root, (1 - 2 * t) + 2 * t * a**2 / (1 + root), 2 * root, t)
        u = a * (2 - 2 * t)
        tau = jnp.sqrt((1 - u) * (1 + u))
        return _value(tau, u**2 / (1 + tau), 2 * a * u / tau, t)


class AbstractProcessSchedule(AbstractSchedule):
    """A diffusion process ``x_s = a_s x1 + sigma_s z`` mapped to ``tau`` by SNR matching (§5).

    ``tau = c a / (sigma + c a)``, ``1 - tau = sigma / (sigma + c a)``, with ``c = noise_scale``
    the noise scale of the interpolant the schedule drives. Subclasses give ``(a, sigma)`` as
    smooth functions of the sampler time ``t`` (``t = 0``: most noise).
    """

    noise_scale: eqx.AbstractVar[float]
    ends_at_data = False

    def check_noise_scale(self, noise_scale) -> None:
        """The interpolant's ``c`` must be the one this schedule's SNR matching used."""
        mine, theirs = self.noise_scale, noise_scale
        if any(isinstance(v, jax.core.Tracer) for v in (mine, theirs)):
            return
        if not math.isclose(float(mine), float(theirs), rel_tol=1e-6):
            raise ValueError(
                f"{type(self).__name__} was built for noise_scale {float(mine):g} but the "
                f"interpolant has noise_scale {float(theirs):g}; build both from one preset "
                f"(nsjax.preset) or pass noise_scale=interpolant.noise_scale"
            )

    @abc.abstractmethod
    def signal_noise(self, t: T) -> tuple[T, T]:
        """``(a_s, sigma_s)`` at the process time that sampler time ``t`` maps to."""

    def evaluate(self, t, piece):
        t = jnp.asarray(t)
        c = self.noise_scale

        def tau_pair(t):
            a, sigma = self.signal_noise(t)
            denom = sigma + c * a
            return c * a / denom, sigma / denom

        (tau, tau_c), (dtau, _) = jax.jvp(tau_pair, (t,), (jnp.ones_like(t),))
        return ScheduleValue(tau, tau_c, dtau)

    @property
    def s_min(self) -> float:
        """Smallest process time (the sampler's ``t = 1``); default ``eps``."""
        return self.eps

    @property
    def s_max(self) -> float:
        """Largest process time (the sampler's ``t = 0``); default 1."""
        return 1.0

    def process_time(self, t: T) -> T:
        """The process' own time ``s`` at sampler time ``t``: ``s_max -> s_min``, affine.

        """
        return self.s_min + (1 - t) * (self.s_max - self.s_min)  # exact at t = 1


class _VPProcess(AbstractProcessSchedule):
    """VP process: ``a = sqrt(abar)``, ``sigma = sqrt(1 - abar)``; subclasses give ``log abar``."""

    @abc.abstractmethod
    def log_alpha_bar(self, s: T) -> T:
        """``log abar(s)``."""

    def signal_noise(self, t):
        log_abar = self.log_alpha_bar(self.process_time(t))
        return jnp.exp(log_abar / 2), jnp.sqrt(-jnp.expm1(log_abar))


class DDPM(_VPProcess):
    """DDPM (Ho et al. 2020): linear ``beta_n`` from ``beta_start`` to ``beta_end``, ``n = 1..T``.

    ``abar_n = prod_{k <= n} (1 - beta_k)`` is continued to real ``n`` by the midpoint rule with
    its Euler–Maclaurin corrections (``f(u) = log(1 - beta(u))``, ``beta`` linear in ``u``)::

        log abar(n) = int_{1/2}^{n+1/2} f du - [f']/24 + 7 [f''']/5760,   [F] = F(n + 1/2) - F(1/2)

    which is the product at integers up to the next term, ``31 [f^(5)]/967680 ~ slope^5``. The sampler runs ``n = T -> 1``
    (``tau_max < 1``: final denoising step, as DDPM's last step outputs the posterior mean).
    """

    noise_scale: float = 1.0
    num_train_steps: int = eqx.field(static=True, default=1000)
    beta_start: float = 1e-4
    beta_end: float = 0.02

    @property
    def s_min(self):
        return 1.0

    @property
    def s_max(self):
        return float(self.num_train_steps)

    def __check_init__(self):
        check_positive("noise_scale", self.noise_scale)
        check_dim("num_train_steps", self.num_train_steps)
        check_range("beta_start", self.beta_start, 0.0, 1.0)
        check_range("beta_end", self.beta_end, 0.0, 1.0)

    def beta_at(self, u):
        """``beta(u)``, linear with ``beta(1) = beta_start``, ``beta(T) = beta_end``."""
        slope = (self.beta_end - self.beta_start) / max(self.num_train_steps - 1, 1)
        return self.beta_start + slope * (u - 1)

    def series_terms(self) -> int:
        """Terms of ``-sum_k beta^k / k`` for a tail below 1e-17 at ``beta_max = beta(T + 1/2)``
        (11 at the defaults, 33 at ``beta_end = 0.3``; 64 when ``beta_end`` is traced)."""
        try:
            top = float(self.beta_at(self.num_train_steps + 0.5))
        except (TypeError, jax.errors.ConcretizationTypeError):
            return 64
        return int(np.clip(math.ceil(math.log(1e-17) / math.log(min(max(top, 1e-3), 0.999))), 8, 400))

    def log_alpha_bar(self, n):
        """``int_{1/2}^{n+1/2} log(1 - beta(u)) du = -sum_k (1/k) int beta(u)^k du``.

        For linear ``beta``, ``int_a^b beta^k du = (b - a)/(k + 1) sum_j beta(a)^j beta(b)^(k-j)``
        exactly and without cancellation (float32 safe); :meth:`series_terms` terms make it exact
        to ~1e-17 relative.
        """
        lo, hi = self.beta_at(0.5), self.beta_at(n + 0.5)
        length = n
        total = jnp.zeros_like(hi)
        for k in range(1, self.series_terms() + 1):
            powers = sum(lo**j * hi ** (k - j) for j in range(k + 1))
            total = total + powers / (k * (k + 1))
        # Euler–Maclaurin: f' = -b/(1 - beta), f''' = -2 b^3/(1 - beta)^3 (b the slope), written
        # through hi - lo = b n so that nothing cancels
        b = (self.beta_end - self.beta_start) / max(self.num_train_steps - 1, 1)
        p, q = 1 / (1 - hi), 1 / (1 - lo)
        d1 = -b * (b * length) * p * q  # [f'] = -b (p - q), p - q = (hi - lo) p q
        d3 = -2 * b**3 * (b * length) * p * q * (p * p + p * q + q * q)  # [f'''] = -2 b^3 (p^3 - q^3)
        return -length * total - d1 / 24 + 7 * d3 / 5760


class VPSDE(_VPProcess):
    """VP-SDE (Song et al. 2021): ``log abar(s) = -beta_min s - (beta_max - beta_min) s^2 / 2``.

    ``s`` runs from 1 to ``eps`` (``tau_max < 1``: final denoising step, score-SDE's ``denoise``).
    """

    noise_scale: float = 1.0
    beta_min: float = 0.1
    beta_max: float = 20.0
    eps: float = 1e-3

    def __check_init__(self):
        check_positive("noise_scale", self.noise_scale)
        check_positive("beta_min", self.beta_min)
        check_positive("beta_max", self.beta_max)
        check_range("eps", self.eps, 0.0, 1.0)

    def log_alpha_bar(self, s):
        return -self.beta_min * s - 0.5 * (self.beta_max - self.beta_min) * s**2


class Cosine(AbstractProcessSchedule):
    """Cosine (Nichol & Dhariwal 2021).

    ``sqrt(abar(s)) = cos(((s + o)/(1 + o)) pi/2) / cos((o/(1 + o)) pi/2)``.

    ``o = offset = 0.008``; ``s`` runs from 1 (``abar = 0``, so ``tau_min = 0``) to ``s_min = 1/T``
    with ``T = 1000`` (``eps = s_min``; ``tau_max < 1``: final denoising step).
    """

    noise_scale: float = 1.0
    offset: float = 0.008
    eps: float = 1e-3

    def __check_init__(self):
        check_positive("noise_scale", self.noise_scale)
        check_positive("offset", self.offset)
        check_range("eps", self.eps, 0.0, 1.0)

    def signal_noise(self, t):
        # With phi = (1 - s)/(1 + o) pi/2 and theta0 = o/(1 + o) pi/2:
        #   sqrt(abar) = sin(phi) / cos(theta0)            (exact zero at s = 1), and
        #   1 - abar = sin(s/(1 + o) pi/2) cos(theta0 - phi) / cos(theta0)^2
        # (cos^2 A - sin^2 B = cos(A + B) cos(A - B)): no cancellation at either end.
        s = self.process_time(t)
        quarter = jnp.pi / (2 * (1 + self.offset))
        phi = t * (1 - self.s_min) * quarter
        theta0 = self.offset * quarter
        cos0 = jnp.cos(theta0)
        a = jnp.sin(phi) / cos0
        sigma = jnp.sqrt(jnp.sin(s * quarter) * jnp.cos(theta0 - phi)) / cos0
        return a, sigma


class VESDE(AbstractProcessSchedule):
    """VE-SDE (Song et al. 2021): ``sigma(s) = sigma_min (sigma_max / sigma_min)^s``.

    Noise magnitude ``sqrt(sigma(s)^2 - sigma_min^2)`` with ``a = 1``; ``s`` runs from 1 to ``eps``
    (``tau_max < 1``: final denoising step). Defaults: CelebA-HQ 256 (``sigma_max = 348``,
    score_sde); the diffusers scheduler config says 380.
    """

    noise_scale: float
    sigma_min: float = 0.01
    sigma_max: float = 348.0
    eps: float = 1e-5

    def __check_init__(self):
        check_positive("noise_scale", self.noise_scale)
        check_positive("sigma_min", self.sigma_min)
        check_range("sigma_max", self.sigma_max, self.sigma_min, None)
        check_range("eps", self.eps, 0.0, 1.0)

    def signal_noise(self, t):
        s = self.process_time(t)
        log_ratio = jnp.log(jnp.asarray(self.sigma_max) / self.sigma_min)  # sigma_max may be traced
        sigma = self.sigma_min * jnp.sqrt(jnp.expm1(2 * s * log_ratio))
        return jnp.ones_like(sigma), sigma


class EDM(AbstractProcessSchedule):
    """EDM (Karras et al. 2022).

    ``sigma(t) = (sigma_max^(1/rho) + t (sigma_min^(1/rho) - sigma_max^(1/rho)))^rho``.

    ``a = 1``; ``t`` in ``[0, 1]`` is EDM's ``i / (N - 1)``, and EDM's final step to ``sigma = 0``
    is the final denoising step (an Euler step to ``sigma = 0`` returns the denoiser).
    """

    noise_scale: float
    sigma_min: float = 0.002
    sigma_max: float = 80.0
    rho: float = 7.0

    @property
    def s_min(self):
        return 0.0

    def __check_init__(self):
        check_positive("noise_scale", self.noise_scale)
        check_positive("sigma_min", self.sigma_min)
        check_range("sigma_max", self.sigma_max, self.sigma_min, None)
        check_positive("rho", self.rho)

    def signal_noise(self, t):
        lo, hi = self.sigma_min ** (1 / self.rho), self.sigma_max ** (1 / self.rho)
        sigma = (hi + t * (lo - hi)) ** self.rho
        return jnp.ones_like(sigma), sigma


class ZeroSNR(AbstractProcessSchedule):
    """A VP schedule rescaled to zero terminal SNR (Lin et al. 2023, "Common diffusion noise
    schedules and sample steps are flawed", Algorithm 1), docs/theory.md §5.

    With ``a(s) = sqrt(abar(s))`` of ``base`` (:class:`DDPM` or :class:`VPSDE`), ``a_T`` its value
    at the first sampler time (``s_max``) and ``a_0`` at the last (``s_min``)::

        a'(s) = a_0 (a(s) - a_T) / (a_0 - a_T),    sigma'(s) = sqrt(1 - a'(s)^2)

    so ``abar'(s_max) = 0`` exactly (``tau_min = 0``: pure noise is the exact start) and
    ``abar'(s_min) = abar(s_min)`` (``tau_max`` unchanged). ``1 - a'`` is computed as
    ``(1 - a_0) + a_0 (a_0 - a) / (a_0 - a_T)`` (no cancellation near the data end).
    """

    base: AbstractProcessSchedule
    noise_scale: float

    def __init__(self, base: "DDPM | VPSDE"):
        if not isinstance(base, (DDPM, VPSDE)):
            raise ValueError(f"base must be a DDPM or VPSDE schedule, got {type(base).__name__}")
        self.base = base
        self.noise_scale = base.noise_scale

    @property
    def s_min(self):
        return self.base.s_min

    @property
    def s_max(self):
        return self.base.s_max

    def process_time(self, t):
        return self.base.process_time(t)

    def log_alpha_bar_ends(self):
        """``(log abar(s_max), log abar(s_min))`` of ``base``."""
        return self.base.log_alpha_bar(self.s_max), self.base.log_alpha_bar(self.s_min)

    def alpha_bar(self, s: T) -> T:
        """``abar'(s) = a'(s)^2`` at process time ``s``."""
        return self._signal(self.base.log_alpha_bar(s))[0] ** 2

    def _signal(self, log_abar):
        """``(a', 1 - a')`` from ``log abar`` of the base schedule."""
        log_end, log_start = self.log_alpha_bar_ends()
        a0 = jnp.exp(log_start / 2)
        span = a0 - jnp.exp(log_end / 2)  # a_0 - a_T > 0
        a = jnp.exp(log_abar / 2)
        # clipped at 0: in float32 the process time at t = 0 may round just past s_max
        a_new = jnp.maximum(a0 * (a - jnp.exp(log_end / 2)) / span, 0.0)
        # a_0 - a = -a_0 expm1((log abar - log abar_0) / 2) >= 0
        gap = -a0 * jnp.expm1((log_abar - log_start) / 2)
        one_minus = -jnp.expm1(log_start / 2) + a0 * gap / span
        return a_new, one_minus

    def signal_noise(self, t):
        a_new, one_minus = self._signal(self.base.log_alpha_bar(self.process_time(t)))
        return a_new, jnp.sqrt(one_minus * (1 + a_new))


def _host_knots(name: str, values) -> "np.ndarray":
    """Host float64 1-D array of a knot list (``TypeError``/``ValueError`` naming ``name``)."""
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a list of numbers, got {values!r}") from None
    if arr.ndim != 1 or arr.size < 2:
        raise ValueError(f"{name} must be a 1-D list of at least 2 values, got shape {arr.shape}")
    return arr


class Tabulated(AbstractSchedule):
    """A schedule given as a list: ``N + 1`` knots ``tau_k`` at ``t_k = k / N``, linear between.

    On piece ``k`` (``t_k <= t <= t_{k+1}``), with ``s = (t - t_k) / (t_{k+1} - t_k)``::

        tau = (1 - s) tau_k + s tau_{k+1},    1 - tau = (1 - s) tau_c_k + s tau_c_{k+1},
        tau' = N (tau_{k+1} - tau_k).

    ``tau`` and ``tau_c = 1 - tau`` knots are stored separately (computed on the host in float64),
    so that ``1 - tau ~ 1e-6`` (VE at ``d = 1e12``) keeps its precision in float32; both hit their
    knots exactly at ``t_k``. Every interior knot is a breakpoint: every grid steps on the list
    (``steps=N``: one step per piece) and a Runge–Kutta stage on a knot takes its piece's slope.
    ``ends_at_data`` iff the last knot is ``tau = 1``; otherwise the solve ends with a denoising
    step, as for process schedules (docs/theory.md §5).

    Build from what practitioners hold: :meth:`from_sigmas` (a VE / EDM sigma list) or
    :meth:`from_ddpm_timesteps` (DDPM timesteps); those are tied to the interpolant noise scale
    ``c`` of their SNR matching (``noise_scale``; ``None``: any).
    """

    tau: Float[Array, " knots"]
    tau_c: Float[Array, " knots"]
    noise_scale: float | None
    pieces: int = eqx.field(static=True)
    at_data: bool = eqx.field(static=True)
    low: tuple[bool, ...] = eqx.field(static=True)
    """Per piece: whether its slope is taken from ``tau`` (``tau_{k+1} <= 1/2``) or ``tau_c``."""

    def __init__(self, taus, taus_c=None, *, noise_scale: float | None = None):
        """``taus``: strictly increasing in ``[0, 1]``, at least 2; ``taus_c``: their complements
        ``1 - taus`` when known more precisely (default ``1 - taus``)."""
        tau = _host_knots("taus", taus)
        tau_c = 1.0 - tau if taus_c is None else _host_knots("taus_c", taus_c)
        allowed = "strictly increasing values in [0, 1], at least 2"
        if not np.all(np.isfinite(tau)) or np.any(tau < 0) or np.any(tau > 1):
            raise ValueError(f"taus must be {allowed}, got {tau.tolist()}")
        if tau_c.shape != tau.shape or np.any(np.abs(tau + tau_c - 1) > 1e-12) or np.any(tau_c < 0):
            raise ValueError(f"taus_c must be 1 - taus in [0, 1] (shape {tau.shape}), got {tau_c.tolist()}")
        if not np.all((np.diff(tau) >= 0) & (np.diff(tau_c) <= 0) & ((np.diff(tau) > 0) | (np.diff(tau_c) < 0))):
            raise ValueError(f"taus must be {allowed}, got {tau.tolist()}")
        if noise_scale is not None:
            check_positive("noise_scale", noise_scale)
        self.tau = jnp.asarray(tau)
        self.tau_c = jnp.asarray(tau_c)
        self.noise_scale = noise_scale
        self.pieces = int(tau.size - 1)
        self.at_data = bool(tau_c[-1] == 0.0)
        self.low = tuple(bool(x <= 0.5) for x in tau[1:])

    @property
    def ends_at_data(self):  # type: ignore[override]
        return self.at_data

    @property
    def breakpoints(self):
        return tuple(k / self.pieces for k in range(1, self.pieces))

    def evaluate(self, t, piece):
        t = jnp.asarray(t)
        n, k = self.pieces, piece
        lo, hi = jnp.asarray(k / n, t.dtype), jnp.asarray((k + 1) / n, t.dtype)
        s = (t - lo) / (hi - lo)  # exactly 0 and 1 at the grid's knots
        tau = (1 - s) * self.tau[k] + s * self.tau[k + 1]
        tau_c = (1 - s) * self.tau_c[k] + s * self.tau_c[k + 1]
        if self.low[k]:
            rate = n * (self.tau[k + 1] - self.tau[k])
        else:
            rate = n * (self.tau_c[k] - self.tau_c[k + 1])
        return _value(tau, tau_c, rate, t)

    def check_noise_scale(self, noise_scale) -> None:
        """A list built from sigmas or timesteps (SNR matching) fits only its own ``c``."""
        if self.noise_scale is None or isinstance(noise_scale, jax.core.Tracer):
            return
        if not math.isclose(float(self.noise_scale), float(noise_scale), rel_tol=1e-6):
            raise ValueError(
                f"Tabulated was built for noise_scale {float(self.noise_scale):g} but the "
                f"interpolant has noise_scale {float(noise_scale):g}; rebuild it with "
                f"noise_scale=interpolant.noise_scale"
            )

    @classmethod
    def from_sigmas(cls, sigmas, noise_scale: float) -> "Tabulated":
        """A VE / EDM sigma list (``x = x1 + sigma z``, strictly decreasing, ``>= 0``; ``inf``
        allowed first): ``tau = c / (sigma + c)``, ``1 - tau = sigma / (sigma + c)``, ``c`` the
        interpolant noise scale; ``sigma = 0`` gives ``tau = 1`` (the list ends at the data)."""
        check_positive("noise_scale", noise_scale)
        sig = _host_knots("sigmas", sigmas)
        if np.any(np.isnan(sig)) or np.any(sig < 0) or not np.all(np.diff(sig) < 0):
            raise ValueError(f"sigmas must be strictly decreasing values >= 0, got {sig.tolist()}")
        c = float(noise_scale)
        inf = np.isinf(sig)
        finite = np.where(inf, 0.0, sig)
        tau = np.where(inf, 0.0, c / (finite + c))
        tau_c = np.where(inf, 1.0, finite / (finite + c))
        return cls(tau, tau_c, noise_scale=c)

    @classmethod
    def from_ddpm_timesteps(
        cls, timesteps, noise_scale: float = 1.0, *, ddpm: "DDPM | None" = None
    ) -> "Tabulated":
        """DDPM timesteps in diffusers' units (``0..T-1``, strictly decreasing; ``-1``: the data,
        ``abar = 1``), through the ``abar`` table of :class:`DDPM` (``n = timestep + 1``;
        default ``DDPM()``: linear betas 1e-4..0.02, ``T = 1000``) and SNR matching::

            tau = c a / (sigma + c a),   1 - tau = sigma / (sigma + c a),
            a = sqrt(abar),   sigma = sqrt(1 - abar).
        """
        check_positive("noise_scale", noise_scale)
        ddpm = DDPM() if ddpm is None else ddpm
        steps = _host_knots("timesteps", timesteps)
        top = ddpm.num_train_steps - 1
        if not np.all(np.diff(steps) < 0) or steps.min() < -1 or steps.max() > top:
            raise ValueError(
                f"timesteps must be strictly decreasing values in [-1, {top}], got {steps.tolist()}"
            )
        with jax.enable_x64(True):
            log_abar = np.asarray(ddpm.log_alpha_bar(steps + 1.0), np.float64)
        c = float(noise_scale)
        a, sigma = np.exp(log_abar / 2), np.sqrt(-np.expm1(log_abar))
        return cls(c * a / (sigma + c * a), sigma / (sigma + c * a), noise_scale=c)


def tau_to_sigma(tau, tau_c, noise_scale: float) -> "np.ndarray":
    """The sigma of ``x = x1 + sigma z`` at ``tau``: ``sigma = c (1 - tau) / tau`` (host float64;
    ``inf`` at ``tau = 0``). Inverse of :meth:`Tabulated.from_sigmas`."""
    tau, tau_c = np.asarray(tau, np.float64), np.asarray(tau_c, np.float64)
    with np.errstate(divide="ignore"):
        return np.where(tau > 0, float(noise_scale) * tau_c / np.where(tau > 0, tau, 1.0), np.inf)


def tau_to_ddpm_timestep(
    tau, tau_c, noise_scale: float = 1.0, *, ddpm: "DDPM | None" = None, rounded: bool = False
) -> "np.ndarray":
    """The DDPM timestep (diffusers' units, ``n - 1``) whose ``abar`` matches ``tau``'s SNR.

    Solves ``log abar(n) = -log1p(sigma^2)``, ``sigma = c (1 - tau) / tau``, for real ``n`` by
    bisection on :meth:`DDPM.log_alpha_bar` (float64); ``tau = 1`` gives ``-1``, ``tau = 0`` gives
    ``inf``. Inverse of :meth:`Tabulated.from_ddpm_timesteps`. ``rounded``: nearest integer,
    clipped to ``[0, T - 1]`` (diffusers' ``timesteps=``).
    """
    ddpm = DDPM() if ddpm is None else ddpm
    sigma = tau_to_sigma(tau, tau_c, noise_scale)
    target = -np.log1p(sigma**2)
    with jax.enable_x64(True):
        log_abar = lambda n: np.asarray(ddpm.log_alpha_bar(n), np.float64)  # noqa: E731
        lo = np.zeros_like(target)
        hi = np.full_like(target, 4.0 * ddpm.num_train_steps)
        inside = np.isfinite(target) & (target >= log_abar(hi))
        for _ in range(64):
            mid = (lo + hi) / 2
            above = log_abar(mid) >= target  # log abar decreases in n
            lo, hi = np.where(above, mid, lo), np.where(above, hi, mid)
    steps = np.where(inside, (lo + hi) / 2 - 1, np.inf)
    steps = np.where(sigma == 0, -1.0, steps)
    if rounded:
        return np.clip(np.rint(np.minimum(steps, 1e9)), 0, ddpm.num_train_steps - 1).astype(np.int64)
    return steps


class Selected(AbstractSchedule):
    """One of several schedules with the same pieces, chosen by a traced ``index``.

    Lets schedules of different types share one compiled sweep (each stage evaluates all of them,
    cheap scalars, and keeps the selected one).
    """

    schedules: tuple[AbstractSchedule, ...]
    index: Int[Array, ""] | int

    def __check_init__(self):
        if not self.schedules:
            raise ValueError("Selected needs at least one schedule")
        if len({s.breakpoints for s in self.schedules}) != 1:
            raise ValueError("Selected needs schedules with the same breakpoints")
        if len({s.ends_at_data for s in self.schedules}) != 1:
            raise ValueError("Selected needs schedules that all (or none) end at tau = 1")

    @property
    def ends_at_data(self):  # type: ignore[override]
        return self.schedules[0].ends_at_data

    @property
    def breakpoints(self):
        return self.schedules[0].breakpoints

    def check_noise_scale(self, noise_scale) -> None:
        for schedule in self.schedules:
            schedule.check_noise_scale(noise_scale)

    def evaluate(self, t, piece):
        values = [s.evaluate(t, piece) for s in self.schedules]
        index = jnp.asarray(self.index).astype(jnp.int32)
        return jax.tree.map(lambda *v: jnp.choose(index, v, mode="clip"), *values)


# -- learnable schedules (docs/theory.md §8) -------------------------------------------------------
def _legendre(x: T, num: int) -> list[T]:
    """``[P_1(x), ..., P_num(x)]`` by Bonnet's recursion."""
    polys, previous, current = [], jnp.ones_like(x), x
    for n in range(1, num + 1):
        polys.append(current)
        previous, current = current, ((2 * n + 1) * x * current - n * previous) / (n + 1)
    return polys


_GAUSS_NODES, _GAUSS_WEIGHTS = (tuple(float(v) for v in a) for a in np.polynomial.legendre.leggauss(40))


class Warp(eqx.Module):
    """A monotone map of ``[0, 1]`` onto itself with exact ends, ``len(coefficients)`` parameters::

        W(s) = int_0^s e^{f(u)} du / Z,   Z = int_0^1 e^{f(u)} du,   f(u) = sum_k a_k P_k(2u - 1)

    (``P_k`` Legendre polynomials; ``a = 0`` is the identity). ``W' = e^f / Z > 0`` for every
    ``a``, so any parameter vector gives a valid schedule piece, and ``W`` is smooth (a Runge–Kutta
    step inside one piece keeps its order). Both ``W`` and ``1 - W = int_s^1 e^f / Z`` are computed
    directly (40-point Gauss–Legendre on ``[0, s]`` and ``[s, 1]``: relative error below 1e-12 for
    ``|a_k| <= 1.5``, K <= 6, measured against adaptive quadrature), so neither end loses
    precision in float32.
    """

    coefficients: Float[Array, " K"]

    def _density(self, u):
        a = jnp.asarray(self.coefficients)
        if a.shape[-1] == 0:
            return jnp.ones_like(u)
        polys = _legendre(2 * u - 1, a.shape[-1])
        return jnp.exp(sum(a[k] * polys[k] for k in range(a.shape[-1])))

    def _integral(self, lo, hi):
        half = (hi - lo) / 2
        # one vectorised density call over the 40 nodes (a trailing axis): a 40-term unrolled sum
        # made every solve's program ~40x larger and its compilation ~minutes
        nodes = jnp.asarray(_GAUSS_NODES, jnp.result_type(half))
        weights = jnp.asarray(_GAUSS_WEIGHTS, jnp.result_type(half))
        values = self._density(jnp.expand_dims(lo, -1) + jnp.expand_dims(half, -1) * (1 + nodes))
        return half * jnp.sum(weights * values, axis=-1)

    def __call__(self, s: T) -> tuple[T, T, T]:
        """``(W(s), 1 - W(s), W'(s))``."""
        s = jnp.asarray(s)
        norm = self._integral(jnp.zeros_like(s), jnp.ones_like(s))
        return self._integral(jnp.zeros_like(s), s) / norm, self._integral(s, jnp.ones_like(s)) / norm, (
            self._density(s) / norm
        )


class TwoPhase(AbstractSchedule):
    """The paper's two-phase dilations with a learnable warp in each phase (docs/theory.md §8).

    With ``a = kappa / sqrt(d)``, the breakpoint ``t_b = split`` and local times
    ``s_1 = t / t_b``, ``s_2 = (t - t_b) / (1 - t_b)`` (``W_1``, ``W_2``: :class:`Warp`)::

        noise "vp":  tau = a W_1(s_1)                     (t <= t_b)
                     1 - tau = (1 - a)(1 - W_2(s_2))      (t >= t_b)
        noise "ve":  tau = (1 - a) W_1(s_1)               (t <= t_b)
                     1 - tau = a (1 - W_2(s_2))           (t >= t_b)

    so the VP speciation window ``tau sqrt(d) = kappa W_1`` and the VE collapse window
    ``sqrt(d)(1 - tau) = kappa (1 - W_2)`` are the same functions of ``t`` at every ``d``: one
    parameter vector serves all dimensions. Zero coefficients and ``split = 1/2`` give
    :class:`DilatedVP` / :class:`DilatedVE` (linear form) exactly. Parameters are pytree leaves
    (``log_kappa``, ``first.coefficients``, ``second.coefficients``): ``jax.grad`` of any objective
    of a solve with respect to them is the gradient of :func:`nsjax.optimize.optimize`.
    """

    log_kappa: Float[Array, ""] | float
    dim: Float[Array, ""] | float
    first: Warp
    second: Warp
    noise: str = eqx.field(static=True, default="vp")
    split: float = eqx.field(static=True, default=0.5)

    def __check_init__(self):
        if self.noise not in ("vp", "ve"):
            raise ValueError(f"noise must be 'vp' or 've', got {self.noise!r}")
        if isinstance(self.split, bool) or not isinstance(self.split, (int, float)) or not 0 < self.split < 1:
            raise ValueError(f"split must be a breakpoint time in (0, 1), got {self.split!r}")
        _check_dim_value(self.dim)
        check_scalar("log_kappa", self.log_kappa, "(-inf, log(sqrt(dim)))")
        if not isinstance(self.log_kappa, jax.core.Tracer):
            if not math.isfinite(float(self.log_kappa)):
                raise ValueError(f"log_kappa must be a finite number (kappa in (0, sqrt(dim))), got "
                                 f"{float(self.log_kappa)}")
            if not isinstance(self.dim, jax.core.Tracer):
                _check_kappa(math.exp(float(self.log_kappa)), self.dim)

    @classmethod
    def init(cls, noise: str, dim, *, kappa: float = 3.0, num_coefficients: int = 4,
             split: float = 0.5, dtype=None) -> "TwoPhase":
        """The paper's dilation for ``noise`` as a starting point (zero warps)."""
        check_positive("kappa", kappa)
        num = check_dim("num_coefficients", num_coefficients + 1) - 1
        zeros = jnp.zeros((num,), dtype or jnp.result_type(float))
        return cls(jnp.log(jnp.asarray(kappa, zeros.dtype)), dim, Warp(zeros), Warp(zeros),
                   noise=noise, split=float(split))

    @property
    def kappa(self) -> Float[Array, ""]:
        return jnp.exp(self.log_kappa)

    @property
    def breakpoints(self):
        return (self.split,)

    def evaluate(self, t, piece):
        t = jnp.asarray(t)
        dim = self.dim
        a = self.kappa / (math.sqrt(dim) if isinstance(dim, (int, float)) else jnp.sqrt(dim))
        lo, width = (0.0, self.split) if piece == 0 else (self.split, 1 - self.split)
        w, w_c, dw = (self.first if piece == 0 else self.second)((t - lo) / width)
        scale = a if (self.noise == "vp") == (piece == 0) else 1 - a
        if piece == 0:
            return ScheduleValue(scale * w, (1 - scale) + scale * w_c, scale * dw / width)
        return ScheduleValue((1 - scale) + scale * w, scale * w_c, scale * dw / width)

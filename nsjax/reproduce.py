"""``nsjax reproduce``: the public names of :mod:`nsjax.experiments` (kept for ``nsjax.cli``)."""

from .experiments import (
    PAPER,
    Config,
    add_parser,
    config_for,
    fit_slope,
    run,
    steps_to_tolerance,
)

__all__ = ["Config", "config_for", "run", "add_parser", "fit_slope", "steps_to_tolerance", "PAPER"]

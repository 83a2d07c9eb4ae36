"""``nsjax reproduce`` as a package: the paper's evidence, regenerated and extended.

Writes into a folder: ``report.md`` (for a person), ``results.json`` (for a script; schema in
:mod:`.schema`) and PNG figures. One concept per module:

- :mod:`.config`: :class:`Config` (frozen), :func:`config_for` (``quick``/``default``/``full``),
  the criteria ``P_TOL``, ``S2_TOL``, ``TABLE_STEPS``;
- :mod:`.builds`: every system, interpolant, schedule and solver the studies run (the only
  module that imports :mod:`nsjax.sweeps`, :mod:`nsjax.schedules`, :mod:`nsjax.registry`);
- :mod:`.studies`: the studies (steps versus dimension on the exact GM reduction, full
  particles, adaptive solvers, sweep versus loop, the dichotomy), each returning a frozen result;
- :mod:`.verdicts`: prose verdicts from those results;
- :mod:`.figures` (drivers) and :mod:`.plotting` (matplotlib);
- :mod:`.results`: :class:`Results` and its results.json form; :mod:`.schema`: ``validate``;
- :mod:`.report`: report.md; :mod:`.run`: :func:`run` and the command line.
"""

from .config import PAPER, Config, config_for
from .run import add_parser, run
from .studies import fit_slope, steps_to_tolerance

__all__ = ["Config", "config_for", "run", "add_parser", "fit_slope", "steps_to_tolerance", "PAPER"]

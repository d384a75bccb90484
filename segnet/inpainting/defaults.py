"""What ``CLEAN`` replaces when the user does not say: the classes, and how far flags grow.

Plain Python, so the commands' ``--help`` can name them without loading the numerical stack.
"""

from __future__ import annotations

__all__ = ["KEPT_BY_DEFAULT", "DEFAULT_GROW", "default_replaced"]

#: Classes whose flags CLEAN keeps unless asked (``--inpaint-classes``). OBJ is no contaminant;
#: a filled-in saturated core (SAT) would pass for a fainter, unsaturated star in photometry;
#: fringes (FRG) and ghosts (GHO) are faint light added over a whole area, so a fill of that
#: area erases the stars and galaxies in it (held-out tiles: stars under FRG holes lost all
#: their flux with every fill) and a flagged area can cover a whole tile, leaving nothing to fill from.
KEPT_BY_DEFAULT = ("OBJ", "SAT", "FRG", "GHO")


#: px the flags are grown by before CLEAN replaces them (``--inpaint-grow``): of 0-3 px, the one at
#: which, end to end on held-out simulated tiles and on the real evaluation frames, the network's
#: error on replaced cosmic-ray pixels and on the fluxes of stars under replaced pixels was below
#: both classical fills' (docs/decisions.md).
DEFAULT_GROW = 3


def default_replaced(classes) -> tuple[str, ...]:
    """The classes of ``classes`` (a model's, in its order) that CLEAN replaces by default."""
    return tuple(c for c in classes if c not in KEPT_BY_DEFAULT)

"""One injector per contaminant class of CONTRACT.md.

Every injector has the signature ``inject(image, frame, cfg, rng) -> (image, mask)``:
``image`` is (ny, nx) float32 in electrons (never modified in place), ``frame``
a :class:`base.Frame`, ``cfg`` the class's config and ``rng`` a
``numpy.random.Generator``; ``mask`` is the (ny, nx) bool truth. The rule for
"affected pixel" is in :mod:`base`.

``STAGES`` gives the order the simulator applies them in, following the physics:
light through the optics, the pixel response, charge added in the pixels, then
the readout after noise.
"""

from .base import Frame, significant
from .cosmic_rays import inject_cosmic_rays
from .defects import inject_bad_columns, inject_bad_lines, inject_bad_pixels, inject_hot_columns, inject_hot_pixels
from .fringes import inject_fringes
from .ghosts import inject_ghosts
from .persistence import inject_persistence
from .spikes import inject_spikes
from .trails import inject_trails

INJECTORS = {
    "CR": inject_cosmic_rays,
    "HCL": inject_hot_columns,
    "BCL": inject_bad_columns,
    "BLN": inject_bad_lines,
    "HPX": inject_hot_pixels,
    "BPX": inject_bad_pixels,
    "PER": inject_persistence,
    "TRL": inject_trails,
    "FRG": inject_fringes,
    "SPK": inject_spikes,
    "GHO": inject_ghosts,
}

#: (stage, classes): photons through the optics; pixel response; charge in the pixels; readout.
STAGES = (
    ("optics", ("SPK", "GHO", "TRL", "FRG")),
    ("response", ("BCL", "BPX")),
    ("charge", ("HCL", "HPX", "PER", "CR")),
    ("readout", ("BLN",)),
)

__all__ = ["Frame", "significant", "INJECTORS", "STAGES"]

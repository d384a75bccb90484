"""Class names and plot colours fixed by ../shared/CONTRACT.md.

Classes are always referred to by these names, never by position.
"""

from __future__ import annotations

#: Canonical order (FITS plane k holds CLASS_NAMES[k-1]).
CLASS_NAMES: tuple[str, ...] = (
    "CR",
    "HCL",
    "BCL",
    "BLN",
    "HPX",
    "BPX",
    "PER",
    "TRL",
    "FRG",
    "OBJ",
    "SAT",
    "SPK",
    "GHO",
)

#: The contaminants; OBJ is a class of its own but not a contaminant.
CONTAMINANTS: tuple[str, ...] = tuple(n for n in CLASS_NAMES if n != "OBJ")

#: Contaminants the simulator injects (SAT is what the read-out makes of too much charge, not injected).
INJECTED: tuple[str, ...] = tuple(n for n in CONTAMINANTS if n != "SAT")

DESCRIPTIONS: dict[str, str] = {
    "CR": "cosmic-ray hits (spots, tracks, worms)",
    "HCL": "hot columns, full or partial",
    "BCL": "bad (dead / low-response) columns, full or partial",
    "BLN": "bad lines (rows), full or partial",
    "HPX": "hot pixels (isolated or tiny clusters)",
    "BPX": "bad (dead / low) pixels",
    "PER": "persistence of bright sources from an earlier exposure",
    "TRL": "satellite and airplane trails",
    "FRG": "fringe patterns (the fringed area)",
    "OBJ": "astronomical objects (stars, galaxies)",
    "SAT": "saturated pixels and their bleed trails",
    "SPK": "diffraction spikes of bright stars",
    "GHO": "optical ghosts and reflections of bright sources",
}

#: Plot colours, as in the seed paper's figures; several classes at once: black.
COLOURS: dict[str, str] = {
    "CR": "#e41a1c",  # red
    "HCL": "#ffffff",  # white
    "BCL": "#ffff00",  # yellow
    "BLN": "#8b4513",  # brown
    "HPX": "#1f4fff",  # blue
    "BPX": "#00a000",  # green
    "PER": "#40e0d0",  # turquoise
    "TRL": "#ff8c00",  # orange
    "FRG": "#d3d3d3",  # light grey
    "OBJ": "#ff00ff",  # magenta
    "SAT": "#ffc0cb",  # pink
    "SPK": "#ffd700",  # gold
    "GHO": "#8f00ff",  # violet
}
MULTI_CLASS_COLOUR = "#000000"
BACKGROUND_COLOUR = "#707070"  # mid grey: distinct from white, light grey and black


def check_class_names(names, *, where: str = "classes") -> tuple[str, ...]:
    """Validate a class subset: known names, no repeats, in CONTRACT order.

    Raises ValueError naming ``where`` and the offending value.
    """
    names = tuple(names)
    if not names:
        raise ValueError(f"{where}: at least one class is needed")
    unknown = [n for n in names if n not in CLASS_NAMES]
    if unknown:
        raise ValueError(f"{where}: unknown class {unknown[0]!r} (known: {', '.join(CLASS_NAMES)})")
    if len(set(names)) != len(names):
        raise ValueError(f"{where}: repeated class in {list(names)}")
    ordered = tuple(n for n in CLASS_NAMES if n in names)
    if ordered != names:
        raise ValueError(f"{where}: classes must follow the contract order {list(ordered)}, got {list(names)}")
    return names

"""Diffraction spikes: light the secondary mirror's spider diffracts around bright stars.

A straight vane diffracts light into a pair of spikes perpendicular to it (the
Fourier transform of a thin bar is a thin line at right angles to it), on both
sides of the star. The spider has n evenly spaced vanes at an angle drawn per
tile; opposite vanes are collinear, so their spikes coincide and add up: one
bar (2 vanes) gives 2 spikes, 3 vanes give 6, a cross (4 vanes) gives 4. Each
vane's strength varies a little (vanes are never quite equal).

Along a spike line the surface brightness is ``flux * strength / (r**2 + fwhm**2)``
(e-/px): 1/r**2 beyond the core, finite on the star. Across it the profile is
the PSF's, a Moffat of the frame's FWHM and index, peak 1. A spike is therefore
longer and brighter the brighter its star. Only stars whose PSF peak reaches
``min_peak`` x full well get spikes (fainter ones would only touch their own
core); stars off the tile throw their spikes into it.

Rendering costs what the spikes cover, not the tile per star: values below
``RENDER_FRACTION`` of the tile's lowest truth threshold are dropped, and for
each spike line only the pixels that can reach that floor are evaluated, column
by column (row by row for steep lines), all stars of one direction at once.
Mask: the truth rule of ``base``.
"""

from __future__ import annotations

import numpy as np

from ..camera import log_uniform
from ..config import SpikeConfig
from ..psf import moffat_alpha
from .base import Frame, significant

#: Spike values below this fraction of the lowest truth threshold on the tile are not rendered.
RENDER_FRACTION = 0.1


def render_floor(frame: Frame) -> float:
    """Smallest spike value (e-) worth rendering: a tenth of the lowest threshold on the tile."""
    floor = max(float(np.min(frame.noise)), 1e-3 * frame.sky_noise, 1e-6)
    return RENDER_FRACTION * min(frame.nsigma, 1.0) * floor


def psf_peak_fraction(fwhm: float, beta: float) -> float:
    """Peak of a unit-flux Moffat (per px): (beta - 1) / (pi alpha**2)."""
    return (beta - 1.0) / (np.pi * moffat_alpha(fwhm, beta) ** 2)


def spike_lines(vane_angles, vane_strengths, tol: float = 1e-6):
    """Spike lines of a spider: one per set of collinear vanes, perpendicular to them.

    Returns (angles, strengths): each line's direction in [0, pi) (rad, from the
    +x axis towards +y) and the summed strength of its vanes.
    """
    angles, strengths = [], []
    for theta, s in zip(vane_angles, vane_strengths):
        a = (float(theta) + np.pi / 2) % np.pi
        for i, b in enumerate(angles):
            d = abs(a - b) % np.pi
            if min(d, np.pi - d) < tol:
                strengths[i] += float(s)
                break
        else:
            angles.append(a)
            strengths.append(float(s))
    return np.array(angles), np.array(strengths)


def draw_spider(cfg: SpikeConfig, rng):
    """The tile's spider: spike line angles (rad) and strengths (per line, vanes summed)."""
    n = int(rng.integers(cfg.vanes[0], cfg.vanes[1] + 1))
    theta0 = rng.uniform(0.0, np.pi)
    strength = log_uniform(rng, cfg.strength)
    per_vane = strength * (1.0 + cfg.vane_scatter * rng.uniform(-1.0, 1.0, n))
    return spike_lines(theta0 + 2.0 * np.pi * np.arange(n) / n, per_vane)


def _expand(starts, counts):
    """Ragged ranges: (owner index, value) for starts[i] .. starts[i] + counts[i] - 1, all i."""
    owner = np.repeat(np.arange(len(counts)), counts)
    first = np.cumsum(counts) - counts
    return owner, starts[owner] + (np.arange(owner.size) - first[owner])


def _render_line(flat, shape, ys, xs, amp, angle, fwhm, beta, cutoff):
    """Add the spike lines of direction ``angle`` of all stars (centreline amp / (r**2 + fwhm**2))."""
    ny, nx = shape
    uy, ux = np.sin(angle), np.cos(angle)
    # Step along the axis the line runs closer to ("major"), so each major index
    # holds a short run of pixels on the other ("minor") axis.
    steep = abs(uy) > abs(ux)
    if steep:
        m0, n0, n_major, n_minor, a, b = ys, xs, ny, nx, abs(uy), ux * np.sign(uy)
    else:
        m0, n0, n_major, n_minor, a, b = xs, ys, nx, ny, abs(ux), uy * (1.0 if ux >= 0 else -1.0)
    # (a, b): unit direction in (major, minor), a >= 1/sqrt(2).
    alpha = moffat_alpha(fwhm, beta)
    rc2 = fwhm * fwhm

    def half_width(level):  # |across| (px) at which the Moffat cross-profile falls to `level` (<= 1)
        return alpha * np.sqrt(np.maximum(level, 1e-300) ** (-1.0 / beta) - 1.0)

    live = amp / rc2 >= cutoff
    m0, n0, amp = m0[live], n0[live], amp[live]
    if amp.size == 0:
        return
    length = np.sqrt(np.maximum(amp / cutoff - rc2, 0.0))  # |along| where the centreline meets the floor
    w_max = half_width(cutoff * rc2 / amp) / a  # minor-axis half extent anywhere on the line
    reach = a * (length + w_max * abs(b))  # major-axis half extent
    lo = np.maximum(np.ceil(m0 - reach), 0).astype(np.int64)
    hi = np.minimum(np.floor(m0 + reach), n_major - 1).astype(np.int64)
    star, major = _expand(lo, np.maximum(hi - lo + 1, 0))
    if major.size == 0:
        return
    dm = major - m0[star]
    # Brightest centreline value any pixel of this column can see, hence the column's band.
    near = np.maximum(np.abs(dm) / a - w_max[star] * abs(b), 0.0)
    level = cutoff * (near * near + rc2) / amp[star]
    w_col = np.where(level <= 1.0, half_width(np.minimum(level, 1.0)) / a, -1.0)
    centre = n0[star] + dm * (b / a)
    c_lo = np.maximum(np.ceil(centre - w_col - 1e-9), 0).astype(np.int64)
    c_hi = np.minimum(np.floor(centre + w_col + 1e-9), n_minor - 1).astype(np.int64)
    counts = np.where(w_col >= 0, np.maximum(c_hi - c_lo + 1, 0), 0)
    col, minor = _expand(c_lo, counts)
    if minor.size == 0:
        return
    s = star[col]
    dm = dm[col]
    dn = minor - n0[s]
    along = dm * a + dn * b
    across = dn * a - dm * b
    value = amp[s] / (along * along + rc2) * (1.0 + (across / alpha) ** 2) ** (-beta)
    keep = value >= cutoff
    major, minor, value = major[col][keep], minor[keep], value[keep]
    index = major * nx + minor if steep else minor * nx + major
    flat += np.bincount(index, weights=value, minlength=flat.size)


def render_spikes(shape, stars, angles, strengths, fwhm: float, beta: float, cutoff: float) -> np.ndarray:
    """Spikes of ``stars`` ((n, 3): y, x, flux) along each line angle, values >= ``cutoff`` (e-), float32."""
    flat = np.zeros(shape[0] * shape[1], np.float64)
    stars = np.asarray(stars, np.float64).reshape(-1, 3)
    for angle, strength in zip(angles, strengths):
        _render_line(flat, shape, stars[:, 0], stars[:, 1], stars[:, 2] * strength, angle, fwhm, beta, cutoff)
    return flat.reshape(shape).astype(np.float32)


def bright_stars(frame: Frame, min_peak: float) -> np.ndarray:
    """Rows of ``frame.stars`` whose PSF peak reaches ``min_peak`` x full well ((0, 3) if none or unknown)."""
    if frame.stars is None:
        return np.zeros((0, 3))
    stars = np.asarray(frame.stars, np.float64).reshape(-1, 3)
    peak = stars[:, 2] * psf_peak_fraction(frame.fwhm, frame.beta)
    return stars[peak >= min_peak * frame.full_well]


def spike_signal(frame: Frame, cfg: SpikeConfig, rng) -> np.ndarray | None:
    """The tile's spikes (e-, float32), or None when no star is bright enough."""
    stars = bright_stars(frame, cfg.min_peak)
    if len(stars) == 0:
        return None
    angles, strengths = draw_spider(cfg, rng)
    return render_spikes(frame.shape, stars, angles, strengths, frame.fwhm, frame.beta, render_floor(frame))


def inject_spikes(image, frame: Frame, cfg: SpikeConfig, rng):
    """Add the diffraction spikes of the bright stars. Returns (image, SPK mask)."""
    signal = spike_signal(frame, cfg, rng)
    if signal is None:
        return image.copy(), np.zeros(frame.shape, bool)
    return image + signal, significant(signal, frame)

"""The clean sky seen through the optics: sky, nebulosity, stars and galaxies (noise-free, e-).

Sources are deposited on a canvas larger than the tile by the PSF radius, so
stars just outside the tile still throw their wings into it, and the whole
canvas is convolved with the PSF once by FFT (fast even for crowded clusters).
An undersampled PSF (FWHM below ``psf.OVERSAMPLE_BELOW_FWHM``) is integrated over
pixels: stars are deposited on a canvas several times finer, convolved there and
summed back into pixels (see ``render_points``).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
from scipy import fft as sp_fft

from .camera import Camera, log_uniform, uniform
from .config import FamilyConfig
from .psf import SampledPSF, moffat_wing_kernel, sampled_psf
from .raster import add_stamp, bilinear_deposit

SERSIC_INDICES = (0.5, 1.0, 1.0, 2.0, 4.0)  # Gaussian-like, exponential discs (twice), bulges, ellipticals


@dataclass
class Scene:
    """Noise-free components of a tile, each (ny, nx) float32 in e-."""

    background: np.ndarray  # sky with gradient and vignetting (what sky subtraction removes)
    nebula: np.ndarray  # diffuse nebulosity (not an OBJ)
    objects: np.ndarray  # stars and galaxies convolved with the PSF (the OBJ signal)
    psf: np.ndarray  # the kernel on the pixel grid, sum 1 (integrated over pixels when undersampled)
    n_stars: int
    n_galaxies: int
    crowded: bool
    stars: np.ndarray | None = None  # (n_stars, 3) float64: y, x (px, tile frame, pixel centres at
    # integers; may lie off the tile) and flux (e-, before vignetting)

    @property
    def photons(self) -> np.ndarray:
        return self.background + self.nebula + self.objects


def sky_background(camera: Camera, family: FamilyConfig, shape, rng) -> tuple[np.ndarray, np.ndarray]:
    """Sky level with a linear gradient, and the vignetting map (also applied to sources)."""
    ny, nx = shape
    y = np.arange(ny, dtype=np.float32)[:, None]
    x = np.arange(nx, dtype=np.float32)[None, :]
    phi = rng.uniform(0, 2 * np.pi)
    diag = float(np.hypot(ny, nx))
    ramp = (x - nx / 2) * np.float32(np.cos(phi)) + (y - ny / 2) * np.float32(np.sin(phi))
    gradient = 1.0 + ramp * np.float32(uniform(rng, family.sky_gradient) / diag)
    # The tile is a piece of a wider focal plane: the optical centre may lie far outside it.
    cy, cx = rng.uniform(-1.5, 2.5, size=2) * np.array([ny, nx])
    r2 = (x - np.float32(cx)) ** 2 + (y - np.float32(cy)) ** 2
    vignette = 1.0 - r2 * np.float32(uniform(rng, family.vignetting) / r2.max())
    return np.float32(camera.sky) * gradient * vignette, vignette


@functools.lru_cache(maxsize=8)
def _log_k2(shape) -> np.ndarray:
    """log of |k|**2 on the rfft grid of ``shape`` (the zero frequency set to +inf)."""
    ny, nx = shape
    ky = np.fft.fftfreq(ny).astype(np.float32)[:, None]
    kx = np.fft.rfftfreq(nx).astype(np.float32)[None, :]
    k2 = ky * ky + kx * kx
    k2[0, 0] = 1.0
    log_k2 = np.log(k2)
    log_k2[0, 0] = np.inf
    log_k2.setflags(write=False)
    return log_k2


def gaussian_random_field(shape, slope: float, rng) -> np.ndarray:
    """Smooth field with power spectrum ~ k**-slope, zero mean, unit variance, (ny, nx) float32."""
    ny, nx = shape
    amp = np.exp(_log_k2((ny, nx)) * np.float32(-slope / 4.0))  # |k|**(-slope/2); 0 at k = 0
    half = amp.shape
    noise = rng.standard_normal(half, dtype=np.float32) + 1j * rng.standard_normal(half, dtype=np.float32)
    field = sp_fft.irfft2(noise * amp, s=(ny, nx)).astype(np.float32)
    field -= field.mean()
    return field / (field.std() + np.float32(1e-12))


def nebulosity(camera: Camera, family: FamilyConfig, shape, rng) -> np.ndarray:
    """Diffuse emission: a lognormal-like random field, brighter in patches and filaments."""
    field = gaussian_random_field(shape, slope=rng.uniform(2.5, 3.5), rng=rng)
    patchy = np.logaddexp(0.0, 2.0 * field - 1.0)  # softplus: mostly faint, bright knots
    amplitude = log_uniform(rng, family.nebulosity_amplitude) * camera.sky_noise
    return (amplitude * patchy / (patchy.max() + 1e-12)).astype(np.float32)


def truncated_power_law(rng, n: int, lo: float, hi: float, slope: float) -> np.ndarray:
    """Fluxes with N(>F) ~ F**-slope between lo and hi (inverse-CDF sampling)."""
    if n == 0 or hi <= lo:
        return np.full(n, lo, dtype=np.float64)
    u = rng.random(n)
    return lo * (1.0 - u * (1.0 - (lo / hi) ** slope)) ** (-1.0 / slope)


def sersic_stamp(re: float, n: float, q: float, angle: float, frac_y: float, frac_x: float) -> np.ndarray:
    """Sersic profile of half-light radius ``re`` (px), index ``n``, axis ratio ``q``; sum 1."""
    half = int(min(np.ceil(3.0 * re) + 2, 40))
    axis = np.arange(-half, half + 1, dtype=np.float32)
    y = (axis - frac_y)[:, None]
    x = (axis - frac_x)[None, :]
    c, s = np.float32(np.cos(angle)), np.float32(np.sin(angle))
    u = c * x + s * y
    v = (c * y - s * x) / np.float32(q)
    r2 = (u * u + v * v) / np.float32(re * re)
    b_n = 2.0 * n - 1.0 / 3.0 + 4.0 / (405.0 * n)
    # (r/re)**(1/n) from r2 = (r/re)**2, without a general power for the common indices.
    scaled = {0.5: r2, 1.0: np.sqrt(r2), 2.0: np.sqrt(np.sqrt(r2))}.get(n)
    if scaled is None:
        scaled = r2 ** np.float32(0.5 / n)
    stamp = np.exp(np.float32(-b_n) * scaled)
    return stamp / stamp.sum()


def convolve_same(image: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Linear convolution by single-precision FFT, cropped to ``image``'s shape (kernel centred)."""
    ky, kx = kernel.shape
    shape = [sp_fft.next_fast_len(n + k - 1, real=True) for n, k in zip(image.shape, kernel.shape)]
    product = sp_fft.rfft2(image.astype(np.float32), shape) * sp_fft.rfft2(kernel.astype(np.float32), shape)
    full = sp_fft.irfft2(product, shape)
    return full[ky // 2 : ky // 2 + image.shape[0], kx // 2 : kx // 2 + image.shape[1]]


def render_points(shape, y: np.ndarray, x: np.ndarray, flux: np.ndarray, psf: SampledPSF) -> np.ndarray:
    """Point sources seen through ``psf``: (ny, nx) float32, e-.

    ``y``, ``x`` are px with pixel centres at integers (points off the map are dropped);
    a source fully inside the map sums to its ``flux``. With ``psf.oversample`` = 1 the
    points are split bilinearly over their four nearest pixels and convolved with the
    point-sampled kernel. Otherwise they are split bilinearly on the grid ``s`` times
    finer (which broadens them by at most 1 / (2 s) px rms, instead of 1 / 2 px), convolved
    there with the fine Moffat and summed in s x s blocks, which integrates the light
    over each pixel.
    """
    s = psf.oversample
    if s == 1:
        return convolve_same(bilinear_deposit(shape, y, x, flux), psf.kernel)
    ny, nx = shape
    # Sub-pixel j of a pixel row spans [j / s - 1/2, (j + 1) / s - 1/2) in pixel coordinates.
    fy = (np.asarray(y, np.float64) + 0.5) * s - 0.5
    fx = (np.asarray(x, np.float64) + 0.5) * s - 0.5
    fine = convolve_same(bilinear_deposit((ny * s, nx * s), fy, fx, flux), psf.fine)
    # Rows of sub-pixels, then columns (two contiguous reductions: several times faster than one over both axes).
    return fine.reshape(ny, s, nx * s).sum(axis=1).reshape(ny, nx, s).sum(axis=2)


WING_FLOOR = 0.1  # sky sigmas: a star's wing fainter than this is not rendered
WING_RADIUS = 96  # px: the farthest a wing is rendered from its star


def bright_wings(shape, y, x, flux, camera: Camera, core_radius: int, sky_sigma: float) -> np.ndarray:
    """The PSF wings of the bright stars beyond the core kernel's square, (ny, nx) float32 e-.

    The scene's kernel stops ``core_radius`` = 4 FWHM from a star; a star near or above
    full well is still tens of sigma bright there, and would end in a square plateau with
    no halo. Every star whose wing there exceeds ``WING_FLOOR`` sky sigmas gets the rest
    of its Moffat profile (``psf.moffat_wing_kernel``, continuous with the core) out to
    where its brightest member falls below the floor, at most ``WING_RADIUS`` px. Tiles
    without such a star are unchanged.
    """
    ny, nx = shape
    outer = core_radius + 1
    unit = moffat_wing_kernel(
        camera.fwhm,
        camera.beta,
        core_radius=core_radius,
        radius=outer,
        ellipticity=camera.ellipticity,
        angle=camera.psf_angle,
    )
    edge = float(unit.max())  # the brightest wing pixel of a unit-flux star, just outside the square
    bright = flux * edge > WING_FLOOR * sky_sigma
    if not bright.any():
        return np.zeros(shape, np.float32)
    # Where the brightest star's wing falls to the floor: edge * (r / outer) ** (-2 beta) beyond the core.
    reach = outer * (float(flux[bright].max()) * edge / (WING_FLOOR * sky_sigma)) ** (1.0 / (2.0 * camera.beta))
    radius = int(min(max(np.ceil(reach), outer + 1), WING_RADIUS))
    wing = moffat_wing_kernel(
        camera.fwhm,
        camera.beta,
        core_radius=core_radius,
        radius=radius,
        ellipticity=camera.ellipticity,
        angle=camera.psf_angle,
    )
    canvas = bilinear_deposit((ny + 2 * radius, nx + 2 * radius), y[bright] + radius, x[bright] + radius, flux[bright])
    return convolve_same(canvas, wing)[radius : radius + ny, radius : radius + nx].astype(np.float32)


def render_scene(camera: Camera, family: FamilyConfig, shape, rng: np.random.Generator) -> Scene:
    """Draw and render one tile's clean sky (noise-free, e-)."""
    ny, nx = shape
    background, vignette = sky_background(camera, family, shape, rng)
    nebula = (
        nebulosity(camera, family, shape, rng) * vignette
        if rng.random() < family.nebulosity_probability
        else np.zeros(shape, np.float32)
    )

    sampled = sampled_psf(camera.fwhm, camera.beta, ellipticity=camera.ellipticity, angle=camera.psf_angle)
    psf = sampled.kernel
    margin = sampled.radius
    cy_, cx_ = ny + 2 * margin, nx + 2 * margin
    area_mpix = cy_ * cx_ / 1e6
    canvas = np.zeros((cy_, cx_), np.float32)
    psf_peak = float(psf.max())
    sigma = camera.sky_noise

    # Field stars: a power-law luminosity function from below the noise to ~full well.
    n_field = rng.poisson(log_uniform(rng, family.stars_per_mpix) * area_mpix)
    f_lo = 0.3 * sigma / psf_peak
    f_hi = max(family.bright_peak[0] * camera.full_well / psf_peak, 2 * f_lo)
    slope = uniform(rng, family.star_flux_slope)
    ys = [rng.uniform(0, cy_, n_field)]
    xs = [rng.uniform(0, cx_, n_field)]
    fs = [truncated_power_law(rng, n_field, f_lo, f_hi, slope)]

    # A crowded young cluster: Plummer profile around a centre in or near the tile.
    crowded = bool(rng.random() < family.cluster_probability)
    if crowded:
        n_cl = int(rng.integers(family.cluster_stars[0], family.cluster_stars[1] + 1))
        a = log_uniform(rng, family.cluster_radius)
        r = a / np.sqrt(np.clip(rng.random(n_cl), 1e-6, 1 - 1e-6) ** (-2.0 / 3.0) - 1.0)
        theta = rng.uniform(0, 2 * np.pi, n_cl)
        centre = rng.uniform(0.0, 1.0, size=2) * np.array([cy_, cx_])
        ys.append(centre[0] + r * np.sin(theta))
        xs.append(centre[1] + r * np.cos(theta))
        fs.append(truncated_power_law(rng, n_cl, f_lo, f_hi, slope))

    # Bright stars: peaks near or far above full well (saturation, bleeding, persistence later).
    n_bright = rng.poisson(log_uniform(rng, family.bright_stars_per_mpix) * area_mpix)
    ys.append(rng.uniform(0, cy_, n_bright))
    xs.append(rng.uniform(0, cx_, n_bright))
    fs.append(log_uniform(rng, family.bright_peak, n_bright) * camera.full_well / psf_peak)
    y_all, x_all, f_all = np.concatenate(ys), np.concatenate(xs), np.concatenate(fs)
    if sampled.oversample == 1:  # well sampled: stars and galaxies share one canvas and one convolution
        canvas += bilinear_deposit(canvas.shape, y_all, x_all, f_all)
        star_light = None
    else:
        star_light = render_points(canvas.shape, y_all, x_all, f_all, sampled)

    # Galaxies: Sersic profiles of several indices, rendered before the PSF (sampled at pixel
    # centres, then convolved with the pixel-integrated PSF when it is undersampled).
    n_gal = rng.poisson(log_uniform(rng, family.galaxies_per_mpix) * area_mpix)
    radii = log_uniform(rng, family.galaxy_radius, n_gal)
    snrs = log_uniform(rng, family.galaxy_snr, n_gal)
    indices = np.asarray(SERSIC_INDICES)[rng.integers(0, len(SERSIC_INDICES), n_gal)]
    ratios = rng.uniform(0.2, 1.0, n_gal)
    angles = rng.uniform(0, np.pi, n_gal)
    gys, gxs = rng.uniform(0, cy_, n_gal), rng.uniform(0, cx_, n_gal)
    # Flux from an integrated S/N over the galaxy's PSF-convolved area.
    fluxes = snrs * sigma * 2.0 * np.sqrt(np.pi) * np.hypot(radii, camera.fwhm / 2.355)
    for re, n, q, angle, gy, gx, flux in zip(radii, indices, ratios, angles, gys, gxs, fluxes):
        cy, cx = int(round(gy)), int(round(gx))
        add_stamp(canvas, flux * sersic_stamp(re, n, q, angle, gy - cy, gx - cx), cy, cx)

    if star_light is None:
        convolved = convolve_same(canvas, psf)
    else:
        convolved = star_light + convolve_same(canvas, psf) if n_gal else star_light
    convolved = convolved[margin : margin + ny, margin : margin + nx]
    convolved += bright_wings(shape, y_all - margin, x_all - margin, f_all, camera, margin, float(sigma))
    objects = np.clip(convolved, 0, None) * vignette
    stars = np.column_stack([y_all - margin, x_all - margin, f_all])
    return Scene(
        background=background,
        nebula=nebula,
        objects=objects,
        psf=psf,
        n_stars=int(y_all.size),
        n_galaxies=int(n_gal),
        crowded=crowded,
        stars=stars,
    )

"""Typed configuration of the simulator (the ``data:`` section of a run config).

Ranges are written ``[low, high]`` in YAML and sampled per tile: uniformly, or
log-uniformly where the docstring says "log". Units are stated per field:
electrons (e-), ADU, pixels (px), or noise units (nsigma: multiples of the
tile's sky noise, so the same setting means "just visible" on every camera).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from foundation.classes import CLASS_NAMES, INJECTED, check_class_names
from foundation.typed_config import ConfigError, load_dataclass, read_yaml

Range = tuple[float, float]
IntRange = tuple[int, int]


def _check_range(path: str, name: str, rng, *, low=None, high=None):
    lo, hi = rng
    key = f"{path}.{name}" if path else name
    if lo > hi:
        raise ConfigError(f"{key}: low end {lo} is above high end {hi}")
    if low is not None and lo < low:
        raise ConfigError(f"{key}: values must be >= {low}, got {list(rng)}")
    if high is not None and hi > high:
        raise ConfigError(f"{key}: values must be <= {high}, got {list(rng)}")


def _check_probability(path: str, name: str, p: float):
    if not 0.0 <= p <= 1.0:
        raise ConfigError(f"{path}.{name}: a probability must lie in [0, 1], got {p}")


@dataclass(frozen=True)
class FamilyConfig:
    """A family of cameras and fields (one row of the per-field evaluation tables)."""

    weight: float = 1.0  # relative frequency among families
    detector: Literal["ccd", "nir"] = "ccd"  # nir arrays: no charge bleeding, no column traps
    gain: Range = (1.0, 4.0)  # e-/ADU
    read_noise: Range = (3.0, 10.0)  # e-
    bias: Range = (200.0, 1500.0)  # ADU
    full_well: Range = (6.0e4, 2.0e5)  # e-, log
    adc_max: float = 65535.0  # ADU, the digitiser's ceiling
    fwhm: Range = (1.5, 5.0)  # px, PSF full width at half maximum
    moffat_beta: Range = (2.5, 4.5)  # Moffat wing index (smaller: heavier wings)
    ellipticity: Range = (0.0, 0.15)  # 1 - b/a of the PSF
    sky: Range = (50.0, 3000.0)  # e-/px, log
    sky_gradient: Range = (0.0, 0.1)  # fractional sky change across the tile
    vignetting: Range = (0.0, 0.15)  # fractional sky and flux loss at the far corner
    sky_subtracted: bool = False  # product with bias and sky model removed
    stars_per_mpix: Range = (100.0, 2000.0)  # field stars, log
    star_flux_slope: Range = (0.5, 0.9)  # N(>F) ~ F**-slope
    bright_stars_per_mpix: Range = (0.0, 40.0)  # stars with peaks near or above full well
    bright_peak: Range = (0.3, 50.0)  # their peak / full well, log
    cluster_probability: float = 0.0  # chance the tile holds a crowded cluster
    cluster_stars: IntRange = (200, 3000)  # stars in the cluster
    cluster_radius: Range = (15.0, 120.0)  # px, Plummer scale radius
    galaxies_per_mpix: Range = (50.0, 1500.0)  # log
    galaxy_radius: Range = (1.0, 10.0)  # px, half-light radius, log
    galaxy_snr: Range = (1.0, 300.0)  # integrated signal-to-noise, log
    nebulosity_probability: float = 0.0  # chance of diffuse nebulosity
    nebulosity_amplitude: Range = (2.0, 40.0)  # nsigma, log
    # Detector structure, no contaminant (data_sim/detector.py); off unless a config asks for it.
    amplifier_probability: float = 0.0  # chance the tile straddles two amplifiers
    amplifier_gain_step: Range = (0.0, 0.03)  # |second amplifier's gain ratio - 1|
    amplifier_offset: Range = (0.0, 30.0)  # |second amplifier's bias offset|, ADU
    overscan_probability: float = 0.0  # chance of an overscan strip along one edge
    overscan_width: IntRange = (8, 50)  # px
    edge_probability: float = 0.0  # chance of an unexposed edge
    edge_width: IntRange = (2, 40)  # px receiving no light
    edge_softness: Range = (0.0, 12.0)  # px over which light falls from full to none
    bayer_probability: float = 0.0  # chance of a colour camera's Bayer mosaic
    bayer_response: Range = (0.3, 0.9)  # red and blue pixels' response, relative to green
    # Noise texture and response (data_sim/camera.py); off unless a config asks for it.
    correlated_noise_probability: float = 0.0  # chance of correlated noise (flat-fielded, resampled, co-added)
    noise_correlation: Range = (0.3, 1.0)  # px, sigma of the Gaussian that smooths the noise deviates
    nonlinearity: Range = (0.0, 0.0)  # fractional loss of response at the saturation level
    probabilities: dict[str, float] = field(default_factory=dict)  # per-class overrides

    def validate(self, path: str):
        if self.weight < 0:
            raise ConfigError(f"{path}.weight: must be >= 0, got {self.weight}")
        if self.adc_max <= 0:
            raise ConfigError(f"{path}.adc_max: must be > 0, got {self.adc_max}")
        for name, low, high in [
            ("gain", 1e-3, None),
            ("read_noise", 0.0, None),
            ("bias", 0.0, None),
            ("full_well", 1.0, None),
            ("fwhm", 0.5, 30.0),
            ("moffat_beta", 1.1, None),
            ("ellipticity", 0.0, 0.9),
            ("sky", 0.0, None),
            ("sky_gradient", 0.0, 1.0),
            ("vignetting", 0.0, 0.9),
            ("stars_per_mpix", 0.0, None),
            ("star_flux_slope", 0.05, 3.0),
            ("bright_stars_per_mpix", 0.0, None),
            ("bright_peak", 1e-3, None),
            ("cluster_stars", 0, None),
            ("cluster_radius", 0.5, None),
            ("galaxies_per_mpix", 0.0, None),
            ("galaxy_radius", 0.1, None),
            ("galaxy_snr", 1e-3, None),
            ("nebulosity_amplitude", 0.0, None),
            ("amplifier_gain_step", 0.0, 0.5),
            ("amplifier_offset", 0.0, None),
            ("overscan_width", 1, None),
            ("edge_width", 0, None),
            ("edge_softness", 0.0, None),
            ("bayer_response", 0.01, 1.0),
            ("noise_correlation", 0.05, 5.0),
            ("nonlinearity", 0.0, 0.3),
        ]:
            _check_range(path, name, getattr(self, name), low=low, high=high)
        _check_probability(path, "cluster_probability", self.cluster_probability)
        _check_probability(path, "nebulosity_probability", self.nebulosity_probability)
        for name in (
            "amplifier_probability",
            "overscan_probability",
            "edge_probability",
            "bayer_probability",
            "correlated_noise_probability",
        ):
            _check_probability(path, name, getattr(self, name))
        for name, p in self.probabilities.items():
            if name not in INJECTED:
                raise ConfigError(f"{path}.probabilities.{name}: unknown contaminant (known: {', '.join(INJECTED)})")
            _check_probability(f"{path}.probabilities", name, p)


@dataclass(frozen=True)
class CosmicRayConfig:
    probability: float = 1.0
    per_mpix: Range = (100.0, 3000.0)  # hits per megapixel, log
    kinds: dict[str, float] = field(default_factory=lambda: {"spot": 0.45, "track": 0.4, "worm": 0.15})
    track_length: Range = (3.0, 60.0)  # px, projected length, log
    worm_length: Range = (5.0, 30.0)  # px along the curve
    deposit: Range = (300.0, 4000.0)  # e- per px of path: most probable value, log
    spot_charge: Range = (400.0, 30000.0)  # e- in a spot, log
    diffusion: Range = (0.25, 0.6)  # px, Gaussian charge diffusion

    def validate(self, path: str):
        _check_probability(path, "probability", self.probability)
        for name in ("per_mpix", "track_length", "worm_length", "deposit", "spot_charge", "diffusion"):
            _check_range(path, name, getattr(self, name), low=0.0)
        unknown = set(self.kinds) - {"spot", "track", "worm"}
        if unknown:
            raise ConfigError(f"{path}.kinds.{sorted(unknown)[0]}: unknown kind (known: spot, track, worm)")
        if any(w < 0 for w in self.kinds.values()) or sum(self.kinds.values()) <= 0:
            raise ConfigError(f"{path}.kinds: weights must be >= 0 with a positive sum, got {self.kinds}")


@dataclass(frozen=True)
class ColumnConfig:
    """Hot (additive) or bad (low-response) columns."""

    probability: float = 0.5
    count: IntRange = (1, 3)
    partial_probability: float = 0.5  # starts at a trap inside the tile, runs away from the readout
    amplitude: Range = (3.0, 100.0)  # hot: nsigma, log
    response: Range = (0.0, 0.7)  # bad: fraction of the signal kept
    min_deficit: float = 2.0  # bad: the lost sky is at least this many nsigma

    def validate(self, path: str):
        _check_probability(path, "probability", self.probability)
        _check_probability(path, "partial_probability", self.partial_probability)
        _check_range(path, "count", self.count, low=0)
        _check_range(path, "amplitude", self.amplitude, low=0.0)
        _check_range(path, "response", self.response, low=0.0, high=1.0)


@dataclass(frozen=True)
class LineConfig(ColumnConfig):
    """Bad lines (rows): hot (additive) or dead/low (response), full or partial."""

    probability: float = 0.3
    count: IntRange = (1, 2)
    response: Range = (0.0, 0.6)
    hot_probability: float = 0.4  # otherwise dead or low

    def validate(self, path: str):
        super().validate(path)
        _check_probability(path, "hot_probability", self.hot_probability)


@dataclass(frozen=True)
class PixelDefectConfig:
    """Hot pixels (additive) or bad pixels (low response), isolated or in tiny clusters."""

    probability: float = 0.8
    per_mpix: Range = (20.0, 600.0)  # defects per megapixel, log
    cluster_probability: float = 0.2  # a defect is a 2-4 pixel cluster
    amplitude: Range = (5.0, 300.0)  # hot: nsigma, log
    response: Range = (0.0, 0.5)  # bad: fraction kept
    min_deficit: float = 3.0

    def validate(self, path: str):
        _check_probability(path, "probability", self.probability)
        _check_probability(path, "cluster_probability", self.cluster_probability)
        _check_range(path, "per_mpix", self.per_mpix, low=0.0)
        _check_range(path, "amplitude", self.amplitude, low=0.0)
        _check_range(path, "response", self.response, low=0.0, high=1.0)


@dataclass(frozen=True)
class PersistenceConfig:
    probability: float = 0.3
    sources: IntRange = (1, 6)  # saturated stars of the earlier pointing
    peak: Range = (2.0, 100.0)  # their peak / full well then, log
    amplitude: Range = (3.0, 40.0)  # residual at the saturation edge: nsigma, log
    decay: Range = (0.1, 0.6)  # how fast the residual grows with fluence above saturation

    def validate(self, path: str):
        _check_probability(path, "probability", self.probability)
        _check_range(path, "sources", self.sources, low=0)
        _check_range(path, "peak", self.peak, low=1.0)
        _check_range(path, "amplitude", self.amplitude, low=0.0)
        _check_range(path, "decay", self.decay, low=0.0)


@dataclass(frozen=True)
class TrailConfig:
    probability: float = 0.2
    count: IntRange = (1, 2)
    width: Range = (1.0, 3.0)  # cross-profile FWHM / PSF FWHM
    amplitude: Range = (2.0, 100.0)  # peak: nsigma, log
    partial_probability: float = 0.2  # starts or ends inside the tile
    modulated_probability: float = 0.3  # brightness oscillates (tumbling satellite)
    modulation_period: Range = (10.0, 120.0)  # px
    dashed_probability: float = 0.15  # on/off (airplane lights)
    dash_period: Range = (8.0, 60.0)  # px

    def validate(self, path: str):
        for name in ("probability", "partial_probability", "modulated_probability", "dashed_probability"):
            _check_probability(path, name, getattr(self, name))
        _check_range(path, "count", self.count, low=0)
        _check_range(path, "width", self.width, low=1.0)
        for name in ("amplitude", "modulation_period", "dash_period"):
            _check_range(path, name, getattr(self, name), low=0.0)


@dataclass(frozen=True)
class FringeConfig:
    probability: float = 0.15
    amplitude: Range = (0.005, 0.05)  # peak / sky level, log
    period: Range = (8.0, 40.0)  # px between crests
    warp: Range = (1.0, 8.0)  # px, amplitude of the smooth phase warp

    def validate(self, path: str):
        _check_probability(path, "probability", self.probability)
        _check_range(path, "amplitude", self.amplitude, low=0.0)
        _check_range(path, "period", self.period, low=2.0)
        _check_range(path, "warp", self.warp, low=0.0)


@dataclass(frozen=True)
class SpikeConfig:
    """Diffraction spikes of bright stars: the secondary mirror's spider, drawn per tile."""

    probability: float = 0.3
    vanes: IntRange = (2, 4)  # spider vanes, evenly spaced (2: one bar, 3: 6 spikes, 4: a cross)
    strength: Range = (3e-4, 1e-2)  # per vane: spike centreline (e-/px) = flux * strength / r**2, log
    min_peak: float = 0.5  # stars whose PSF peak reaches this x full well get spikes
    vane_scatter: float = 0.15  # each vane's strength varies by up to +-this fraction (unequal vanes)

    def validate(self, path: str):
        _check_probability(path, "probability", self.probability)
        _check_range(path, "vanes", self.vanes, low=1, high=8)
        _check_range(path, "strength", self.strength, low=0.0)
        if self.min_peak <= 0:
            raise ConfigError(f"{path}.min_peak: must be > 0, got {self.min_peak}")
        if not 0.0 <= self.vane_scatter < 1.0:
            raise ConfigError(f"{path}.vane_scatter: must lie in [0, 1), got {self.vane_scatter}")


@dataclass(frozen=True)
class GhostConfig:
    """Optical ghosts: defocused pupil images (annuli, with vane shadows) and halos near bright stars."""

    probability: float = 0.15
    count: IntRange = (1, 3)  # ghosts per tile
    radius: Range = (8.0, 80.0)  # px, outer radius of the pupil image (halo: its 1/e radius), log
    obstruction: Range = (0.2, 0.5)  # central obstruction: inner / outer radius (per tile)
    softness: Range = (1.0, 4.0)  # px, Gaussian blur of the edges
    amplitude: Range = (0.5, 20.0)  # surface brightness: nsigma, log
    offset: Range = (0.0, 3.0)  # distance from the parent star along the tile's ghost direction, in radii
    halo_probability: float = 0.3  # a ghost is a smooth halo instead of a pupil image
    vane_probability: float = 0.5  # the pupil images show the spider's vane shadows (per tile)
    vanes: IntRange = (2, 4)  # vanes casting the shadows, evenly spaced
    vane_width: Range = (0.02, 0.06)  # shadow width / outer radius (at least 1 px)
    min_peak: float = 1.0  # parents: stars whose PSF peak reaches this x full well

    def validate(self, path: str):
        for name in ("probability", "halo_probability", "vane_probability"):
            _check_probability(path, name, getattr(self, name))
        _check_range(path, "count", self.count, low=0)
        _check_range(path, "radius", self.radius, low=1.0)
        _check_range(path, "obstruction", self.obstruction, low=0.0, high=0.95)
        _check_range(path, "softness", self.softness, low=0.1)
        _check_range(path, "amplitude", self.amplitude, low=0.0)
        _check_range(path, "offset", self.offset, low=0.0)
        _check_range(path, "vanes", self.vanes, low=1, high=8)
        _check_range(path, "vane_width", self.vane_width, low=0.0, high=0.5)
        if self.min_peak <= 0:
            raise ConfigError(f"{path}.min_peak: must be > 0, got {self.min_peak}")


@dataclass(frozen=True)
class ContaminantsConfig:
    CR: CosmicRayConfig = field(default_factory=CosmicRayConfig)
    HCL: ColumnConfig = field(default_factory=ColumnConfig)
    BCL: ColumnConfig = field(default_factory=ColumnConfig)
    BLN: LineConfig = field(default_factory=LineConfig)
    HPX: PixelDefectConfig = field(default_factory=PixelDefectConfig)
    BPX: PixelDefectConfig = field(default_factory=PixelDefectConfig)
    PER: PersistenceConfig = field(default_factory=PersistenceConfig)
    TRL: TrailConfig = field(default_factory=TrailConfig)
    FRG: FringeConfig = field(default_factory=FringeConfig)
    SPK: SpikeConfig = field(default_factory=SpikeConfig)
    GHO: GhostConfig = field(default_factory=GhostConfig)


@dataclass(frozen=True)
class RealFramesConfig:
    """Real frames as backgrounds: contaminants are injected into random tiles of them.

    The frames are either the user's (``glob``, camera values from the keys below or
    the headers) or the development set's training frames (``devset``: the path of
    ``data/real/frames.yaml``; its ``split: train`` entries with their own camera values).
    A frame listed there as ``split: eval`` is refused in both cases.
    """

    glob: str | None = None  # e.g. "data/clean/*.fits"; relative to the working directory
    devset: str | None = None  # e.g. "data/real/frames.yaml": its training frames
    weight: float = 1.0  # relative frequency, on the same scale as family weights
    hdu: int | str | None = None  # default: first HDU with 2-D image data (glob only)
    gain: float | None = None  # e-/ADU; default: header GAIN, else 1 (glob only)
    read_noise: float | None = None  # e-; default: header RDNOISE, else estimated 0 (glob only)
    saturation: float | None = None  # ADU; default: header SATURATE, else the frame maximum (glob only)
    detector: Literal["ccd", "nir"] = "ccd"  # (glob only)
    fwhm: float | None = None  # px; default: header FWHM/SEEING, else measured on the frame, else 3
    flips: bool = False  # each tile turned by one of the 8 flips and rotations, drawn
    flux_scale: Range = (1.0, 1.0)  # the frame's electrons (signal and noise) scaled by this, log
    ignore_own: bool = False  # the frame's own contaminants get no truth (loss weight 0)
    ignore_grow: int = 2  # px their mask is grown by
    family: str = "real"

    def validate(self, path: str):
        if (self.glob is None) == (self.devset is None):
            raise ConfigError(
                f"{path}: give exactly one of glob (your frames) and devset (the development "
                f"set's training frames), got glob={self.glob!r}, devset={self.devset!r}"
            )
        if self.glob is not None and not self.glob:
            raise ConfigError(f"{path}.glob: must name files, got {self.glob!r}")
        if self.weight < 0:
            raise ConfigError(f"{path}.weight: must be >= 0, got {self.weight}")
        for name in ("gain", "read_noise", "saturation", "fwhm"):
            value = getattr(self, name)
            if value is not None and value <= 0 and not (name == "read_noise" and value == 0):
                raise ConfigError(f"{path}.{name}: must be > 0, got {value}")
        _check_range(path, "flux_scale", self.flux_scale, low=1e-3)
        if self.ignore_grow < 0:
            raise ConfigError(f"{path}.ignore_grow: must be >= 0, got {self.ignore_grow}")


@dataclass(frozen=True)
class SimConfig:
    tile: int = 256  # px, side of every sample
    truth_nsigma: float = 1.0  # additive signal >= this x local noise is "affected"
    families: dict[str, FamilyConfig] = field(default_factory=lambda: {"optical_sparse": FamilyConfig()})
    contaminants: ContaminantsConfig = field(default_factory=ContaminantsConfig)
    real_frames: RealFramesConfig | None = None

    def validate(self, path: str):
        if self.tile < 8:
            raise ConfigError(f"{path}.tile: must be >= 8 px, got {self.tile}")
        if self.truth_nsigma <= 0:
            raise ConfigError(f"{path}.truth_nsigma: must be > 0, got {self.truth_nsigma}")
        if not self.families and self.real_frames is None:
            raise ConfigError(f"{path}.families: at least one family (or real_frames) is needed")
        total = sum(f.weight for f in self.families.values())
        total += self.real_frames.weight if self.real_frames else 0.0
        if total <= 0:
            raise ConfigError(f"{path}.families: the weights sum to {total}; at least one must be > 0")
        if self.real_frames and self.real_frames.family in self.families:
            raise ConfigError(f"{path}.real_frames.family: {self.real_frames.family!r} is also a simulated family")


@dataclass(frozen=True)
class DataSection:
    """What the simulator reads from a run config: the class list and ``data:``."""

    classes: tuple[str, ...]
    data: SimConfig


def parse_classes(value, path: str = "classes") -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{path}: expected a list of class names, got {value!r}")
    try:
        return check_class_names(value, where=path)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def load_sim_section(source: str | Path | dict, *, config_dir: str | Path | None = None) -> DataSection:
    """Read ``classes`` and ``data`` from a run config (path or mapping).

    Other top-level sections (``model``, ``train``...) belong to ``train.py`` and
    are left to it; ``classes`` defaults to all ten.
    """
    if isinstance(source, dict):
        mapping = source
    else:
        mapping, _ = read_yaml(source, search_dir=config_dir)
    classes = parse_classes(mapping["classes"]) if "classes" in mapping else CLASS_NAMES
    data = load_dataclass(SimConfig, mapping.get("data", {}), "data")
    return DataSection(classes=classes, data=data)

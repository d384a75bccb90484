"""Stars and cosmic rays per megapixel, by peak signal-to-noise, in a config's simulated tiles.

    python bench/sim_population.py [--config multiclass.yaml] [--n 200] [--seed 0]

The real-frame diagnosis found that the simulator's tiles hold about four cosmic-ray
groups per isolated star at S/N 5-20, so the network learnt that a faint compact source
is more likely a hit. This counts, on ``--n`` tiles of split ``test``:

- every star of the scene (``Sample.stars``) by its peak S/N: flux times the PSF's peak
  pixel (the tile's Moffat) over the sky noise ``sqrt(sky + read_noise**2)``, e-;
- every cosmic-ray truth group by its peak S/N: the largest ``(image - clean) / noise`` in it.

Prints one table (per Mpix, per S/N bin) and the ratio stars / cosmic rays.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from scipy import ndimage

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

BINS = (3, 5, 10, 20, 50, 200, np.inf)


def label(i: int) -> str:
    return f"{BINS[i]:g}-{BINS[i + 1]:g}" if np.isfinite(BINS[i + 1]) else f">{BINS[i]:g}"


def counts(source, n: int):
    """(stars per bin, cosmic-ray groups per bin, Mpix) over ``n`` tiles."""
    from data_sim.psf import moffat_kernel

    stars, hits, mpix = np.zeros(len(BINS) - 1), np.zeros(len(BINS) - 1), 0.0
    for i in range(n):
        s = source[i]
        h = {k: v[0] for k, v in s.header.items()}
        gain, noise_e = h["GAIN"], np.sqrt(max(h["SKYLEVEL"], 0) + h["RDNOISE"] ** 2)
        peak = float(moffat_kernel(h["FWHM"], h["MOFFBETA"]).max())
        ny, nx = s.image.shape
        inside = (s.stars[:, 0] >= 0) & (s.stars[:, 0] < ny) & (s.stars[:, 1] >= 0) & (s.stars[:, 1] < nx)
        snr = s.stars[inside, 2] * gain * peak / noise_e
        stars += np.histogram(snr, BINS)[0]
        cr = s.truth_of("CR")
        if cr.any():
            clean_e = (s.clean - (0 if h["SKYSUB"] else h["BIAS"])) * gain
            noise = np.sqrt(np.clip(clean_e, 0, None) + h["RDNOISE"] ** 2)
            signal = (s.image - s.clean) * gain / noise
            labels, k = ndimage.label(cr, structure=np.ones((3, 3), bool))
            peaks = ndimage.maximum(signal, labels, index=np.arange(1, k + 1))
            hits += np.histogram(np.asarray(peaks), BINS)[0]
        mpix += ny * nx / 1e6
    return stars, hits, mpix


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="multiclass.yaml", help="config; a bare name is looked up in configs/")
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    from data_sim import SampleSource, load_sim_section

    path = Path(args.config) if Path(args.config).exists() else ROOT / "configs" / args.config
    source = SampleSource(load_sim_section(path, config_dir=ROOT / "configs"), args.seed, split="test", clean=True)
    stars, hits, mpix = counts(source, args.n)
    names = [label(i) for i in range(len(BINS) - 1)]
    print(f"{args.n} tiles of {path.name} ({mpix:.1f} Mpix), per Mpix by peak S/N\n")
    print("| | " + " | ".join(names) + " |\n|" + "---|" * (len(names) + 1))
    print("| stars | " + " | ".join(f"{v / mpix:.0f}" for v in stars) + " |")
    print("| cosmic-ray groups | " + " | ".join(f"{v / mpix:.0f}" for v in hits) + " |")
    print("| stars / cosmic rays | " + " | ".join(f"{a / b:.2f}" if b else "–" for a, b in zip(stars, hits)) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())

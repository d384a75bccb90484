"""Simulator throughput: (image, truth) pairs per second at 256x256 on one core.

    python bench/sim_speed.py [--config configs/multiclass.yaml] [--n 200] [--rounds 3] [--workers 0]

This machine's speed drifts, so every round times the simulator and, right
after, a fixed NumPy reference (a 256x256 Poisson draw plus an FFT round trip,
the simulator's two staple operations); the ratio of the two is the stable
figure, the absolute pairs/s is printed beside it.
"""

from __future__ import annotations

import os

for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(var, "1")  # one core, as the issue asks

import argparse  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from data_sim.config import load_sim_section  # noqa: E402
from data_sim.generator import SampleSource, iter_pairs  # noqa: E402


def reference_ops_per_second(seconds: float = 1.0) -> float:
    rng = np.random.default_rng(0)
    lam = np.full((256, 256), 500.0)
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        np.fft.irfft2(np.fft.rfft2(rng.poisson(lam).astype(np.float32)))
        count += 1
    return count / (time.perf_counter() - start)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default=str(ROOT / "configs" / "multiclass.yaml"))
    parser.add_argument("--n", type=int, default=200, help="pairs per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workers", type=int, default=0, help="worker processes (0: this process only)")
    args = parser.parse_args()

    section = load_sim_section(args.config)
    tile = section.data.tile
    source = SampleSource(section, seed=12345)
    next(iter_pairs(source, 0, 1))  # warm caches and imports
    print(
        f"config {args.config}: tile {tile}x{tile}, {len(section.classes)} classes, "
        f"workers {args.workers}, {args.n} pairs a round"
    )
    print(f"{'round':>5} {'pairs/s':>9} {'ref ops/s':>10} {'ratio':>7}")
    rates, ratios = [], []
    for r in range(args.rounds):
        start = time.perf_counter()
        for _ in iter_pairs(source, 1 + r * args.n, args.n, workers=args.workers):
            pass
        rate = args.n / (time.perf_counter() - start)
        ref = reference_ops_per_second()
        rates.append(rate)
        ratios.append(rate / ref)
        print(f"{r + 1:>5} {rate:>9.1f} {ref:>10.1f} {rate / ref:>7.3f}", flush=True)
    print(f"median: {np.median(rates):.1f} pairs/s ({np.median(ratios):.3f} x the NumPy reference)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

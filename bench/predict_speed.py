"""Prediction as a user meets it: whole processes, ours beside an astroscrappy script, on the same files.

    python bench/predict_speed.py [--model models/default] [--rounds 3] [--sizes 4096 10000] [--cutouts 100]
                                  [--tile N] [--keep DIR]

Makes the inputs once (frames of SIZE x SIZE stitched from simulated 256 x 256 tiles of the
model's own data config, so they take seconds, not minutes; and CUTOUTS simulated 256 x 256
files), then, for every input, alternates ROUNDS times:

- ours: ``python predict.py FRAME -o OUT``; for the cut-outs, one process that reads them and masks
  them through the Python API in batches (``load_masker(...).many``), writing each one's flags;
- astroscrappy: ``python -c`` a script that reads the same FITS files, runs ``detect_cosmics``
  with each file's GAIN, RDNOISE and SATURATE, and writes the mask as FITS.

Each is a fresh process; its wall time and peak resident memory (GNU ``time``'s
``%e`` and ``%M``) are what a user sees: start-up, imports and model loading included. The
speed ratio (astroscrappy's seconds over ours: > 1 means ours is faster) is printed per
round, since this machine's speed drifts, with the median, and the fraction of the CPU's
fp32 peak that the network's FLOPs reach (``--peak-gflops``, by default cores x clock x
64: two AVX-512 FMA units).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

ASTROSCRAPPY = r"""
import sys
from pathlib import Path
import numpy as np
from astropy.io import fits
import astroscrappy
inputs, out = [Path(p) for p in sys.argv[1:-1]], Path(sys.argv[-1])
files = [f for p in inputs for f in (sorted(p.glob("*.fits")) if p.is_dir() else [p])]
for f in files:
    with fits.open(f) as hdul:
        data, h = hdul[0].data.astype(np.float32), hdul[0].header
    mask, _ = astroscrappy.detect_cosmics(data - np.float32(h.get("BIAS", 0.0)), gain=h["GAIN"],
                                          readnoise=h["RDNOISE"], satlevel=h["SATURATE"] - h.get("BIAS", 0.0))
    fits.PrimaryHDU(mask.astype(np.uint8)).writeto(out / (f.stem + ".crmask.fits"), overwrite=True)
"""


TIME = "/usr/bin/time"  # GNU time: its child's own peak RSS (ru_maxrss seen from this process would
# include what this process held when it forked, TensorFlow among it)


API = r"""
import sys
from pathlib import Path
import numpy as np
from astropy.io import fits
sys.path.insert(0, {root!r})
from segnet import load_masker
files = sorted(Path(sys.argv[1]).glob("*.fits"))
images = []
for f in files:
    with fits.open(f) as hdul:
        images.append(hdul[0].data.astype(np.float32))
masker = load_masker(sys.argv[2])
for f, result in zip(files, masker.many(images)):
    fits.PrimaryHDU(result.flags).writeto(Path(sys.argv[3]) / (f.stem + ".flags.fits"), overwrite=True)
"""


def run(cmd: list[str]) -> tuple[float, float]:
    """Wall seconds and peak resident MB of one child process, by GNU time (fails loudly if it fails)."""
    with tempfile.NamedTemporaryFile("r", suffix=".time") as report:
        result = subprocess.run(
            [TIME, "-f", "%e %M", "-o", report.name, *cmd],
            cwd=ROOT,
            capture_output=True,
            text=True,
            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
        )
        if result.returncode != 0:
            raise SystemExit(f"{' '.join(cmd[:3])} ... failed:\n{result.stderr[-3000:]}")
        seconds, kb = report.read().split()[-2:]
    return float(seconds), float(kb) / 1024


def make_frame(path: Path, size: int, model_folder: Path) -> None:
    """A SIZE x SIZE raw frame stitched from simulated 256 x 256 tiles (bias 1000 ADU), its camera in the header."""
    from dataclasses import replace

    import numpy as np
    from astropy.io import fits

    from data_sim.generator import SampleSource
    from segnet.training.config import load_run_config

    config, _ = load_run_config(model_folder / "config.yaml")
    families = {k: v for k, v in config.data.families.items() if not v.sky_subtracted}
    data = replace(config.data, tile=256, families=families, real_frames=None)
    source = SampleSource(replace(config.data_section, data=data), 0, split="examples")
    frame = np.empty((size, size), np.float32)
    n = -(-size // 256)
    for k in range(n * n):
        sample = source[k]
        i, j = divmod(k, n)
        block = sample.image - np.float32(sample.header["BIAS"][0]) + np.float32(1000.0)
        h, w = min(256, size - 256 * i), min(256, size - 256 * j)
        frame[256 * i : 256 * i + h, 256 * j : 256 * j + w] = block[:h, :w]
        if k == 0:
            first = sample.header
    header = fits.Header(
        {"BIAS": 1000.0, "GAIN": first["GAIN"][0], "RDNOISE": first["RDNOISE"][0], "SATURATE": 65535.0}
    )
    fits.PrimaryHDU(frame, header=header).writeto(path, overwrite=True)


def make_cutouts(folder: Path, count: int, model_folder: Path) -> None:
    """COUNT simulated raw 256 x 256 files, each with its own camera in its header."""
    from dataclasses import replace

    from data_sim.export import write_sample
    from data_sim.generator import SampleSource
    from segnet.training.config import load_run_config

    config, _ = load_run_config(model_folder / "config.yaml")
    families = {k: v for k, v in config.data.families.items() if not v.sky_subtracted}
    data = replace(config.data, tile=256, families=families, real_frames=None)
    source = SampleSource(replace(config.data_section, data=data), 1, split="examples")
    folder.mkdir(parents=True, exist_ok=True)
    for k in range(count):
        write_sample(source[k], folder / f"cutout_{k:03d}.fits", overwrite=True)


def peak_gflops() -> float:
    """cores x clock (GHz, /proc/cpuinfo) x 64 fp32 FLOP per cycle (two AVX-512 FMA units)."""
    try:
        mhz = max(
            float(line.split(":")[1])
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("cpu MHz")
        )
    except (OSError, ValueError):
        return float("nan")
    return (os.cpu_count() or 1) * mhz / 1e3 * 64


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="models/default", help="run or model folder (default models/default)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--sizes", type=int, nargs="*", default=[4096, 10000], help="frame sides, px")
    parser.add_argument("--cutouts", type=int, default=100, help="256 x 256 files (0: none)")
    parser.add_argument("--tile", type=int, help="predict.py's --tile (default: its default)")
    parser.add_argument("--runtime", help="predict.py's --runtime (default: its default)")
    parser.add_argument("--peak-gflops", type=float, help="the CPU's fp32 peak (default: estimated)")
    parser.add_argument("--keep", type=Path, help="make the inputs here, or reuse those already here")
    args = parser.parse_args()
    if not Path(TIME).is_file():
        print(
            f"error: {TIME} (GNU time) is needed to measure each process's peak memory (Debian: time)", file=sys.stderr
        )
        return 2

    import numpy as np
    from astropy.io import fits

    from segnet.network.model import count_flops_per_pixel
    from segnet.training.run_folder import load_model, resolve_model

    model_path, folder = resolve_model(args.model)
    flops = count_flops_per_pixel(load_model(model_path))
    peak = args.peak_gflops or peak_gflops()
    work = args.keep or Path(tempfile.mkdtemp(prefix="predict_speed."))
    work.mkdir(parents=True, exist_ok=True)
    inputs = []
    for size in args.sizes:
        path = work / f"frame_{size}.fits"
        if not path.is_file():
            print(f"making {path} ...", flush=True)
            make_frame(path, size, folder)
        inputs.append((f"{size}x{size}", path, size * size / 1e6))
    if args.cutouts:
        cut = work / f"cutouts_{args.cutouts}"
        if not cut.is_dir():
            print(f"making {args.cutouts} cut-outs in {cut} ...", flush=True)
            make_cutouts(cut, args.cutouts, folder)
        inputs.append((f"{args.cutouts} x 256x256", cut, args.cutouts * 256 * 256 / 1e6))
    out = work / "out"
    out.mkdir(exist_ok=True)
    tile = ["--tile", str(args.tile)] if args.tile else []
    tile += ["--runtime", args.runtime] if args.runtime else []
    tiny = work / "tiny_128.fits"
    if not tiny.is_file():
        rng = np.random.default_rng(0)
        fits.PrimaryHDU((1000 + 10 * rng.standard_normal((128, 128))).astype(np.float32)).writeto(tiny)
    helps = [run([sys.executable, "predict.py", "--help"])[0] for _ in range(3)]
    starts = [
        run([sys.executable, "predict.py", str(tiny), "-o", str(out), "--overwrite", "--quiet", *tile])
        for _ in range(3)
    ]
    print(
        f"predict.py --help: {', '.join(f'{t:.2f}' for t in helps)} s; whole process on a 128x128 frame "
        f"(start-up, model load, one tile, writing): {', '.join(f'{t:.2f} s {m:.0f} MB' for t, m in starts)}"
    )
    print(
        f"model {model_path} ({flops / 1e3:.1f} kFLOP per pixel); {os.cpu_count()} cores, fp32 peak "
        f"{peak:.0f} GFLOP/s; whole processes, wall time and peak RSS"
    )
    for name, path, mpix in inputs:
        ratios = []
        print(
            f"\n{name} ({mpix:.1f} Mpix)\n{'round':>5} {'ours s':>8} {'ours MB':>8} {'astro s':>8} {'astro MB':>9} "
            f"{'speed ratio':>12} {'FLOP share':>11}"
        )
        for r in range(args.rounds):
            theirs = run([sys.executable, "-c", ASTROSCRAPPY, str(path), str(out)])
            if path.is_dir():  # cut-outs: through the Python API, batched (segnet.load_masker(...).many)
                ours = run([sys.executable, "-c", API.format(root=str(ROOT)), str(path), str(folder), str(out)])
            else:
                ours = run([sys.executable, "predict.py", str(path), "-o", str(out), "--overwrite", "--quiet", *tile])
            ratios.append(theirs[0] / ours[0])
            share = flops * mpix * 1e6 / ours[0] / (peak * 1e9)
            print(
                f"{r + 1:>5} {ours[0]:>8.1f} {ours[1]:>8.0f} {theirs[0]:>8.1f} {theirs[1]:>9.0f} "
                f"{ratios[-1]:>12.2f} {share:>11.3f}",
                flush=True,
            )
        print(f"median speed ratio {statistics.median(ratios):.2f} (astroscrappy s / ours s; > 1: ours faster)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

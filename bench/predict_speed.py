"""Prediction speed and peak memory on one large frame, beside astroscrappy on the same frame.

    python bench/predict_speed.py --model runs/<run> [--size 4096] [--rounds 2] [--frame FITS]

Simulates one SIZE x SIZE frame (the model's own data config), writes it as FITS
(or takes --frame, a frame an earlier run simulated: its path is printed), then alternates,
each in a fresh child process so that peak memory is its own:
- ours: predict.py's per-file job (read, normalise, tiled SegNet, write PROB and FLAGS);
- astroscrappy (LACosmic, OpenMP) on the same pixels with the frame's gain, read noise
  and saturation.
Each child reports the seconds of the work itself (start-up and model loading
excluded) and its peak resident memory; the ratio of the two speeds is printed per
round, since this machine's speed drifts.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

OURS = r"""
import json, os, sys, time
def peak_mb():  # own peak RSS: VmHWM (ru_maxrss would count the parent's, inherited at exec)
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:")) / 1024
sys.path.insert(0, {root!r})
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
from pathlib import Path
from segnet.inference import TileSettings
from segnet.prediction import FramePredictor, PredictOptions
predictor = FramePredictor(Path({model!r}), Path({folder!r}))
before = peak_mb()
start = time.perf_counter()
predictor.process(Path({frame!r}), PredictOptions(outdir=Path({out!r}), overwrite=True,
                                                  settings=TileSettings(tile={tile})))
seconds = time.perf_counter() - start
print(json.dumps({{"seconds": seconds, "peak_mb": peak_mb(),
                  "before_mb": before}}))
"""

THEIRS = r"""
import json, sys, time
def peak_mb():  # own peak RSS: VmHWM (ru_maxrss would count the parent's, inherited at exec)
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:")) / 1024
import numpy as np
from astropy.io import fits
import astroscrappy
with fits.open({frame!r}) as hdul:
    data = hdul[0].data.astype(np.float32)
    h = hdul[0].header
before = peak_mb()
start = time.perf_counter()
astroscrappy.detect_cosmics(data - np.float32(h["BIAS"]), gain=h["GAIN"], readnoise=h["RDNOISE"],
                            satlevel=h["SATURATE"] - h["BIAS"])
seconds = time.perf_counter() - start
print(json.dumps({{"seconds": seconds, "peak_mb": peak_mb(),
                  "before_mb": before}}))
"""


def child(code: str) -> dict:
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    if result.returncode != 0:
        raise SystemExit(result.stderr[-3000:])
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="run folder or .keras file")
    parser.add_argument("--size", type=int, default=4096)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--tile", type=int, help="predict.py's --tile (default: its default)")
    parser.add_argument("--frame", type=Path, help="reuse this simulated frame (minutes to simulate at 4096)")
    args = parser.parse_args()
    from segnet.inference import TileSettings
    tile = args.tile or TileSettings().tile

    from astropy.io import fits

    from data_sim.export import write_sample
    from data_sim.generator import SampleSource
    from segnet.config import load_run_config
    from segnet.run_folder import resolve_model
    from dataclasses import replace

    model_path, folder = resolve_model(args.model)
    tmp = Path(tempfile.mkdtemp(prefix="predict_speed."))
    if args.frame:
        frame = args.frame
        with fits.open(frame) as hdul:
            header = hdul[0].header
            missing = [k for k in ("BIAS", "GAIN", "RDNOISE", "SATURATE") if k not in header]
            if missing or header.get("NAXIS") != 2:
                raise SystemExit(f"--frame {frame}: expected a 2-D frame with BIAS, GAIN, RDNOISE and SATURATE "
                                 f"in its primary header (as this script writes); missing {missing}")
            family = header.get("FAMILY", "?")
            mpix = header["NAXIS1"] * header["NAXIS2"] / 1e6
    else:
        config, _ = load_run_config(folder / "config.yaml")
        section = replace(config.data_section, data=replace(config.data, tile=args.size))
        source = SampleSource(section, 0, split="examples")
        index, sample = 0, source[0]
        while sample.header["SKYSUB"][0]:  # a raw frame, so astroscrappy gets the bias it expects
            index += 1
            sample = source[index]
        frame = tmp / "frame.fits"
        write_sample(sample, frame)
        family, mpix = sample.family, args.size ** 2 / 1e6
    print(f"frame: {frame} ({mpix:.1f} Mpix), family {family}; model {model_path}; tiles of at most {tile} px; "
          f"{os.cpu_count()} cores")
    print(f"{'round':>5} {'ours s':>8} {'ours Mpix/s':>12} {'ours peak MB':>13} "
          f"{'astro s':>8} {'astro Mpix/s':>13} {'astro peak MB':>14} {'speed ratio':>12}")
    for r in range(args.rounds):
        theirs = child(THEIRS.format(frame=str(frame)))
        ours = child(OURS.format(root=str(ROOT), model=str(model_path), folder=str(folder), frame=str(frame),
                                 out=str(tmp), tile=tile))
        print(f"{r + 1:>5} {ours['seconds']:>8.1f} {mpix / ours['seconds']:>12.3f} {ours['peak_mb']:>13.0f} "
              f"{theirs['seconds']:>8.1f} {mpix / theirs['seconds']:>13.3f} {theirs['peak_mb']:>14.0f} "
              f"{theirs['seconds'] / ours['seconds']:>12.2f}", flush=True)
    print("speed ratio = ours / astroscrappy in Mpix/s (>1: ours faster). Peak MB includes each process's "
          "libraries (TensorFlow alone is ~600 MB).")
    return 0


if __name__ == "__main__":
    sys.exit(main())

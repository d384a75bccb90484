"""python -m data_sim --config configs/multiclass.yaml --n 4 -o DIR

Writes DIR/sample_0000.fits ... (image + TRUTH cube with CLASSk keywords) and
DIR/montage.png (images above their colour-coded truth masks).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from foundation.resources import configs_dir
from foundation.typed_config import ConfigError

from .config import load_sim_section
from .export import write_montage, write_sample
from .generator import SampleSource, iter_samples
from .real_frames import RealFrameError

CONFIG_DIR = configs_dir()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m data_sim", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--config", required=True, help="run config (a bare name is looked up in configs/)")
    parser.add_argument("--n", type=int, default=4, help="number of samples (default 4)")
    parser.add_argument("-o", "--out", required=True, help="output folder (created if needed)")
    parser.add_argument("--seed", type=int, default=0, help="sample source seed (default 0)")
    parser.add_argument("--start", type=int, default=0, help="index of the first sample (default 0)")
    parser.add_argument("--workers", type=int, default=0, help="worker processes (default 0: in this process)")
    parser.add_argument("--overwrite", action="store_true", help="replace existing sample files")
    args = parser.parse_args(argv)
    if args.n < 1:
        parser.error(f"--n: must be >= 1, got {args.n}")
    try:
        section = load_sim_section(args.config, config_dir=CONFIG_DIR)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    source = SampleSource(section, args.seed, split="examples")
    samples = []
    try:
        for i, sample in enumerate(iter_samples(source, args.start, args.n, workers=args.workers)):
            name = out / f"sample_{args.start + i:04d}.fits"
            write_sample(sample, name, overwrite=args.overwrite)
            samples.append(sample)
            print(f"[{i + 1}/{args.n}] {name} ({sample.family})", flush=True)
    except FileExistsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except RealFrameError as exc:  # the real frames configured cannot be used (missing, an evaluation frame)
        print(f"error: {exc}", file=sys.stderr)
        return 2
    montage = write_montage(samples[:8], out / "montage.png")
    print(f"montage: {montage}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

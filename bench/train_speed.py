"""Training and inference speed of a config's model on this machine's CPU.

    python bench/train_speed.py [--config multiclass.yaml] [--rounds 3]

Prints, per round and interleaved so that drift hits both alike:
- training images/s: full optimiser steps (forward, weighted loss, backward, Adam)
  on batches of the config's tile size and batch size, data prepared beforehand;
- inference Mpix/s: the model's forward pass on a 1024x1024 image;
- astroscrappy (LACosmic) Mpix/s on the same 1024x1024 image (gain 1, read noise 5);
and the model's convolution FLOPs per pixel.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="multiclass.yaml")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=5, help="training steps per round")
    args = parser.parse_args()

    import keras

    from data_sim.generator import SampleSource
    from segnet.network.model import build_segnet, count_flops_per_pixel
    from segnet.training.config import load_run_config
    from segnet.training.dataset import make_batch
    from segnet.training.losses import WeightedSigmoidCrossEntropy

    try:
        import astroscrappy
    except ImportError:
        astroscrappy = None
        print("astroscrappy is not installed (pip install -e .): no baseline")

    config, path = load_run_config(args.config)
    m, t = config.model, config.train
    model = build_segnet(
        class_names=config.classes,
        depth=m.depth,
        base_filters=m.base_filters,
        convs_per_level=m.convs_per_level,
        batch_norm=m.batch_norm,
        kernel_size=m.kernel_size,
    )
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=WeightedSigmoidCrossEntropy(), jit_compile=False)
    source = SampleSource(config.data_section, 0)
    samples = [source[i] for i in range(t.batch_size)]
    x, y = make_batch(samples, np.ones(len(config.classes), np.float32), 1.0)
    rng = np.random.default_rng(0)
    frame = (1000 + 30 * rng.standard_normal((1024, 1024))).astype(np.float32)
    frame_x = ((frame - 1000) / 30)[None, ..., None]

    model.train_on_batch(x, y)  # trace and warm up
    model.predict(frame_x, verbose=0)
    print(
        f"config {path.name}: depth {m.depth}, base {m.base_filters}, {model.count_params():,} parameters, "
        f"{count_flops_per_pixel(model) / 1e3:.1f} kFLOP per pixel (convolutions, forward)"
    )
    print(
        f"keras {keras.__version__} ({keras.backend.backend()}), {os.cpu_count()} CPU cores; "
        f"training batches {t.batch_size} x {config.data.tile}x{config.data.tile}"
    )
    print(f"{'round':>5} {'train img/s':>12} {'infer Mpix/s':>13} {'astroscrappy Mpix/s':>20} {'infer/astro':>12}")
    rows = []
    for r in range(args.rounds):
        start = time.perf_counter()
        for _ in range(args.steps):
            model.train_on_batch(x, y)
        train_rate = args.steps * t.batch_size / (time.perf_counter() - start)
        start = time.perf_counter()
        model.predict(frame_x, verbose=0)
        infer = frame.size / 1e6 / (time.perf_counter() - start)
        astro = np.nan
        if astroscrappy is not None:
            start = time.perf_counter()
            astroscrappy.detect_cosmics(frame, gain=1.0, readnoise=5.0, satlevel=65535.0)
            astro = frame.size / 1e6 / (time.perf_counter() - start)
        rows.append((train_rate, infer, astro))
        print(f"{r + 1:>5} {train_rate:>12.2f} {infer:>13.3f} {astro:>20.3f} {infer / astro:>12.2f}", flush=True)
    med = np.median(np.array(rows), axis=0)
    print(
        f"median: training {med[0]:.2f} images/s of {config.data.tile}x{config.data.tile}; "
        f"inference {med[1]:.3f} Mpix/s = {med[1] / med[2]:.2f} x astroscrappy ({med[2]:.3f} Mpix/s)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

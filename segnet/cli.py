"""The ``segnet`` command: one subcommand per job, with the options of the matching script.

    segnet predict frame.fits -o out/        # = python predict.py ...  (segnet/commands/predict.py)
    segnet train --config multiclass.yaml    # = python train.py ...    (segnet/commands/train.py)
    segnet evaluate [--run RUN]              # = python evaluate.py ... (segnet/commands/evaluate.py)
    segnet simulate --config multiclass.yaml --n 8 -o tiles/   # = python -m data_sim ...
    segnet ship RUN DEST --hardware "..."    # = python -m segnet.serving.shipping ...

Nothing heavy is imported before the subcommand is known, so ``--help`` answers at once.
"""

from __future__ import annotations

import sys
from importlib import import_module

JOBS = {
    "predict": ("segnet.commands.predict", "mask FITS frames: a probability cube and a flag mask per input"),
    "train": ("segnet.commands.train", "train a model from a run config, or resume a run"),
    "evaluate": ("segnet.commands.evaluate", "measure a model on held-out simulated tiles or on real frames"),
    "simulate": ("data_sim.__main__", "write simulated frames with their truth masks"),
    "ship": ("segnet.serving.shipping", "copy a trained, evaluated run into a model folder with its card"),
}


def usage() -> str:
    width = max(map(len, JOBS))
    jobs = "\n".join(f"  {name:<{width}}  {text}" for name, (_, text) in JOBS.items())
    return (
        f"usage: segnet JOB [options]   (segnet JOB --help for a job's options)\n\n"
        f"Contaminant masks for astronomical images.\n\njobs:\n{jobs}\n"
    )


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(usage(), end="")
        return 0 if argv else 2
    job, rest = argv[0], argv[1:]
    if job not in JOBS:
        print(f"error: segnet: unknown job {job!r} (choose from {', '.join(JOBS)})", file=sys.stderr)
        return 2
    module = import_module(JOBS[job][0])
    sys.argv[0] = f"segnet {job}"  # what argparse shows as the program's name
    return module.main(rest)


if __name__ == "__main__":
    sys.exit(main())

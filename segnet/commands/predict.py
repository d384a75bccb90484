"""Masks for FITS frames: a probability cube and a flag mask per input, as ../shared/CONTRACT.md says.

    python predict.py frame.fits -o out/                     # the shipped default model
    python predict.py night1/ night2/*.fits.fz list.txt -o out/ --model runs/multiclass-20261122-0130
    python predict.py mef.fits -o out/ --all-hdus --compress
    python predict.py survey.txt -o out/ --workers 2          # files in parallel on this machine
    python predict.py survey.txt -o out/ --scheduler tcp://head:8786   # on a Dask cluster
    python predict.py frame.fits -o out/ --inpaint            # also CLEAN: flagged pixels replaced
    python predict.py frame.fits -o out/ --inpaint-classes CR,HPX --inpaint-model runs/inpaint-20261122-0130

Inputs: FITS files (.fits, .fits.fz, .fits.gz), folders of them, text files listing
paths (.txt/.lst/.list, one per line). For INPUT, writes OUTDIR/<INPUT name>.mask.fits
with HDUs PROB (float32 cube, one plane per class) and FLAGS (int32, bit k-1 set where
class k is at or above its threshold). With --inpaint (implied by --inpaint-classes or
--inpaint-model), also CLEAN (float32, the image with the pixels flagged in the chosen
classes replaced by the inpainting network; every other pixel unchanged). A file that
cannot be processed gets a one-line error; the others are still written, and the exit
status is 1 if any failed.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from foundation.process import set_verbose, stop_on_sigterm

_WORKER = {}  # per process: the FramePredictor, loaded once


def parse_args(argv):
    from foundation.tiling import TileSettings
    from segnet.inpainting.defaults import DEFAULT_GROW

    defaults = TileSettings()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("inputs", nargs="+", metavar="INPUT", help="FITS file, folder, or text file of paths")
    parser.add_argument("-o", "--outdir", required=True, help="output folder (created if needed)")
    parser.add_argument("--model", help="run folder or .keras file (default: the shipped models/default)")
    parser.add_argument("--hdu", help="image HDU, by index or EXTNAME (default: the first 2-D image)")
    parser.add_argument("--all-hdus", action="store_true", help="every 2-D image HDU, into matching output HDUs")
    parser.add_argument("--overwrite", action="store_true", help="replace existing outputs (default: keep them)")
    parser.add_argument(
        "--compress", action="store_true", help="tile-compressed output: FLAGS lossless, PROB to steps of 1e-4"
    )
    parser.add_argument(
        "--thresholds", type=Path, help="YAML class -> threshold, overriding the model's thresholds.yaml"
    )
    parser.add_argument(
        "--priors",
        type=Path,
        help="YAML class -> expected pixel fraction (Bayes prior adjustment), or 'auto': each "
        "frame's own fractions, estimated from its probabilities (EM; PRIORk in the headers)",
    )
    parser.add_argument("--saturation", type=float, help="saturation level, ADU (default: header SATURATE)")
    parser.add_argument(
        "--bad-pixel-mask",
        type=Path,
        help="FITS, nonzero = known bad pixel (kept out of the background and noise estimates)",
    )
    parser.add_argument(
        "--tile",
        type=int,
        default=defaults.tile,
        help="largest tile side, px: fewer, larger tiles are faster, smaller ones use less memory "
        f"(default {defaults.tile}; 1024 takes about a third of its memory)",
    )
    parser.add_argument("--margin", type=int, default=defaults.margin, help=f"context, px (default {defaults.margin})")
    parser.add_argument(
        "--blend", type=int, default=defaults.blend, help=f"blended overlap, px (default {defaults.blend})"
    )
    parser.add_argument("--batch-size", type=int, default=defaults.batch_size, help="tiles per forward pass")
    parser.add_argument("--workers", type=int, default=0, help="files in parallel in N processes on this machine")
    parser.add_argument("--scheduler", help="address of a Dask distributed scheduler to send the files to")
    parser.add_argument(
        "--inpaint",
        action="store_true",
        help="add HDU CLEAN: the image with flagged pixels replaced by the inpainting network",
    )
    parser.add_argument(
        "--inpaint-classes",
        metavar="NAMES",
        help="comma-separated classes to replace (default: every contaminant but SAT, FRG, GHO; OBJ never)",
    )
    parser.add_argument(
        "--inpaint-grow",
        type=int,
        metavar="PX",
        help="with --inpaint: also replace PX px around the flagged pixels, a hit's faint halo, but not "
        f"pixels flagged OBJ (default {DEFAULT_GROW})",
    )
    parser.add_argument(
        "--inpaint-model", type=Path, help="inpainting run folder or .keras file (default: <model folder>/inpaint)"
    )
    parser.add_argument(
        "--runtime",
        choices=("auto", "onnx", "openvino", "keras"),
        default="auto",
        help="what runs the network: ONNX Runtime (auto, when installed) or Keras; same probabilities",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument("-v", "--verbose", action="store_true", help="let TensorFlow's start-up log lines through")
    args = parser.parse_args(argv)
    if args.inpaint_grow is not None and args.inpaint_grow < 0:
        parser.error(f"--inpaint-grow: must be >= 0 px, got {args.inpaint_grow}")
    if args.inpaint_grow is not None and not (args.inpaint or args.inpaint_classes is not None or args.inpaint_model):
        parser.error("--inpaint-grow: only with --inpaint")
    if args.inpaint_grow is None:
        args.inpaint_grow = DEFAULT_GROW
    if args.inpaint_classes is not None:
        args.inpaint_classes = tuple(n.strip() for n in args.inpaint_classes.split(",") if n.strip())
        if not args.inpaint_classes:
            parser.error("--inpaint-classes: name at least one class, e.g. CR,HPX")
    args.inpaint = args.inpaint or args.inpaint_classes is not None or args.inpaint_model is not None
    # Tile options are checked here, before the model loads (seconds), each naming its option.
    for name, low in (("tile", 1), ("margin", 0), ("blend", 0), ("batch_size", 1)):
        if getattr(args, name) < low:
            parser.error(f"--{name.replace('_', '-')}: must be >= {low}, got {getattr(args, name)}")
    if args.tile - 2 * args.margin <= args.blend:
        parser.error(
            f"--tile {args.tile}, --margin {args.margin}, --blend {args.blend}: the tile must exceed "
            f"twice the margin plus the blend"
        )
    if args.workers < 0:
        parser.error(f"--workers: must be >= 0, got {args.workers}")
    if args.workers and args.scheduler:
        parser.error("--workers and --scheduler: choose one")
    return args


def _build(model_path, folder, thresholds, priors, inpaint_model=None, inpaint_classes=None, runtime="auto"):
    from segnet.serving.prediction import FramePredictor

    return FramePredictor(
        model_path,
        folder,
        thresholds_file=thresholds,
        priors_file=priors,
        inpaint_model=inpaint_model,
        inpaint_classes=inpaint_classes,
        runtime=runtime,
    )


def _job(
    path, options, model_path, folder, thresholds, priors, inpaint_model=None, inpaint_classes=None, runtime="auto"
):
    """Process one file in a worker (process pool or Dask); the model is loaded once per process."""
    from foundation.fits_io import InputError

    key = (str(model_path), str(thresholds), str(priors), str(inpaint_model), inpaint_classes, runtime)
    if key not in _WORKER:
        _WORKER[key] = _build(model_path, folder, thresholds, priors, inpaint_model, inpaint_classes, runtime)
    try:
        return str(path), str(_WORKER[key].process(Path(path), options)), None
    except InputError as exc:
        return str(path), None, str(exc)


def _threads_for(workers: int):
    """Share the cores between worker processes (set before TensorFlow starts)."""
    n = str(max(1, (os.cpu_count() or 1) // workers))
    os.environ["TF_NUM_INTRAOP_THREADS"] = n
    os.environ["TF_NUM_INTEROP_THREADS"] = "1"
    os.environ["OMP_NUM_THREADS"] = n


def main(argv=None) -> int:
    args = parse_args(argv)
    set_verbose(args.verbose)
    stop_on_sigterm()
    from foundation.fits_io import expand_inputs
    from segnet.training.run_folder import NoModelError

    try:
        model_path, folder, inpaint_model = find_models(args)
    except NoModelError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    files, failures = expand_inputs(args.inputs)
    outdir = Path(args.outdir)
    if outdir.exists() and not outdir.is_dir():
        print(f"error: -o {outdir}: exists and is not a folder", file=sys.stderr)
        return 2
    outdir.mkdir(parents=True, exist_ok=True)
    options = options_of(args, outdir)
    job_args = (options, model_path, folder, args.thresholds, args.priors, inpaint_model, args.inpaint_classes)
    job_args += (args.runtime,)
    results = []
    try:
        run_jobs(args, files, job_args, results)
    except ValueError as exc:  # bad --thresholds / --priors / --inpaint-classes: nothing can be processed
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        written = sum(1 for _, out, _ in results if out)
        print(f"\ninterrupted: {written} of {len(files)} written; the file being written was removed", file=sys.stderr)
        return 130
    failures += [error for _, _, error in results if error]
    print("".join(f"error: {error}\n" for error in failures), end="", file=sys.stderr)
    written = sum(1 for _, out, _ in results if out)
    print(f"{written} written to {outdir}, {len(failures)} failed", flush=True)
    return 1 if failures else 0


def find_models(args):
    """(segmentation model file, its folder, inpainting model or None); NoModelError says what is missing."""
    from segnet.training.run_folder import DEFAULT_MODEL_DIR, NoModelError, resolve_model

    try:
        model_path, folder = resolve_model(args.model or DEFAULT_MODEL_DIR)
    except NoModelError as exc:
        hint = (
            ""
            if args.model
            else (
                " (no default model is shipped yet: train one with "
                "'python train.py --config multiclass.yaml' and pass --model runs/<run>)"
            )
        )
        raise NoModelError(f"{exc}{hint}") from None
    if not args.inpaint:
        return model_path, folder, None
    from segnet.inpainting.apply import resolve_inpaint_model

    try:
        return model_path, folder, resolve_inpaint_model(args.inpaint_model or folder / "inpaint")
    except NoModelError as exc:
        raise NoModelError(f"--inpaint: {exc}") from None


def options_of(args, outdir: Path):
    from foundation.tiling import TileSettings
    from segnet.serving.prediction import PredictOptions

    return PredictOptions(
        outdir=outdir,
        hdu=args.hdu,
        all_hdus=args.all_hdus,
        overwrite=args.overwrite,
        compress=args.compress,
        saturation=args.saturation,
        bad_pixel_mask=args.bad_pixel_mask,
        inpaint_grow=args.inpaint_grow,
        settings=TileSettings(args.tile, args.margin, args.blend, args.batch_size),
    )


def run_jobs(args, files, job_args, results: list) -> None:
    """Every file through a FramePredictor: here, in worker processes or on a Dask cluster.

    Appends (input, output or None, error or None) to ``results`` as files finish.
    """
    from tqdm import tqdm

    from foundation.fits_io import InputError

    def bar_of(total, desc):
        return tqdm(total=total, desc=desc, disable=args.quiet, file=sys.stdout)

    if args.scheduler:
        from dask.distributed import Client, as_completed

        with Client(args.scheduler) as client, bar_of(len(files), "files") as bar:
            futures = client.map(_job, [str(f) for f in files], *[[a] * len(files) for a in job_args], pure=False)
            for future in as_completed(futures):
                results.append(future.result())
                bar.update(1)
        return
    if args.workers:
        import concurrent.futures as cf
        import multiprocessing

        _threads_for(args.workers)
        context = multiprocessing.get_context("spawn")
        with cf.ProcessPoolExecutor(args.workers, mp_context=context) as pool, bar_of(len(files), "files") as bar:
            futures = [pool.submit(_job, str(f), *job_args) for f in files]
            for future in cf.as_completed(futures):
                results.append(future.result())
                bar.update(1)
        return
    options = job_args[0]
    predictor = _build(*job_args[1:])
    single = len(files) == 1
    total = predictor.tiles(files[0], options) if single else len(files)
    with bar_of(total, "tiles" if single else "files") as bar:
        for f in files:
            try:
                out = predictor.process(f, options, progress=bar.update if single else None)
                results.append((str(f), str(out), None))
            except InputError as exc:
                results.append((str(f), None, str(exc)))
            if not single:
                bar.update(1)


if __name__ == "__main__":
    sys.exit(main())

"""Evaluate a trained model on held-out simulated tiles: ROC, TPR at fixed FPR, MCC, calibration.

    python evaluate.py                       # the latest run under runs/, else the shipped model
    python evaluate.py --run runs/multiclass-20261122-0130 --n 400
    python evaluate.py --run runs/smoke --no-baseline
    python evaluate.py --run models/default/inpaint      # an inpainting run (segnet/inpainting/)
    python evaluate.py --real [DIR] [--out OUT]          # real frames (default: the development set's
                                                         # evaluation frames, data/real/fetch.py)

Prints one markdown table per class (overall and per field family; for CR also
astroscrappy/LACosmic on the same tiles), and writes into the run folder:
``calibration.yaml`` (the pixel calibration, segnet/calibration/pixel.py, fitted on
``--calibration-tiles`` tiles of the validation split; every figure is then that of the
calibrated probabilities, and the report also gives the network's own AUC and MCC),
``thresholds.yaml`` (class -> threshold that maximises the MCC on ``--threshold-tiles``
tiles of the validation split, used by predict.py; the tables' "MCC at threshold" is
the test tiles' MCC there, so it is not tuned on the tiles it is measured on) and
``evaluation/`` with report.md, metrics.csv, metrics.json, roc.png and reliability.png.

An inpainting run (its config has an ``inpaint:`` section) is evaluated on clean-truth
tiles of ``--tile`` px instead: MSE per class and per field family and aperture
photometry of stars under the masks, against LACosmic's masked median and the
biharmonic fill, and the runtimes per 100 tiles; written to ``evaluation/`` (report.md,
metrics.json, examples.png). The tiles come from the run's own families (split 'test');
with ``--heldout``, from configs/heldout.yaml's family, which no training config uses; with
``--real [DIR]``, from real frames with contaminants injected (the development set's
evaluation frames, or DIR's FITS files), the frame itself being the truth.

With ``--real``, the model is measured on real frames instead (segnet/evaluation/real/): contaminants
injected into each frame and recovered, star cores flagged, what it flags on the frame as it
is; beside astroscrappy and, where installed, MaxiMask, deepCR and Cosmic-CoNN. Writes
``OUT/real_report.md``, ``OUT/real_metrics.json`` and a PNG per frame (default OUT: the run
folder's ``evaluation/real/``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from foundation.process import set_verbose, stop_on_sigterm


def parse_args(argv):
    from segnet.inpainting.defaults import DEFAULT_GROW

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", help="run folder or .keras file (default: latest run, else models/default)")
    parser.add_argument("--n", type=int, default=200, help="held-out test tiles (default 200)")
    parser.add_argument(
        "--threshold-tiles",
        type=int,
        default=100,
        help="validation tiles the thresholds are chosen on (default 100; 0: on the test tiles)",
    )
    parser.add_argument(
        "--calibration-tiles",
        type=int,
        default=100,
        help="validation tiles the pixel calibration is fitted on (default 100; 0: none, the "
        "network's own outputs, and any calibration.yaml of the run is removed)",
    )
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--no-baseline", action="store_true", help="skip astroscrappy (LACosmic)")
    parser.add_argument("--tile", type=int, default=256, help="inpainting runs: test tile side, px (default 256)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument("-v", "--verbose", action="store_true", help="let TensorFlow's start-up log lines through")
    parser.add_argument(
        "--real",
        nargs="?",
        const="",
        metavar="DIR",
        help="real frames: every FITS file in DIR (default: the development set's evaluation "
        "frames, fetched by data/real/fetch.py)",
    )
    parser.add_argument(
        "--out",
        help="--real: output folder (default: the run folder's evaluation/real/; inpainting runs: evaluation/)",
    )
    parser.add_argument(
        "--draws",
        type=int,
        default=2,
        help="--real: injected versions of each frame with every contaminant but FRG (default 2)",
    )
    parser.add_argument(
        "--peers",
        nargs="*",
        default=None,
        metavar="TOOL",
        help="--real: peers to run beside the model (default: astroscrappy maximask deepcr "
        "cosmic-conn, those installed; ours-auto: the model with --priors auto)",
    )
    parser.add_argument(
        "--masks",
        choices=("truth", "predicted"),
        default="truth",
        help="inpainting runs: the holes every method fills: the true masks (default), or end to end the "
        "flags of a segmentation model (--mask-model) at its thresholds",
    )
    parser.add_argument("--mask-model", help="--masks predicted: run or model folder (default: the shipped model)")
    parser.add_argument(
        "--inpaint-grow",
        type=int,
        metavar="PX",
        help=f"--masks predicted: grow the flags by PX px but not into OBJ, as predict.py (default {DEFAULT_GROW})",
    )
    parser.add_argument(
        "--heldout",
        action="store_true",
        help="inpainting runs: tiles of configs/heldout.yaml's field family, held out of every training config",
    )
    args = parser.parse_args(argv)
    if args.heldout and args.real is not None:
        parser.error("--heldout and --real: give one")
    if args.inpaint_grow is not None and args.inpaint_grow < 0:
        parser.error(f"--inpaint-grow: must be >= 0 px, got {args.inpaint_grow}")
    if (args.mask_model or args.inpaint_grow is not None) and args.masks != "predicted":
        parser.error("--mask-model and --inpaint-grow: only with --masks predicted")
    if args.inpaint_grow is None:
        args.inpaint_grow = DEFAULT_GROW
    for name in ("threshold_tiles", "calibration_tiles"):
        if getattr(args, name) < 0:
            parser.error(f"--{name.replace('_', '-')}: must be >= 0, got {getattr(args, name)}")
    for name in ("n", "batch_size", "tile", "draws"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')}: must be >= 1, got {getattr(args, name)}")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    set_verbose(args.verbose)
    stop_on_sigterm()
    from foundation.typed_config import ConfigError
    from segnet.training.config import load_run_config
    from segnet.training.run_folder import NoModelError, resolve_model

    # What to evaluate: a model file and the run folder that describes it.
    try:
        model_path, folder = resolve_model(args.run)
        config, _ = load_run_config(folder / "config.yaml")
    except (NoModelError, ConfigError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.heldout and config.task != "inpaint":
        print(f"error: --heldout: only for inpainting runs; {folder} holds a segmentation model", file=sys.stderr)
        return 2
    if args.out is not None and args.real is None and config.task != "inpaint":
        print("error: --out: only with --real or for inpainting runs", file=sys.stderr)
        return 2
    try:
        if config.task == "inpaint":
            return evaluate_inpainting(args, model_path, folder, config)
        if args.real is not None:
            return evaluate_real(args, model_path, folder, config)
        return evaluate_simulated(args, model_path, folder, config)
    except ValueError as exc:  # a model that cannot serve, a bad run folder, ...
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(
            "\ninterrupted: results are written only when the evaluation finishes; none were",
            file=sys.stderr,
            flush=True,
        )
        return 130


def evaluate_simulated(args, model_path, folder, config) -> int:
    """The segmentation model on held-out simulated tiles: calibration, thresholds, tables and files."""
    from tqdm import tqdm

    import segnet.evaluation.report as report
    import segnet.evaluation.tiles as evaluation
    from data_sim.generator import SampleSource
    from segnet.calibration.pixel import FILE_NAME as CALIBRATION_FILE
    from segnet.network.model import model_class_names
    from segnet.training.run_folder import load_model

    model = load_model(model_path)
    if tuple(model_class_names(model)) != tuple(config.classes):
        print(
            f"error: {model_path} predicts {model_class_names(model)} but {folder / 'config.yaml'} "
            f"lists {list(config.classes)}",
            file=sys.stderr,
        )
        return 2
    source = SampleSource(config.data_section, config.train.seed, split="test")
    print(
        f"model: {model_path}\ntest set: {args.n} tiles of {config.data.tile}x{config.data.tile}, "
        f"split 'test', seed {config.train.seed}",
        flush=True,
    )

    # --- The pixel calibration, then the thresholds of the calibrated probabilities, both on validation
    # tiles, so that the test figures are honest ones.
    validation = SampleSource(config.data_section, config.train.seed, split="validation")
    calibration = None
    if args.calibration_tiles:
        from segnet.calibration.pixel import EPOCHS

        # One bar: the validation tiles through the network, then the perceptron's training epochs.
        with tqdm(
            total=args.calibration_tiles + EPOCHS, desc="calibration", disable=args.quiet, file=sys.stdout
        ) as bar:
            calibration = evaluation.fit_calibration(
                model, validation, args.calibration_tiles, batch_size=args.batch_size, progress=bar.update
            )
    thresholds = None
    if args.threshold_tiles:
        with tqdm(total=args.threshold_tiles, desc="thresholds", disable=args.quiet, file=sys.stdout) as bar:
            chosen = evaluation.evaluate_model(
                model,
                validation,
                args.threshold_tiles,
                calibration=calibration,
                batch_size=args.batch_size,
                progress=bar.update,
            )
        thresholds = report.thresholds(chosen)

    # --- Our model, then astroscrappy on the same tiles.
    with tqdm(total=args.n, desc="model", disable=args.quiet, file=sys.stdout) as bar:
        result = evaluation.evaluate_model(
            model, source, args.n, batch_size=args.batch_size, calibration=calibration, progress=bar.update
        )
    result.thresholds, result.threshold_tiles = thresholds, args.threshold_tiles
    timing = None
    if not args.no_baseline and "CR" in config.classes:
        try:
            import astroscrappy  # noqa: F401
        except ImportError:
            print("astroscrappy is not installed: no LACosmic baseline (pip install -e .)")
        else:
            with tqdm(total=args.n, desc="astroscrappy", disable=args.quiet, file=sys.stdout) as bar:
                result.baseline = evaluation.evaluate_astroscrappy(source, args.n, progress=bar.update)
            timing = evaluation.time_per_100(model, source, batch_size=args.batch_size, calibration=calibration)

    # --- Tables and files.
    table = report.result_rows(result)
    text = report.markdown_tables(table) + report.uncalibrated_table(result)
    mpix = result.n_tiles * config.data.tile**2 / 1e6
    speed = [
        f"Model: {mpix / result.model_seconds:.3f} Mpix/s over the test set (forward passes and the pixel "
        "calibration, no data generation)."
    ]
    if timing:
        speed.append(
            f"100 tiles of {timing['tile']}x{timing['tile']}: model {timing['model_seconds']:.2f} s "
            f"({timing['model_mpix_per_s']:.3f} Mpix/s), astroscrappy {timing['astroscrappy_seconds']:.2f} s "
            f"({timing['astroscrappy_mpix_per_s']:.3f} Mpix/s, sigclip 4.5); model speed / astroscrappy "
            f"speed = {timing['astroscrappy_seconds'] / timing['model_seconds']:.2f}"
        )
    print("\n" + text + "\n" + "\n".join(speed))

    out = folder / "evaluation"
    out.mkdir(exist_ok=True)
    chosen_on = f"{args.threshold_tiles} tiles of the validation split" if args.threshold_tiles else "these test tiles"
    calibrated = (
        f"Probabilities: the network's, through the pixel calibration (calibration.yaml) fitted on "
        f"{args.calibration_tiles} tiles of the validation split."
        if calibration is not None
        else "Probabilities: the network's own outputs (no pixel calibration)."
    )
    (out / "report.md").write_text(
        f"# Evaluation of {model_path.name}\n\n{args.n} held-out tiles (split 'test', "
        f"seed {config.train.seed}). {calibrated} Thresholds (thresholds.yaml, "
        f"'MCC at threshold'): MCC-optimal on {chosen_on}.\n\n{text}\n" + "\n".join(speed) + "\n"
    )
    report.write_csv(table, out / "metrics.csv")
    report.write_json(
        {
            "model": str(model_path),
            "n_tiles": args.n,
            "tile": config.data.tile,
            "classes": table,
            "astroscrappy": result.baseline,
            "timing": timing,
            "thresholds": report.thresholds(result),
        },
        out / "metrics.json",
    )
    report.plot_roc(result, out / "roc.png")
    report.plot_reliability(result, out / "reliability.png")
    report.write_thresholds(result, folder / "thresholds.yaml")
    calibration_file = folder / CALIBRATION_FILE
    if calibration is not None:
        calibration.save(calibration_file, note=f"Model {model_path.name}; written by evaluate.py.")
    elif calibration_file.exists():
        calibration_file.unlink()  # thresholds of the raw outputs must not meet an older calibration
        print(f"removed {calibration_file} (--calibration-tiles 0)")
    print(
        f"\nwrote {folder / 'thresholds.yaml'}{', ' + str(calibration_file) if calibration else ''} and {out}/ "
        "(report.md, metrics.csv, metrics.json, roc.png, reliability.png)"
    )
    return 0


def evaluate_real(args, model_path, folder, config) -> int:
    """The model (and astroscrappy, and the installed peers) on real frames; see segnet/evaluation/real/."""
    from pathlib import Path

    from foundation.devset import DevSetError, frames_to_evaluate
    from segnet.evaluation.real.benchmark import run_benchmark
    from segnet.evaluation.real.tools import DEFAULT_PEERS, load_tools

    peers = DEFAULT_PEERS if args.peers is None else tuple(args.peers)
    from bench.peers import PEERS, VARIANTS

    unknown = [p for p in peers if p not in PEERS + VARIANTS]
    if unknown:
        print(f"error: --peers: unknown tool {unknown[0]!r} (known: {', '.join(PEERS + VARIANTS)})", file=sys.stderr)
        return 2
    try:
        frames = frames_to_evaluate(Path(args.real) if args.real else None)
    except DevSetError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    out = Path(args.out) if args.out else folder / "evaluation" / "real"
    print(
        f"model: {model_path}\nreal frames: {len(frames)} ({', '.join(f.name for f in frames)}); "
        f"{args.draws} injected draws each + one fringe draw",
        flush=True,
    )
    tools = load_tools(model_path, folder, peers)
    print("tools: " + ", ".join(t.name for t in tools), flush=True)
    say = None if args.quiet else (lambda text: print(f"  done: {text}", flush=True))
    command = "python evaluate.py " + " ".join(sys.argv[1:])
    shown = model_path.resolve()
    shown = shown.relative_to(Path.cwd()) if shown.is_relative_to(Path.cwd()) else shown
    doc = run_benchmark(
        frames,
        tools,
        config.data,
        config.classes,
        out,
        model_path=str(shown),
        command=command,
        draws=args.draws,
        progress=say,
    )
    from segnet.evaluation.real.report import tools_table

    print("\n" + tools_table(doc, None))
    print(f"\nwrote {out}/ (real_report.md, real_metrics.json, a PNG per frame)")
    return 0


def evaluate_inpainting(args, model_path, folder, config) -> int:
    """The network against the masked median and biharmonic fills, on clean-truth test tiles."""
    from tqdm import tqdm

    from data_sim.config import DataSection
    from data_sim.generator import SampleSource
    from segnet.inpainting import report
    from segnet.inpainting.apply import Inpainter
    from segnet.inpainting.evaluation import evaluate_inpainting as run
    from segnet.inpainting.evaluation import examples

    inpainter = Inpainter(model_path)
    data, frames_text, real_split, prefix = inpainting_tiles(args, config)
    section = DataSection(classes=config.classes, data=data)
    source = SampleSource(section, config.train.seed, split="test", clean=True, real_split=real_split)
    replace = config.inpaint.replace
    mask_of, masks_text, suffix = None, "the true masks of the replaced classes", prefix
    if args.masks == "predicted":
        mask_of, masks_text, replaced = predicted_masks(args)
        replace = tuple(c for c in replaced if c in config.classes)  # the classes the tiles have a truth of
        suffix = f"{prefix}_predicted_grow{args.inpaint_grow}"
    print(
        f"model: {model_path}\ntest set: {args.n} tiles of {args.tile}x{args.tile} of {frames_text}, split 'test', "
        f"seed {config.train.seed}; replaced: {', '.join(replace)}; masks: {masks_text}",
        flush=True,
    )
    with tqdm(total=args.n, desc="inpainting", disable=args.quiet, file=sys.stdout) as bar:
        result = run(
            inpainter, source, args.n, replace=replace, batch_size=args.batch_size, progress=bar.update, mask_of=mask_of
        )
    text = report.markdown(result)
    print("\n" + text)
    out = Path(args.out) if args.out else folder / "evaluation"
    out.mkdir(parents=True, exist_ok=True)
    (out / f"report{suffix}.md").write_text(
        f"# Inpainting evaluation of {model_path.name}\n\n{args.n} held-out tiles of "
        f"{args.tile}x{args.tile} of {frames_text} (split 'test', seed {config.train.seed}). Truth: each "
        f"tile's clean twin (same scene and noise, no contaminant; on real frames the frame itself); "
        f"masks: {masks_text}; see segnet/inpainting/evaluation.py.\n\n{text}\n![examples](examples{suffix}.png)\n"
    )
    report.write_json(result, out / f"metrics{suffix}.json")
    shown = examples(inpainter, source, args.n, replace=replace, mask_of=mask_of)
    report.plot_examples(shown, out / f"examples{suffix}.png")
    print(f"wrote {out}/ (report{suffix}.md, metrics{suffix}.json, examples{suffix}.png)")
    return 0


def inpainting_tiles(args, config):
    """(data config, description, real-frame split, file-name prefix) of the tiles an inpainting run is scored on."""
    import dataclasses

    from data_sim.config import RealFramesConfig, load_sim_section
    from foundation.resources import configs_dir

    if args.heldout:
        path = configs_dir() / "heldout.yaml"
        data = load_sim_section(path).data
        text = f"the held-out field family of {path.name} ({', '.join(data.families)})"
        return dataclasses.replace(data, tile=args.tile), text, "train", "_heldout"
    if args.real is not None:
        from data_sim.real_frames import DEFAULT_DEVSET

        if args.real:
            frames = RealFramesConfig(glob=str(Path(args.real) / "*.fits*"), weight=1.0, ignore_own=True)
            text = f"the FITS files of {args.real}, contaminants injected"
        else:
            frames = RealFramesConfig(devset=str(DEFAULT_DEVSET), weight=1.0, ignore_own=True)
            text = "the development set's evaluation frames, contaminants injected"
        data = dataclasses.replace(config.data, tile=args.tile, families={}, real_frames=frames)
        return data, text, "eval", "_real"
    return dataclasses.replace(config.data, tile=args.tile), "the run's own field families", "train", ""


def predicted_masks(args):
    """(mask_of, description, replaced classes): a segmentation model's own flags, grown as asked, of
    the classes ``predict.py --inpaint`` replaces by default, as a user gets them."""
    from segnet.inpainting.defaults import default_replaced
    from segnet.inpainting.masks import flagged_mask
    from segnet.serving.api import load_masker

    masker = load_masker(args.mask_model)
    replace = default_replaced(masker.classes)

    def mask_of(sample):
        flags = masker(sample.image, bad_pixels=sample.saturated).flags
        return flagged_mask(flags, masker.classes, replace, args.inpaint_grow)

    text = (
        f"the flags of {args.mask_model or 'the shipped model'} at its thresholds of the classes predict.py "
        f"--inpaint replaces by default ({', '.join(replace)}), grown by {args.inpaint_grow} px"
    )
    return mask_of, text, replace


if __name__ == "__main__":
    sys.exit(main())

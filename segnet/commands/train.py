"""Train the SegNet (or, from a config with an ``inpaint:`` section, the inpainting network).

    python train.py --config multiclass.yaml            # a bare name is looked up in configs/
    python train.py --config path/to/my.yaml --run-dir runs/mine
    python train.py --resume runs/multiclass-20261122-013000   # continue an interrupted run
    python train.py --config inpaint.yaml               # the inpainting network (segnet/inpainting/)

Settings come from the config only (see segnet/training/config.py); the run folder
describes itself (segnet/training/run_folder.py). A resumed run reaches exactly the
weights an uninterrupted one would: batches depend only on their indices and
the checkpoint carries the optimizer state.
"""

from __future__ import annotations

import argparse
import sys
import time

from foundation.process import Interrupted, import_keras, set_verbose, stop_asked, stop_on_sigterm
from foundation.typed_config import ConfigError


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument("--config", help="run config (YAML); a bare name is looked up in configs/")
    what.add_argument("--resume", metavar="RUN_DIR", help="continue the run in this folder")
    parser.add_argument("--run-dir", help="folder for a new run (default: runs/<config>-<time>)")
    parser.add_argument(
        "--stop-after",
        type=int,
        metavar="EPOCHS",
        help="stop after this many epochs in this invocation (continue later with --resume)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument("-v", "--verbose", action="store_true", help="let TensorFlow's start-up log lines through")
    args = parser.parse_args(argv)
    if args.stop_after is not None and args.stop_after < 1:
        parser.error(f"--stop-after: must be >= 1, got {args.stop_after}")
    return args


def learning_rate(train):
    """Adam's learning rate: constant or cosine decay to 1%, after an optional linear warm-up."""
    import keras

    total = train.epochs * train.steps_per_epoch
    if train.schedule == "constant" and train.warmup_steps == 0:
        return train.learning_rate
    alpha = 1.0 if train.schedule == "constant" else 0.01
    return keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=0.0 if train.warmup_steps else train.learning_rate,
        decay_steps=max(total - train.warmup_steps, 1),
        alpha=alpha,
        warmup_target=train.learning_rate if train.warmup_steps else None,
        warmup_steps=train.warmup_steps,
    )


class RunProgress:
    """One progress bar over every step left in this invocation, so its ETA is the run's, not the epoch's.

    ``callback`` is the Keras callback that advances it. On a terminal the bar redraws in place;
    into a file (a background run's log) it is off, and each epoch prints one line instead.
    """

    def __init__(self, first_epoch: int, last_epoch: int, steps_per_epoch: int, *, quiet: bool):
        import keras
        from tqdm import tqdm

        self.quiet = quiet
        self.bar = tqdm(
            total=(last_epoch - first_epoch) * steps_per_epoch,
            desc=f"epochs {first_epoch + 1}-{last_epoch}",
            unit="step",
            disable=quiet or not sys.stdout.isatty(),
            file=sys.stdout,
        )
        outer = self

        class _Callback(keras.callbacks.Callback):
            def on_train_batch_end(self, batch, logs=None):
                outer.bar.update(1)
                if logs and "loss" in logs:
                    outer.bar.set_postfix(loss=f"{float(logs['loss']):.4f}", refresh=False)

        self.callback = _Callback()

    def epoch_line(self, epoch: int, epochs: int, metrics: dict) -> None:
        if not self.quiet:
            losses = ", ".join(f"{k} {metrics[k]:.4f}" for k in ("loss", "val_loss") if k in metrics)
            self.bar.write(f"epoch {epoch + 1}/{epochs}: {losses}, {metrics['seconds']:.0f} s")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.bar.close()


def segmentation_data(config, run):
    """SegNet batches: class fractions (measured once, kept with the run) set the loss weights.

    Returns (batches_for(first_index) -> PyDataset of one epoch, validation PyDataset).
    """
    from data_sim.generator import SampleSource
    from segnet.training.dataset import FixedBatches, TileBatches, loss_weights, measure_class_fractions

    train, section = config.train, config.data_section
    fractions = run.read_fractions()
    if fractions is None:
        print(f"measuring class fractions on {train.fraction_samples} tiles ...", flush=True)
        fractions = measure_class_fractions(
            SampleSource(section, train.seed, split="fractions"), train.fraction_samples
        )
        run.write_fractions(fractions)
    class_w, background_w = loss_weights(fractions, config.classes, train.max_weight_ratio)
    validation = FixedBatches(
        SampleSource(section, train.seed, split="validation"),
        train.validation_samples,
        train.batch_size,
        class_w,
        background_w,
    )
    source = SampleSource(section, train.seed, split="train")

    def batches_for(first_index):
        return TileBatches(
            source,
            first_index=first_index,
            n_batches=train.steps_per_epoch,
            batch_size=train.batch_size,
            class_w=class_w,
            background_w=background_w,
            workers=train.data_workers,
        )

    return batches_for, validation


def inpainting_data(config):
    """Inpainting batches: tiles with their clean truth, masks of their contaminants plus borrowed ones."""
    from data_sim.generator import SampleSource
    from segnet.inpainting.data import FixedInpaintBatches, InpaintBatches

    train, section = config.train, config.data_section
    validation = FixedInpaintBatches(
        SampleSource(section, train.seed, split="validation", clean=True),
        train.validation_samples,
        train.batch_size,
        config.inpaint,
    )
    source = SampleSource(section, train.seed, split="train", clean=True)

    def batches_for(first_index):
        return InpaintBatches(
            source,
            first_index=first_index,
            n_batches=train.steps_per_epoch,
            batch_size=train.batch_size,
            inpaint=config.inpaint,
            workers=train.data_workers,
        )

    return batches_for, validation


def build_model(config):
    """A new model for the run's task and its loss."""
    m = config.model
    sizes = dict(
        depth=m.depth,
        base_filters=m.base_filters,
        convs_per_level=m.convs_per_level,
        batch_norm=m.batch_norm,
        kernel_size=m.kernel_size,
    )
    if config.task == "inpaint":
        from segnet.network.inpainting import MaskedMSE, build_inpainter

        return build_inpainter(**sizes), MaskedMSE(delta=config.inpaint.huber_delta)
    from segnet.network.model import build_segnet
    from segnet.training.losses import WeightedSigmoidCrossEntropy

    return build_segnet(class_names=config.classes, **sizes), WeightedSigmoidCrossEntropy()


def main(argv=None) -> int:
    args = parse_args(argv)
    set_verbose(args.verbose)
    stop_on_sigterm()
    try:
        run, config = open_run(args)
        print(f"run folder: {run.path}", flush=True)
        keras = import_keras()
        keras.utils.set_random_seed(config.train.seed)
        if config.train.deterministic and keras.backend.backend() == "tensorflow":
            import tensorflow as tf

            tf.config.experimental.enable_op_determinism()
        batches_for, validation = (
            inpainting_data(config) if config.task == "inpaint" else segmentation_data(config, run)
        )
        model = prepare_model(config, run)
    except (ConfigError, FileExistsError, FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    last_epoch = (
        config.train.epochs if args.stop_after is None else min(config.train.epochs, run.epochs_done + args.stop_after)
    )
    try:
        train_epochs(model, run, config, batches_for, validation, last_epoch, quiet=args.quiet)
    except KeyboardInterrupt:
        print(
            f"\ninterrupted: {run.epochs_done} epochs are saved in {run.path}; continue with: "
            f"python train.py --resume {run.path}",
            file=sys.stderr,
            flush=True,
        )
        return 130
    if last_epoch == config.train.epochs:
        run.finish(model)
        print(f"done: {run.model_file}", flush=True)
    else:
        print(f"stopped after epoch {last_epoch}; continue with: python train.py --resume {run.path}", flush=True)
    return 0


def open_run(args):
    """(run folder, config): a new run from ``--config``, or the one being resumed with the config it saved."""
    from segnet.training.config import load_run_config
    from segnet.training.run_folder import RunFolder

    if args.resume:
        run = RunFolder.open(args.resume)
        return run, run.config
    config, path = load_run_config(args.config)
    return RunFolder.create(config, name=path.stem, path=args.run_dir), config


def prepare_model(config, run):
    """A compiled model: the last checkpoint with its optimizer state, or a new one (warm-started if asked)."""
    import keras

    from segnet.training.distribute import distribution_scope
    from segnet.training.run_folder import NoModelError, load_model, resolve_model
    from segnet.training.warm_start import transfer_weights

    train = config.train
    with distribution_scope(config.distribute):
        if run.epochs_done > 0:
            print(f"resuming after epoch {run.epochs_done} from {run.checkpoint}", flush=True)
            return load_model(run.checkpoint)
        model, loss = build_model(config)
        if train.init_from:
            try:
                source_file, _ = resolve_model(train.init_from)
            except NoModelError as exc:
                raise ValueError(f"train.init_from: {exc}") from None
            report = transfer_weights(load_model(source_file), model).summary()
            print(f"initial weights from {source_file}: {report}", flush=True)
        model.compile(optimizer=keras.optimizers.Adam(learning_rate(train)), loss=loss, jit_compile=False)
    return model


def train_epochs(model, run, config, batches_for, validation, last_epoch: int, *, quiet: bool) -> None:
    """One fit() per epoch on batches fixed by their indices; a checkpoint after each."""
    import keras

    train = config.train
    progress = RunProgress(run.epochs_done, last_epoch, train.steps_per_epoch, quiet=quiet)
    callbacks = [progress.callback]
    if keras.backend.backend() == "tensorflow":
        callbacks.append(keras.callbacks.TensorBoard(log_dir=str(run.path / "tensorboard")))
    samples_per_epoch = train.steps_per_epoch * train.batch_size
    with progress:
        for epoch in range(run.epochs_done, last_epoch):
            start = time.perf_counter()
            history = model.fit(
                batches_for(epoch * samples_per_epoch),
                validation_data=validation,
                initial_epoch=epoch,
                epochs=epoch + 1,
                callbacks=callbacks,
                verbose=0,
                shuffle=False,
            )
            if stop_asked():  # SIGTERM inside fit(), whose exception a library may have swallowed
                raise Interrupted()
            metrics = {k: v[-1] for k, v in history.history.items()}
            metrics["learning_rate"] = float(keras.ops.convert_to_numpy(model.optimizer.learning_rate))
            metrics["seconds"] = time.perf_counter() - start
            run.record_epoch(model, epoch, metrics)
            progress.epoch_line(epoch, train.epochs, metrics)


if __name__ == "__main__":
    sys.exit(main())

"""train.py: config validation, the smoke run, resume, MirroredStrategy, the JAX backend."""

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

import train
from foundation.typed_config import ConfigError
from segnet.training.config import RunConfig, dump_run_config, load_run_config

ROOT = Path(__file__).resolve().parent.parent
SMOKE = yaml.safe_load((ROOT / "configs" / "smoke.yaml").read_text())


def write_config(tmp_path, **overrides):
    mapping = {k: (dict(v) if isinstance(v, dict) else v) for k, v in SMOKE.items()}
    for section, values in overrides.items():
        mapping[section] = {**mapping.get(section, {}), **values}
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(mapping))
    return path


def weights(run_dir, name="checkpoints/last.keras"):
    from segnet.training.run_folder import load_model

    model = load_model(Path(run_dir) / name)
    return model, [np.asarray(w) for w in model.get_weights()]


@pytest.mark.parametrize(
    "mapping,message",
    [
        ({"model": {"dept": 3}}, r"model\.dept: unknown key \(known keys: base_filters, batch_norm"),
        ({"train": {"batch_size": "8"}}, r"train\.batch_size: expected an integer, got '8'"),
        ({"train": {"learning_rate": -1}}, r"train\.learning_rate: must be > 0, got -1"),
        ({"train": {"schedule": "step"}}, r"train\.schedule: must be one of \['constant', 'cosine'\], got 'step'"),
        ({"model": {"kernel_size": 4}}, r"model\.kernel_size: must be odd, got 4"),
        ({"distribute": {"strategy": "horovod"}}, r"distribute\.strategy: must be one of"),
        (
            {"data": {"contaminants": {"CR": {"deposit": [1, "x"]}}}},
            r"data\.contaminants\.CR\.deposit\[1\]: expected a number, got 'x'",
        ),
        ({"trian": {}}, r"trian: unknown key"),
    ],
)
def test_config_errors_name_the_key_path(mapping, message):
    with pytest.raises(ConfigError, match=message):
        load_run_config(mapping)


def test_shipped_run_configs_load_and_round_trip():
    paths = sorted((ROOT / "configs").rglob("*.yaml"))
    assert {p.stem for p in (ROOT / "configs" / "one_vs_all").glob("*.yaml")} >= {
        "cr",
        "hcl",
        "bcl",
        "bln",
        "hpx",
        "bpx",
        "per",
        "trl",
        "frg",
    }
    for path in paths:
        config, _ = load_run_config(path)
        again, _ = load_run_config(yaml.safe_load(dump_run_config(config)))
        assert again == config, path
    assert load_run_config("multiclass.yaml")[0].classes[0] == "CR"  # bare names come from configs/


def test_a_bad_config_file_exits_with_a_clear_message(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: {epochs: 0}\n")
    assert train.main(["--config", str(bad), "--run-dir", str(tmp_path / "run")]) == 2
    assert "train.epochs: must be >= 1, got 0" in capsys.readouterr().err


def test_smoke_run_trains_and_describes_itself(tmp_path):
    run_dir = tmp_path / "run"
    assert train.main(["--config", "smoke.yaml", "--run-dir", str(run_dir), "--quiet"]) == 0
    history = [line.split(",") for line in (run_dir / "history.csv").read_text().splitlines()]
    header, rows = history[0], history[1:]
    loss = [float(r[header.index("loss")]) for r in rows]
    assert len(rows) == SMOKE["train"]["epochs"]
    assert loss[-1] < 0.9 * loss[0], loss
    for name in (
        "model.keras",
        "config.yaml",
        "classes.yaml",
        "class_fractions.yaml",
        "code_version.yaml",
        "state.yaml",
        "checkpoints/last.keras",
    ):
        assert (run_dir / name).is_file(), name
    assert any((run_dir / "tensorboard").rglob("*tfevents*"))
    config, _ = load_run_config(run_dir / "config.yaml")
    assert isinstance(config, RunConfig) and config.model.depth == SMOKE["model"]["depth"]
    fractions = yaml.safe_load((run_dir / "class_fractions.yaml").read_text())
    assert set(fractions["classes"]) == set(config.classes) and 0 < fractions["background"] < 1
    assert yaml.safe_load((run_dir / "classes.yaml").read_text()) == list(config.classes)
    version = yaml.safe_load((run_dir / "code_version.yaml").read_text())
    assert version["keras_backend"] == "tensorflow" and "git_commit" in version
    from segnet.network.model import model_class_names

    model, _ = weights(run_dir, "model.keras")
    assert model_class_names(model) == config.classes
    out = model.predict(np.zeros((1, 37, 29, 1), np.float32), verbose=0)
    assert out.shape == (1, 37, 29, len(config.classes)) and 0 <= out.min() and out.max() <= 1


def test_resume_equals_an_uninterrupted_run(tmp_path):
    cfg = write_config(tmp_path, train={"epochs": 2, "steps_per_epoch": 4})
    straight, interrupted = tmp_path / "straight", tmp_path / "interrupted"
    assert train.main(["--config", str(cfg), "--run-dir", str(straight), "--quiet"]) == 0
    assert train.main(["--config", str(cfg), "--run-dir", str(interrupted), "--quiet", "--stop-after", "1"]) == 0
    assert not (interrupted / "model.keras").exists()
    assert yaml.safe_load((interrupted / "state.yaml").read_text())["epochs_done"] == 1
    assert train.main(["--resume", str(interrupted), "--quiet"]) == 0
    model_a, a = weights(straight, "model.keras")
    model_b, b = weights(interrupted, "model.keras")
    for wa, wb in zip(a, b):
        np.testing.assert_array_equal(wa, wb)
    assert int(model_a.optimizer.iterations.numpy()) == int(model_b.optimizer.iterations.numpy()) == 8
    rows_a = (straight / "history.csv").read_text().splitlines()
    rows_b = (interrupted / "history.csv").read_text().splitlines()
    assert [r.split(",")[:3] for r in rows_a] == [r.split(",")[:3] for r in rows_b]  # epoch, loss, val_loss


def test_a_new_run_never_overwrites_an_existing_one(tmp_path, capsys):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "keep.txt").write_text("mine")
    assert train.main(["--config", "smoke.yaml", "--run-dir", str(run_dir)]) == 2
    assert "exists and is not empty" in capsys.readouterr().err
    assert (run_dir / "keep.txt").read_text() == "mine"


def test_smoke_trains_under_a_mirrored_strategy_on_the_cpu(tmp_path):
    cfg = write_config(
        tmp_path, train={"epochs": 1, "steps_per_epoch": 3}, distribute={"strategy": "mirrored", "devices": ["/cpu:0"]}
    )
    run_dir = tmp_path / "mirrored"
    assert train.main(["--config", str(cfg), "--run-dir", str(run_dir), "--quiet"]) == 0
    _, w = weights(run_dir, "model.keras")
    assert all(np.all(np.isfinite(x)) for x in w)
    assert "val_loss" in (run_dir / "history.csv").read_text()


@pytest.mark.skipif(importlib.util.find_spec("jax") is None, reason="JAX is not installed")
def test_smoke_trains_under_the_jax_backend(tmp_path):
    cfg = write_config(tmp_path, train={"epochs": 1, "steps_per_epoch": 3}, distribute={"strategy": "data_parallel"})
    env = {
        **os.environ,
        "KERAS_BACKEND": "jax",
        "XLA_FLAGS": "--xla_backend_optimization_level=0",
        "JAX_PLATFORMS": "cpu",
    }
    result = subprocess.run(
        [sys.executable, "train.py", "--config", str(cfg), "--run-dir", str(tmp_path / "jax"), "--quiet"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "data_parallel over 1 device(s)" in result.stdout
    version = yaml.safe_load((tmp_path / "jax" / "code_version.yaml").read_text())
    assert version["keras_backend"] == "jax"
    # The JAX-trained file loads under TensorFlow (this process) and predicts.
    model, _ = weights(tmp_path / "jax", "model.keras")
    assert model.predict(np.zeros((1, 16, 16, 1), np.float32), verbose=0).shape == (1, 16, 16, 10)


def test_smoke_trains_under_a_multi_worker_strategy(tmp_path):
    """One worker on loopback: MultiWorkerMirroredStrategy must start with the process, hence a subprocess."""
    import json
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cfg = write_config(tmp_path, train={"epochs": 1, "steps_per_epoch": 2}, distribute={"strategy": "multi_worker"})
    tf_config = {"cluster": {"worker": [f"127.0.0.1:{port}"]}, "task": {"type": "worker", "index": 0}}
    env = {**os.environ, "TF_CONFIG": json.dumps(tf_config)}
    result = subprocess.run(
        [sys.executable, "train.py", "--config", str(cfg), "--run-dir", str(tmp_path / "mw"), "--quiet"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "multi_worker, 1 replica(s)" in result.stdout
    assert (tmp_path / "mw" / "model.keras").is_file()


def test_strategies_check_the_backend(tmp_path):
    from segnet.training.config import DistributeConfig
    from segnet.training.distribute import distribution_scope

    with pytest.raises(ConfigError, match="'data_parallel' needs the JAX backend, this process runs 'tensorflow'"):
        distribution_scope(DistributeConfig(strategy="data_parallel"))


def test_warm_start_copies_layers_and_the_head_columns_of_shared_classes():
    from segnet.network.model import build_segnet
    from segnet.training.warm_start import transfer_weights

    sizes = dict(depth=2, base_filters=4, convs_per_level=1)
    import keras

    keras.utils.set_random_seed(1)
    old = build_segnet(class_names=["CR", "OBJ"], **sizes)
    keras.utils.set_random_seed(2)
    new = build_segnet(class_names=["CR", "OBJ", "SAT", "GHO"], **sizes)
    fresh_head = [np.array(w) for w in new.get_layer("head").get_weights()]
    report = transfer_weights(old, new)
    assert report.head_classes == ["CR", "OBJ"] and report.new_classes == ["SAT", "GHO"] and not report.skipped
    for layer in new.layers:
        if layer.get_weights() and layer.name != "head":
            for a, b in zip(layer.get_weights(), old.get_layer(layer.name).get_weights()):
                np.testing.assert_array_equal(a, b)
    kernel, bias = new.get_layer("head").get_weights()
    old_kernel, old_bias = old.get_layer("head").get_weights()
    np.testing.assert_array_equal(kernel[..., :2], old_kernel)
    np.testing.assert_array_equal(bias[:2], old_bias)
    np.testing.assert_array_equal(kernel[..., 2:], fresh_head[0][..., 2:])  # new classes keep their initialisation
    # A model of other sizes: nothing fits, everything is reported.
    other = build_segnet(class_names=["CR"], depth=2, base_filters=8, convs_per_level=1)
    assert transfer_weights(old, other).skipped


def test_a_narrower_model_starts_from_the_strongest_channels():
    """Channels whose normalisation scale is 0 output exactly 0: dropping them must not change the output.

    One kept set per level for the channels a pooling switch carries (the encoder's last
    convolution and the decoder convolution that feeds that level's unpooling), others
    chosen independently: the pruned model must then compute exactly what the wide one does.
    """
    import keras

    from segnet.network.model import build_segnet
    from segnet.training.warm_start import transfer_weights

    keras.utils.set_random_seed(3)
    wide = build_segnet(class_names=["CR", "OBJ"], depth=2, base_filters=6, convs_per_level=2)
    narrow = build_segnet(class_names=["CR", "OBJ"], depth=2, base_filters=4, convs_per_level=2)
    rng = np.random.default_rng(4)
    level = {k: rng.choice(6 * 2 ** (k - 1), 4 * 2 ** (k - 1), replace=False) for k in (1, 2)}
    kept = {"enc1_bn2": level[1], "dec2_bn2": level[1], "enc2_bn2": level[2]}
    for layer in wide.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            n = layer.gamma.shape[0]
            keep = kept.get(layer.name, rng.choice(n, n * 2 // 3, replace=False))
            gamma, beta, mean = (rng.uniform(0.5, 1.5, n), rng.normal(0, 0.3, n), rng.normal(0, 0.3, n))
            drop = np.setdiff1d(np.arange(n), keep)
            if layer.name == "dec2_bn2":
                # Strong, but unpooling pairs them with level 1's dropped switches: the kept
                # ones must be level 1's, not this layer's strongest. Inert: dec1_conv1 ignores them.
                gamma[drop] = 5.0
                kernel = wide.get_layer("dec1_conv1").get_weights()[0]
                kernel[:, :, drop, :] = 0.0
                wide.get_layer("dec1_conv1").set_weights([kernel])
            else:
                gamma[drop] = beta[drop] = mean[drop] = 0.0  # these channels output exactly 0
            layer.set_weights([gamma, beta, mean, rng.uniform(0.5, 2.0, n)])
    report = transfer_weights(wide, narrow)
    assert len(report.pruned) == 16 and not report.skipped and report.head_classes == ["CR", "OBJ"]
    x = rng.standard_normal((1, 32, 32, 1)).astype(np.float32)
    np.testing.assert_allclose(narrow.predict_on_batch(x), wide.predict_on_batch(x), atol=1e-5)


def test_a_run_starts_from_a_trained_model_and_says_so(tmp_path, capsys):
    first = tmp_path / "first"
    cfg = write_config(tmp_path, train={"epochs": 1, "steps_per_epoch": 2})
    assert train.main(["--config", str(cfg), "--run-dir", str(first), "--quiet"]) == 0
    cfg = write_config(tmp_path, train={"epochs": 1, "steps_per_epoch": 1, "init_from": str(first)})
    assert train.main(["--config", str(cfg), "--run-dir", str(tmp_path / "second"), "--quiet"]) == 0
    assert "initial weights from" in capsys.readouterr().out
    missing = write_config(tmp_path, train={"init_from": str(tmp_path / "nowhere")})
    assert train.main(["--config", str(missing), "--run-dir", str(tmp_path / "third"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "train.init_from:" in err and "nowhere" in err


def test_resuming_a_shipped_model_folder_is_one_line_error(capsys):
    assert train.main(["--resume", str(ROOT / "models" / "default")]) == 2
    err = capsys.readouterr().err
    assert "is not a training run (no state.yaml" in err and "Traceback" not in err

"""segnet.serving.shipping: a trained, evaluated run becomes a self-describing model folder."""

import shutil

import numpy as np
import pytest
import yaml

import evaluate
import segnet.serving.shipping as shipping
from segnet.training.run_folder import load_model, resolve_model


@pytest.fixture(scope="module")
def evaluated_run(smoke_run_copy):
    run_dir = smoke_run_copy
    assert evaluate.main(["--run", str(run_dir), "--n", "4", "--batch-size", "2", "--quiet"]) == 0
    return run_dir


def test_shipped_folder_holds_everything_and_the_same_model(evaluated_run, tmp_path, capsys):
    dest = tmp_path / "models" / "default"
    notes = tmp_path / "notes.md"
    notes.write_text("## Known limits\n\nA smoke model: learns nothing.\n")
    assert shipping.main([str(evaluated_run), str(dest), "--hardware", "2 test cores", "--card-notes", str(notes)]) == 0
    assert "MB); model card" in capsys.readouterr().out
    for name in (*shipping.COPIED, "model.keras", "training_curve.png", "MODEL_CARD.md"):
        assert (dest / name).stat().st_size > 0, name
    for name in shipping.EVALUATION:
        assert (dest / "evaluation" / name).stat().st_size > 0, name
    assert resolve_model(dest) == (dest / "model.keras", dest)
    card = (dest / "MODEL_CARD.md").read_text()
    assert "2 test cores" in card and "A smoke model: learns nothing." in card
    # evaluate.py fitted a pixel calibration: it travels with the thresholds chosen with it.
    assert (dest / "calibration.yaml").read_bytes() == (evaluated_run / "calibration.yaml").read_bytes()
    assert "`calibration.yaml` (the pixel calibration" in card
    classes = yaml.safe_load((dest / "classes.yaml").read_text())
    assert all(f"| {name} |" in card for name in classes)
    # Same weights, smaller file (no optimiser state), same output.
    source, shipped = load_model(evaluated_run / "checkpoints" / "last.keras"), load_model(dest / "model.keras")
    assert (dest / "model.keras").stat().st_size < (evaluated_run / "checkpoints" / "last.keras").stat().st_size
    x = np.random.default_rng(0).normal(size=(1, 32, 32, 1)).astype("float32")
    np.testing.assert_array_equal(shipped.predict(x, verbose=0), source.predict(x, verbose=0))


def test_a_run_without_calibration_leaves_no_older_one_behind(evaluated_run, tmp_path):
    dest = tmp_path / "models" / "default"
    assert shipping.main([str(evaluated_run), str(dest), "--hardware", "2 test cores"]) == 0
    assert (dest / "calibration.yaml").is_file()
    raw = tmp_path / "raw"
    shutil.copytree(evaluated_run, raw)
    assert evaluate.main(["--run", str(raw), "--n", "2", "--calibration-tiles", "0", "--no-baseline", "--quiet"]) == 0
    assert not (raw / "calibration.yaml").exists()
    assert shipping.main([str(raw), str(dest), "--hardware", "2 test cores", "--overwrite"]) == 0
    assert not (dest / "calibration.yaml").exists()
    assert "`calibration.yaml`" not in (dest / "MODEL_CARD.md").read_text()


def test_the_card_names_real_backgrounds_and_a_warm_start(evaluated_run, tmp_path):
    plain = tmp_path / "plain"
    assert shipping.main([str(evaluated_run), str(plain), "--hardware", "2 test cores"]) == 0
    card = (plain / "MODEL_CARD.md").read_text()
    assert "Real backgrounds" not in card and "Warm-started" not in card
    run = tmp_path / "run"
    shutil.copytree(evaluated_run, run)
    config = yaml.safe_load((run / "config.yaml").read_text())
    config["data"]["real_frames"] = {"devset": "data/real/frames.yaml", "weight": 0.4, "ignore_own": True}
    config["train"]["init_from"] = "models/default"
    (run / "config.yaml").write_text(yaml.safe_dump(config))
    dest = tmp_path / "shipped"
    assert shipping.main([str(run), str(dest), "--hardware", "2 test cores"]) == 0
    card = (dest / "MODEL_CARD.md").read_text()
    assert "Real backgrounds (weight 0.4 beside the families'): tiles of the training frames of " in card
    assert "`data/real/frames.yaml`" in card and "own contaminants are left out of the loss" in card
    assert "Warm-started from `models/default`." in card


def test_refuses_an_unevaluated_run_or_a_full_folder(evaluated_run, tmp_path, capsys):
    bare = tmp_path / "bare"
    (bare / "checkpoints").mkdir(parents=True)
    (bare / "checkpoints" / "last.keras").write_bytes((evaluated_run / "checkpoints" / "last.keras").read_bytes())
    assert shipping.main([str(bare), str(tmp_path / "out")]) == 2
    assert "missing config.yaml" in capsys.readouterr().err
    full = tmp_path / "full"
    full.mkdir()
    (full / "keep.txt").write_text("x")
    assert shipping.main([str(evaluated_run), str(full)]) == 2
    assert "exists and is not empty" in capsys.readouterr().err
    assert (full / "keep.txt").read_text() == "x"

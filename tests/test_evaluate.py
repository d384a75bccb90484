"""evaluate.py on a smoke run: tables, CSV, JSON, plots and thresholds.yaml."""

import json
import os
import time

import numpy as np
import pytest
import yaml

import evaluate
from segnet.training.run_folder import NoModelError, latest_run, resolve_model


@pytest.fixture(scope="module")
def own_run(smoke_run_copy):
    """This module evaluates (and so writes into) its own copy of the session's smoke run."""
    return smoke_run_copy


def test_evaluate_writes_tables_files_and_thresholds(own_run, capsys):
    assert evaluate.main(["--run", str(own_run), "--n", "6", "--batch-size", "3", "--quiet"]) == 0
    out = capsys.readouterr().out
    classes = yaml.safe_load((own_run / "classes.yaml").read_text())
    for name in classes:
        assert f"### {name}" in out
    assert "| astroscrappy (all) |" in out and "100 tiles of 32x32" in out
    thresholds = yaml.safe_load((own_run / "thresholds.yaml").read_text())
    assert list(thresholds) == classes and all(0 <= t <= 1 for t in thresholds.values())
    ev = own_run / "evaluation"
    for name in ("report.md", "metrics.csv", "metrics.json", "roc.png", "reliability.png"):
        assert (ev / name).stat().st_size > 100, name
    payload = json.loads((ev / "metrics.json").read_text())
    assert payload["n_tiles"] == 6 and set(payload["classes"]) == set(classes)
    assert 0 <= payload["classes"]["CR"]["all"]["AUC"] <= 1
    assert len(payload["astroscrappy"]["sigclip"]) == len(payload["astroscrappy"]["tpr"])
    assert payload["thresholds"] == thresholds
    header = (ev / "metrics.csv").read_text().splitlines()[0]
    assert header == "class,sample,metric,value"


def test_thresholds_are_chosen_on_validation_tiles(own_run):
    from segnet.evaluation.metrics import ClassMetrics

    evaluate.main(
        [
            "--run",
            str(own_run),
            "--n",
            "4",
            "--threshold-tiles",
            "0",
            "--calibration-tiles",
            "0",
            "--no-baseline",
            "--quiet",
        ]
    )
    on_test = json.loads((own_run / "evaluation" / "metrics.json").read_text())
    for name, samples in on_test["classes"].items():  # chosen on the test tiles: MCC there is the best MCC
        assert on_test["thresholds"][name] == samples["all"]["MCC threshold"]
        assert samples["all"]["MCC at threshold"] == pytest.approx(samples["all"]["best MCC"])
    evaluate.main(
        [
            "--run",
            str(own_run),
            "--n",
            "4",
            "--threshold-tiles",
            "3",
            "--calibration-tiles",
            "0",
            "--no-baseline",
            "--quiet",
        ]
    )
    payload = json.loads((own_run / "evaluation" / "metrics.json").read_text())
    assert not (own_run / "calibration.yaml").exists()
    assert "3 tiles of the validation split" in (own_run / "thresholds.yaml").read_text()
    assert "3 tiles of the validation split" in (own_run / "evaluation" / "report.md").read_text()
    # The thresholds are those that maximise the MCC on validation tiles 0-2.
    from data_sim.generator import SampleSource, iter_samples
    from segnet.evaluation.tiles import predict_tiles, valid_pixels
    from segnet.training.config import load_run_config
    from segnet.training.run_folder import load_model

    config, _ = load_run_config(own_run / "config.yaml")
    samples = list(iter_samples(SampleSource(config.data_section, config.train.seed, split="validation"), 0, 3))
    prob = predict_tiles(load_model(resolve_model(own_run)[0]), samples)
    metrics = ClassMetrics(config.classes)
    for s, p in zip(samples, prob):
        metrics.update(p, s.truth, valid_pixels(s))
    for name in config.classes:
        threshold = metrics.summary(name).best_mcc()[0]
        assert payload["thresholds"][name] == pytest.approx(threshold, abs=1e-6)
        assert payload["classes"][name]["all"]["MCC at threshold"] <= payload["classes"][name]["all"]["best MCC"] + 1e-9


def test_the_calibration_is_fitted_on_validation_tiles_and_measured_on_test_tiles(own_run):
    from data_sim.generator import SampleSource, iter_samples
    from segnet.calibration.pixel import PixelCalibration
    from segnet.evaluation.metrics import ClassMetrics
    from segnet.evaluation.tiles import fit_calibration, predict_tiles, valid_pixels
    from segnet.training.config import load_run_config
    from segnet.training.run_folder import load_model

    assert (
        evaluate.main(
            [
                "--run",
                str(own_run),
                "--n",
                "4",
                "--threshold-tiles",
                "3",
                "--calibration-tiles",
                "5",
                "--no-baseline",
                "--quiet",
            ]
        )
        == 0
    )
    config, _ = load_run_config(own_run / "config.yaml")
    model = load_model(resolve_model(own_run)[0])
    validation = SampleSource(config.data_section, config.train.seed, split="validation")
    written = PixelCalibration.load(own_run / "calibration.yaml", config.classes)
    refit = fit_calibration(model, validation, 5)
    assert written.tiles == 5 and written.passthrough == refit.passthrough != config.classes
    for (w, b), (w2, b2) in zip(written.layers, refit.layers, strict=True):  # same tiles, same fit
        np.testing.assert_allclose(w, w2, rtol=1e-5, atol=1e-9)
        np.testing.assert_allclose(b, b2, rtol=1e-5, atol=1e-9)
    # The thresholds and the test figures are those of the calibrated probabilities.
    payload = json.loads((own_run / "evaluation" / "metrics.json").read_text())
    for split, n, check in (("validation", 3, "thresholds"), ("test", 4, "AUC")):
        samples = list(iter_samples(SampleSource(config.data_section, config.train.seed, split=split), 0, n))
        metrics = ClassMetrics(config.classes)
        for s, p in zip(samples, predict_tiles(model, samples, written)):
            metrics.update(p, s.truth, valid_pixels(s))
        for name in config.classes:
            summary = metrics.summary(name)
            if check == "thresholds":
                assert payload["thresholds"][name] == pytest.approx(summary.best_mcc()[0], abs=1e-6)
            elif np.isfinite(summary.auc()):
                assert payload["classes"][name]["all"]["AUC"] == pytest.approx(summary.auc(), abs=1e-6)
    report = (own_run / "evaluation" / "report.md").read_text()
    assert "pixel calibration (calibration.yaml) fitted on 5 tiles" in report
    assert "| class | AUC, network | AUC, calibrated |" in report


def test_evaluate_is_deterministic(own_run):
    evaluate.main(["--run", str(own_run), "--n", "4", "--no-baseline", "--quiet"])
    first = json.loads((own_run / "evaluation" / "metrics.json").read_text())["classes"]
    evaluate.main(["--run", str(own_run), "--n", "4", "--no-baseline", "--quiet"])
    second = json.loads((own_run / "evaluation" / "metrics.json").read_text())["classes"]
    assert first == second


def test_missing_model_gives_a_clear_message(tmp_path, capsys):
    assert evaluate.main(["--run", str(tmp_path / "nowhere")]) == 2
    assert "holds no model.keras" in capsys.readouterr().err
    with pytest.raises(NoModelError, match="no such model file"):
        resolve_model(tmp_path / "x.keras")


def test_a_checkpoint_file_is_described_by_its_run_folder(tmp_path):
    # Its calibration.yaml and thresholds.yaml sit in the run folder, not in checkpoints/.
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    checkpoint = run / "checkpoints" / "last.keras"
    checkpoint.write_bytes(b"x")
    assert resolve_model(checkpoint) == (checkpoint, run / "checkpoints")
    (run / "config.yaml").write_text("classes: [CR]\n")
    assert resolve_model(checkpoint) == (checkpoint, run)
    (tmp_path / "model.keras").write_bytes(b"x")
    assert resolve_model(tmp_path / "model.keras") == (tmp_path / "model.keras", tmp_path)


def test_latest_run_is_the_newest_with_a_model(tmp_path):
    for name, age in (("old", 100), ("new", 10)):
        (tmp_path / name / "checkpoints").mkdir(parents=True)
        (tmp_path / name / "checkpoints" / "last.keras").write_bytes(b"x")
        t = time.time() - age
        os.utime(tmp_path / name, (t, t))
    (tmp_path / "empty").mkdir()
    assert latest_run(tmp_path) == tmp_path / "new"
    assert latest_run(tmp_path / "none") is None

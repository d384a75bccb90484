"""The commands as processes: Ctrl-C and SIGTERM stop them in one line with nothing half-written, and
TensorFlow's start-up log lines stay off the terminal unless -v."""

import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import yaml
from conftest import write

ROOT = Path(__file__).resolve().parent.parent


def start(*args, cwd=ROOT):
    return subprocess.Popen(
        [sys.executable, *map(str, args)], cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def wait_for(condition, timeout=120.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False


def test_sigterm_stops_predict_in_one_line_and_removes_the_partial_output(smoke_run, tmp_path):
    rng = np.random.default_rng(0)
    src = write(tmp_path / "big.fits", (500 + 5 * rng.standard_normal((1536, 1536))).astype(np.float32))
    out = tmp_path / "out"
    job = start(
        "predict.py",
        src,
        "-o",
        out,
        "--model",
        smoke_run,
        "--tile",
        "64",
        "--margin",
        "16",
        "--blend",
        "8",
        "--runtime",
        "onnx",
        "--quiet",
    )
    assert wait_for(lambda: out.is_dir() and any(out.iterdir())), job.communicate()
    job.send_signal(signal.SIGTERM)
    _, err = job.communicate(timeout=120)
    assert job.returncode == 130
    assert err.strip() == "interrupted: 0 of 1 written; the file being written was removed"
    assert not list(out.iterdir())  # no .part, no output


def test_sigterm_stops_training_after_a_saved_epoch_and_says_how_to_resume(tmp_path):
    config = yaml.safe_load((ROOT / "configs" / "smoke.yaml").read_text())
    config["train"].update(epochs=200, steps_per_epoch=2)
    (tmp_path / "long.yaml").write_text(yaml.safe_dump(config))
    run = tmp_path / "run"
    job = start("train.py", "--config", tmp_path / "long.yaml", "--run-dir", run, "--quiet")
    history = run / "history.csv"
    assert wait_for(lambda: history.is_file() and len(history.read_text().splitlines()) >= 2), job.communicate()
    job.send_signal(signal.SIGTERM)
    _, err = job.communicate(timeout=120)
    assert job.returncode == 130
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    done = yaml.safe_load((run / "state.yaml").read_text())["epochs_done"]
    assert lines[0] == (f"interrupted: {done} epochs are saved in {run}; continue with: python train.py --resume {run}")
    assert not [p for p in run.rglob("*") if p.name.startswith(".")]  # no temporary file left


def test_tensorflow_start_up_lines_show_only_with_verbose(smoke_run, tmp_path):
    src = write(tmp_path / "f.fits", np.random.default_rng(1).normal(400, 6, (48, 48)).astype(np.float32))
    chatter = ("oneDNN", "cpu_feature_guard", "absl::InitializeLog", "I0000 ", "E0000 ", "W0000 ")
    for verbose in (False, True):
        args = ["predict.py", src, "-o", tmp_path / f"out{verbose}", "--model", smoke_run, "--runtime", "keras"]
        done = subprocess.run(
            [sys.executable, *map(str, args), "--quiet", *(["-v"] if verbose else [])],
            cwd=ROOT,
            capture_output=True,
            text=True,
        )
        assert done.returncode == 0, done.stderr[-2000:]
        assert any(c in done.stderr for c in chatter) == verbose, done.stderr[-2000:]


def test_training_prints_one_line_per_epoch_into_a_log(tmp_path):
    run = tmp_path / "run"
    done = subprocess.run(
        [sys.executable, "train.py", "--config", "smoke.yaml", "--run-dir", str(run)],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    epochs = yaml.safe_load((ROOT / "configs" / "smoke.yaml").read_text())["train"]["epochs"]
    lines = [line for line in done.stdout.splitlines() if line.startswith("epoch ")]
    assert [line.split(":")[0] for line in lines] == [f"epoch {k}/{epochs}" for k in range(1, epochs + 1)]
    assert "loss" in lines[0] and "val_loss" in lines[0]
    assert "\r" not in done.stdout and "━" not in done.stdout  # no progress bar redrawn into a file

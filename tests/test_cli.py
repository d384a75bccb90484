"""The ``segnet`` command and the installed package: subcommands, fast help, the shipped model from any folder."""

import subprocess
import sys
from pathlib import Path

import numpy as np
from astropy.io import fits

from segnet import cli

ROOT = Path(__file__).resolve().parent.parent
HEAVY = ("tensorflow", "keras", "openvino", "onnxruntime", "astropy", "scipy")


def loaded_after(code: str, cwd=ROOT, env=None) -> tuple[subprocess.CompletedProcess, set]:
    """Run ``code`` in a fresh interpreter; returns the process and the top-level modules it had loaded."""
    script = f"import sys\n{code}\nprint('MODULES', ' '.join(sorted({{m.split('.')[0] for m in sys.modules}})))"
    done = subprocess.run([sys.executable, "-c", script], cwd=cwd, capture_output=True, text=True, env=env)
    last = [line for line in done.stdout.splitlines() if line.startswith("MODULES")]
    return done, set(last[-1].split()[1:]) if last else set()


def test_segnet_help_lists_every_job_without_importing_anything_heavy():
    done, modules = loaded_after(
        "from segnet.cli import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n    pass"
    )
    assert done.returncode == 0, done.stderr
    for job in ("predict", "train", "evaluate", "simulate", "ship"):
        assert f"  {job}" in done.stdout
    assert not modules & set(HEAVY), modules & set(HEAVY)


def test_segnet_predict_help_names_the_command_and_loads_no_model_runtime():
    code = "from segnet.cli import main\ntry:\n    main(['predict', '--help'])\nexcept SystemExit:\n    pass"
    done, modules = loaded_after(code)
    assert done.stdout.startswith("usage: segnet predict")
    assert "--runtime" in done.stdout
    assert not modules & {"tensorflow", "keras", "openvino", "onnxruntime", "scipy"}


def test_an_unknown_job_is_one_line_and_no_job_is_usage(capsys):
    assert cli.main(["predcit", "x.fits"]) == 2
    assert capsys.readouterr().err == (
        "error: segnet: unknown job 'predcit' (choose from predict, train, evaluate, simulate, ship)\n"
    )
    assert cli.main([]) == 2
    assert capsys.readouterr().out.startswith("usage: segnet JOB")


def test_subcommands_run_the_scripts_jobs(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "segnet.cli", "simulate", "--config", "smoke.yaml", "--n", "1", "-o", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert list(tmp_path.glob("*.fits"))


def test_the_installed_package_predicts_with_the_shipped_model_from_any_folder(tmp_path):
    """pip install . (without dependencies: this environment has them), then ``segnet predict`` elsewhere."""
    target = tmp_path / "site"
    built = subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--target", str(target)]
        + [str(ROOT)],
        capture_output=True,
        text=True,
    )
    assert built.returncode == 0, built.stderr[-3000:]
    assert (target / "segnet" / "_shipped" / "default" / "model.onnx").is_file()
    assert (target / "segnet" / "_configs" / "multiclass.yaml").is_file()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    rng = np.random.default_rng(0)
    fits.PrimaryHDU((800 + 8 * rng.standard_normal((64, 80))).astype(np.float32)).writeto(elsewhere / "f.fits")
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(target), "HOME": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, str(target / "bin" / "segnet"), "predict", "f.fits", "-o", "out", "--quiet"],
        cwd=elsewhere,
        capture_output=True,
        text=True,
        env=env,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    with fits.open(elsewhere / "out" / "f.mask.fits") as hdul:
        assert hdul["PROB"].data.shape[1:] == (64, 80)
        assert hdul["PROB"].header["MODEL"] == "default/model.keras"
    code = (
        "import numpy as np\nfrom segnet import load_masker\nimport segnet\n"
        f"assert segnet.__file__.startswith({str(target)!r}), segnet.__file__\n"
        "r = load_masker()(np.random.default_rng(1).normal(500, 5, (40, 40)))\nprint(r.flags.shape)"
    )
    done, _ = loaded_after(code, cwd=elsewhere, env=env)
    assert done.returncode == 0 and "(40, 40)" in done.stdout, done.stderr[-3000:]

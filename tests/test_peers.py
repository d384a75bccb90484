"""bench/peers.py: one row per tool per class, speed and flagged tables, missing peers skipped.

Runs whatever peers are importable here (in CI: astroscrappy only) beside a tiny
untrained SegNet, on two tiny frames.
"""

import csv
import re

import numpy as np
import pytest
from astropy.io import fits

from bench import peers
from segnet.network.model import build_segnet

CLASSES = ["CR", "HCL", "BCL", "BLN", "HPX", "BPX", "PER", "TRL", "FRG", "OBJ"]


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    path = tmp_path_factory.mktemp("model") / "tiny.keras"
    build_segnet(class_names=CLASSES, depth=2, base_filters=4, convs_per_level=1).save(path)
    return path


def tables(text: str) -> dict[str, tuple[list[str], dict[str, list[str]]]]:
    """Markdown tables of the printed report: heading -> (columns, {first cell: other cells})."""
    found = {}
    for heading, body in re.findall(r"^### (.+?)\n\n((?:\|.*\n)+)", text, flags=re.M):
        lines = [[c.strip() for c in line.strip().strip("|").split("|")] for line in body.strip().splitlines()]
        found[heading.split(" (")[0]] = (lines[0][1:], {row[0]: row[1:] for row in lines[2:]})
    return found


def ran(*skip):
    """Tools that can run here on tiny frames: importable, no size limit, not in ``skip``."""
    return [
        k
        for k in ["ours", *peers.PEERS]
        if k not in skip and peers.TOOLS[k].min_side <= 64 and peers.missing_module(peers.TOOLS[k]) is None
    ]


def fits_frames(folder):
    """Two small raw frames (big-endian, as FITS stores them), each with a cosmic-ray track."""
    rng = np.random.default_rng(1)
    paths = []
    for k, shape in enumerate([(40, 48), (33, 50)]):
        image = 500 + 5 * rng.standard_normal(shape)
        image[10, 10:13] += 3000
        header = fits.Header({"GAIN": 2.0, "RDNOISE": 5.0, "BIAS": 400.0, "SATURATE": 60000.0})
        paths.append(folder / f"f{k}.fits")
        fits.PrimaryHDU(image.astype(">f4"), header=header).writeto(paths[-1])
    return paths


def test_tables_have_one_row_per_tool_per_class_and_missing_peers_are_skipped(
    tiny_model, tmp_path, capsys, monkeypatch
):
    # One run (every run starts TensorFlow in a child): 2 simulated frames with truth, 2 FITS frames without.
    monkeypatch.setattr(peers.DeepCR, "modules", ("no_such_module_in_this_test",))
    out = tmp_path / "out"
    assert (
        peers.main(
            [
                "--model",
                str(tiny_model),
                "--config",
                "smoke.yaml",
                "--n",
                "2",
                "--size",
                "64",
                "--frames",
                *map(str, fits_frames(tmp_path)),
                "--out",
                str(out),
            ]
        )
        == 0
    )
    text = capsys.readouterr().out
    assert "deepCR: skipped, not installed here (no module no_such_module_in_this_test" in text
    assert "MaxiMask: skipped" in text  # not installed, or frames under its 400 px
    keys = ran("deepcr")
    names = [peers.TOOLS[k].name for k in keys]
    assert names[0] == "ours" and "astroscrappy" in names

    found = tables(text)
    flagged = "Flagged on the FITS frames at default thresholds"
    assert list(found) == CLASSES + [flagged, "Speed and memory"]
    for name in CLASSES:
        columns, rows = found[name]
        expected = [peers.TOOLS[k].name for k in keys if name in peers.TOOLS[k].classes or k == "ours"]
        assert columns == peers.CLASS_COLUMNS and list(rows) == expected, name
        assert all(len(cells) == len(columns) for cells in rows.values())
    assert found["CR"][1]["astroscrappy"][peers.CLASS_COLUMNS.index("default threshold")] == "sigclip 4.5"

    columns, rows = found[flagged]
    assert columns == CLASSES and list(rows) == names
    assert rows["astroscrappy"][1:] == ["–"] * (len(CLASSES) - 1) and float(rows["astroscrappy"][0]) > 0
    columns, rows = found["Speed and memory"]
    assert columns == peers.SPEED_COLUMNS and list(rows) == names
    assert rows["ours"][columns.index("speed ours/tool")] == "1.00"
    assert all(cells[columns.index("frames")] == "4" for cells in rows.values())

    with (out / "peers.csv").open() as f:
        records = list(csv.DictReader(f))
    cr = {(r["tool"], r["metric"]) for r in records if r["table"] == "class" and r["class"] == "CR"}
    assert cr == {(n, m) for n in names for m in peers.CLASS_COLUMNS}
    assert (out / "roc.png").stat().st_size > 1000
    assert re.search(r"command: `\S*python\S* bench/peers.py --model ", (out / "peers.md").read_text())


def test_nothing_to_run_on_is_an_error(capsys):
    with pytest.raises(SystemExit):
        peers.main(["--n", "0"])
    assert "--n 0 without --frames" in capsys.readouterr().err


def test_sweep_scores_give_back_nested_masks():
    loose = np.array([[1, 1, 1, 0]], bool)
    mid = np.array([[1, 1, 0, 0]], bool)
    strict = np.array([[1, 0, 0, 0]], bool)
    score = peers.sweep_scores([loose, mid, strict])
    np.testing.assert_allclose(score, [[1, 2 / 3, 1 / 3, 0]])
    for k, mask in enumerate([loose, mid, strict]):
        np.testing.assert_array_equal(score >= (k + 1) / 3 - 1e-6, mask)


def test_at_half_puts_each_threshold_at_one_half():
    np.testing.assert_allclose(peers.at_half(np.array([0, 0.3, 0.6, 0.8, 1]), 0.6), [0, 0.25, 0.5, 0.75, 1])
    hot, dead = np.array([0.65, 0.1, 0.5]), np.array([0.1, 0.8, 0.7])  # thresholds 0.6 and 0.74
    combined = np.maximum(peers.at_half(hot, 0.6), peers.at_half(dead, 0.74))
    np.testing.assert_array_equal(combined >= 0.5, (hot >= 0.6) | (dead >= 0.74))


def test_camera_from_raw_and_sky_subtracted_headers():
    raw = peers.Camera.from_header(
        {
            "GAIN": (2.0, ""),
            "RDNOISE": (4.0, ""),
            "BIAS": (300.0, ""),
            "SATURATE": (30300.0, ""),
            "SKYSUB": (False, ""),
            "SKYLEVEL": (1000.0, ""),
        }
    )
    assert raw == peers.Camera(gain=2.0, read_noise=4.0, bias=300.0, sky=0.0, saturation=30300.0)
    sub = peers.Camera.from_header(
        {"GAIN": 2.0, "RDNOISE": 4.0, "BIAS": 300.0, "SATURATE": 30300.0, "SKYSUB": True, "SKYLEVEL": 1000.0}
    )
    assert sub == peers.Camera(gain=2.0, read_noise=4.0, bias=0.0, sky=500.0, saturation=29500.0)
    frame = peers.Frame(np.array([[10.0, np.nan, 30.0]], np.float32), np.zeros((1, 3), bool), sub)
    np.testing.assert_allclose(peers.calibrated_adu(frame), [[510, 520, 530]])
    assert peers.Camera.from_header({}) == peers.Camera(1.0, 6.5, 0.0, 0.0, 65535.0)


def test_spread_keeps_order_and_comes_back():
    p = np.array([0, 1e-9, 1e-4, 0.1, 0.5, 0.74, 1 - 1e-9, 1])
    q = peers.spread(p)
    assert q[0] == 0 and q[4] == 0.5 and q[-1] == 1 and np.all(np.diff(q) > 0)
    assert q[2] - q[1] > 0.1  # 1e-9 and 1e-4 fall a thousand 1e-4 bins apart
    np.testing.assert_allclose(peers.unspread(q), p, rtol=1e-9, atol=1e-15)


@pytest.mark.parametrize("spacing", ["linear", "logit"])
def test_mcc_at_a_default_threshold_counts_exactly_the_flagged_pixels(spacing):
    from segnet.evaluation.metrics import ClassMetrics

    rng = np.random.default_rng(0)
    scores = rng.uniform(0, 1, (1, 1, 40, 40))
    truth = rng.uniform(0, 1, scores.shape) < scores
    metrics = ClassMetrics(["CR"], 1000, spacing=spacing)
    metrics.update(peers.spread(scores), truth)
    summary = metrics.summary("CR")
    threshold = 0.5  # astroscrappy's and deepCR's defaults are steps like this one
    i = peers.threshold_index(summary, threshold)
    assert summary.thresholds[i] <= peers.spread(threshold) + 1e-12 < summary.thresholds[i + 1]
    if spacing == "linear":  # 0.5 is a bin edge: the MCC there is that of the pixels >= 0.5
        flag = scores >= threshold
        tp, fp = (flag & truth).sum(), (flag & ~truth).sum()
        fn, tn = (~flag & truth).sum(), (~flag & ~truth).sum()
        mcc = (tp * tn - fp * fn) / np.sqrt(float((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn)))
        assert summary.mcc_curve()[i] == pytest.approx(mcc)


def test_ours_auto_moves_each_frame_to_its_own_em_proportions(tiny_model, tmp_path):
    import shutil

    import yaml

    from segnet.evaluation.metrics import adjust_priors
    from segnet.serving.priors import PriorEstimator

    folder = tmp_path / "run"
    folder.mkdir()
    shutil.copy(tiny_model, folder / "model.keras")
    fractions = {c: 0.02 for c in CLASSES}
    (folder / "class_fractions.yaml").write_text(yaml.safe_dump({"classes": fractions}))
    spec = {"model": str(folder / "model.keras"), "model_folder": str(folder)}
    rng = np.random.default_rng(0)
    image = (500 + 5 * rng.standard_normal((64, 64))).astype(np.float32)
    frame = peers.Frame(image, np.zeros(image.shape, bool), peers.Camera(2.0, 5.0, 0.0, 0.0, 60000.0))
    plain = peers.Ours(spec).predict(frame)
    auto = peers.OursAutoPriors(spec).predict(frame)
    prob = np.stack([plain[c] for c in CLASSES])
    estimator = PriorEstimator(len(CLASSES))
    estimator.update(prob)
    train = np.full(len(CLASSES), 0.02)
    expected = adjust_priors(prob, train, estimator.estimate(train))
    np.testing.assert_allclose(np.stack([auto[c] for c in CLASSES]), expected, atol=1e-6)
    assert "ours-auto" not in peers.PEERS and "ours-auto" in peers.VARIANTS

"""foundation.tiling's tile plan and strip reader: coverage, blending weights, few and even tiles."""

import numpy as np
import pytest
from astropy.io import fits

from foundation.tiling import RowStrips, axis_weights, plan_axis


@pytest.mark.parametrize("n", [1, 40, 64, 65, 150, 170, 333, 1000, 4096])
@pytest.mark.parametrize("tile, margin, blend", [(64, 16, 8), (96, 16, 16), (128, 0, 0), (2560, 64, 32)])
def test_the_plan_covers_the_axis_with_weights_summing_to_one(n, tile, margin, blend):
    spans = plan_axis(n, tile=tile, blend=blend, margin=margin, multiple=8)
    total = np.zeros(n)
    for span in spans:
        assert 0 <= span.in0 <= span.core0 < span.core1 <= span.in1 <= n
        assert span.in0 % 8 == 0  # pooling windows fall where they fall on the whole frame
        assert -(-(span.in1 - span.in0) // 8) * 8 <= tile
        assert span.core0 - span.in0 in (0, margin) and span.in1 - span.core1 in (0, margin) or span.in1 == n
        total[span.core0 : span.core1] += axis_weights(span, blend)
    np.testing.assert_allclose(total, 1.0, atol=1e-6)


def test_the_plan_takes_the_fewest_tiles_with_equal_cores():
    # 4096 px in tiles of at most 2560: two windows of 2128, not 2560 + 1600 padded to 2560.
    spans = plan_axis(4096, tile=2560, blend=32, margin=64, multiple=16)
    assert [(s.in0, s.in1) for s in spans] == [(0, 2128), (1968, 4096)]
    assert [(s.core0, s.core1) for s in spans] == [(0, 2064), (2032, 4096)]
    # An axis that fits one tile is one window, whatever the margin.
    assert [(s.in0, s.in1) for s in plan_axis(1000, tile=1024, blend=32, margin=64, multiple=16)] == [(0, 1000)]
    # Three or more: interior windows carry both margins, and every core but the last is equally long.
    spans = plan_axis(6144, tile=2560, blend=32, margin=64, multiple=16)
    assert len(spans) == 3
    assert len({s.core1 - s.core0 for s in spans[:-1]}) == 1
    assert max(s.in1 - s.in0 for s in spans) <= 2560


def test_a_margin_too_wide_for_the_tile_is_refused():
    with pytest.raises(ValueError, match=r"tile - 2\*margin \(32\) must exceed blend \(32\)"):
        plan_axis(500, tile=96, blend=32, margin=32, multiple=16)


def test_row_strips_read_whole_rows_once_and_return_independent_windows(tmp_path):
    image = np.arange(60 * 50, dtype=np.float32).reshape(60, 50)
    path = tmp_path / "frame.fits"
    fits.writeto(path, image)
    with fits.open(path) as hdul:
        section = hdul[0].section
        calls = []

        class Counting:
            shape = section.shape

            def __getitem__(self, key):
                calls.append(key)
                return section[key]

        read = RowStrips(Counting())
        a = read(slice(10, 30), slice(0, 20))
        b = read(slice(10, 30), slice(15, 50))
        np.testing.assert_array_equal(a, image[10:30, 0:20])
        np.testing.assert_array_equal(b, image[10:30, 15:50])
        assert len(calls) == 1  # the second window of the same rows comes from the strip
        a[:] = -1  # a caller may change its window without touching the next one's
        np.testing.assert_array_equal(read(slice(10, 30), slice(0, 20)), image[10:30, 0:20])
        read(slice(20, 40), slice(0, 20))
        assert len(calls) == 2
    assert a.dtype == np.float32

"""The filter helpers: the extent measure of the filter figure, and input checks."""

import numpy as np
import pytest

from skksae import filter_extent, filter_mosaic


def _gaussian_blob(side, width):
    r, c = np.mgrid[:side, :side] - (side - 1) / 2
    return np.exp(-(r**2 + c**2) / (2 * width**2)).ravel()


def test_extent_grows_with_the_filters_spread():
    filters = np.stack([_gaussian_blob(28, w) for w in (1.0, 3.0, 6.0)])
    extent = filter_extent(filters, (28, 28))
    assert extent[0] < extent[1] < extent[2]
    # energy w**2 of a Gaussian of width s has width s / sqrt(2): radius s in 2-D (up
    # to the pixel grid's sampling, 0.1% at s = 1)
    np.testing.assert_allclose(extent[:2], [1.0, 3.0], rtol=2e-3)


def test_extent_of_a_uniform_image_and_of_a_zero_filter():
    h, w = 8, 6
    extent = filter_extent(np.stack([np.ones(h * w), np.zeros(h * w)]), (h, w))
    np.testing.assert_allclose(extent[0], np.sqrt((h**2 - 1) / 12 + (w**2 - 1) / 12))
    assert extent[1] == 0
    # the sign of a weight does not matter, only its energy
    assert filter_extent(-np.ones((1, h * w)), (h, w))[0] == pytest.approx(extent[0])


@pytest.mark.parametrize("helper", [filter_extent, filter_mosaic])
def test_image_shape_must_match_the_filters(helper):
    with pytest.raises(ValueError, match="has 9 pixels but the filters have 10"):
        helper(np.zeros((2, 10)), (3, 3))

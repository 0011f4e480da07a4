import math

import pytest

from ose.costs import w_coefficient


def test_w_formula():
    # ((10 - 4) / 10) * ((100 - 25) / 100) / 0.5 = 0.6 * 0.75 * 2
    assert w_coefficient(4, 25, 0.5, 10, 100) == pytest.approx(0.9)


def test_w_of_the_maximum_point_is_zero():
    assert w_coefficient(10, 100, 0.3, 10, 100) == 0


def test_w_prefers_smaller_faster_and_more_accurate():
    base = w_coefficient(5, 50, 0.5, 10, 100)
    assert w_coefficient(4, 50, 0.5, 10, 100) > base
    assert w_coefficient(5, 40, 0.5, 10, 100) > base
    assert w_coefficient(5, 50, 0.4, 10, 100) > base


def test_zero_error_is_infinite_and_exceeding_t_is_an_error():
    assert math.isinf(w_coefficient(1, 1, 0.0, 10, 100))
    with pytest.raises(ValueError, match="exceeds the maximum point"):
        w_coefficient(11, 1, 0.5, 10, 100)

import numpy as np
import pytest


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


@pytest.fixture(autouse=True)
def _raise_on_floating_point_errors():
    with np.errstate(all="raise", under="ignore"):
        yield

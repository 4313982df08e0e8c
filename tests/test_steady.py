"""Early-stop criterion: uniform + fixed point + stable against every grid mode."""

import numpy as np
import pytest

from rdlab.chemistry import brusselator_network, gray_scott_network
from rdlab.simulate.steady import homogeneous_steady
from rdlab.system import Grid, System


def gray_scott(k, f, n=32):
    return System.build(gray_scott_network(), diffusion=[0.2, 0.1], flow=f, feed=[1, 0],
                        grid=Grid(n, n)).samples(f=[f], k=[k])


def gray_scott_fixed_points(k, f):
    """Eq. (3) of the Gray–Scott CNN paper: the two non-trivial homogeneous states."""
    c = -4 * f * k**2 - 8 * f**2 * k - 4 * f**3 + f**2
    out = []
    for sign in (-1, 1):
        u = (sign * np.sqrt(c) + f) / (2 * f)
        v = -(sign * np.sqrt(c) - f) / (2 * k + 2 * f)
        out.append((u, v))
    return out


def uniform(system, values):
    return np.broadcast_to(np.asarray(values, float)[None, :, None, None],
                           system.state_shape()).copy()


def test_trivial_state_is_steady():
    s = gray_scott(0.05, 0.005)
    assert homogeneous_steady(s, uniform(s, [1.0, 0.0])).tolist() == [True]


def test_low_state_is_steady_and_its_saddle_partner_is_not():
    k, f = 0.055, 0.035  # class L of the paper: U ≈ 0.364
    (u_lo, v_lo), (u_hi, v_hi) = gray_scott_fixed_points(k, f)
    assert u_lo == pytest.approx(0.364, abs=1e-3)
    s = gray_scott(k, f)
    assert homogeneous_steady(s, uniform(s, [u_lo, v_lo])).tolist() == [True]
    assert homogeneous_steady(s, uniform(s, [u_hi, v_hi])).tolist() == [False]


def test_not_uniform_or_not_fixed_is_not_steady(rng):
    s = gray_scott(0.05, 0.005)
    x = uniform(s, [1.0, 0.0])
    x[0, 1, 3, 4] = 1e-4
    assert not homogeneous_steady(s, x)[0]
    assert not homogeneous_steady(s, uniform(s, [0.9, 0.0]))[0]  # flow still acting


@pytest.mark.parametrize("b, expected", [(6.0, True), (7.5, False)])
def test_turing_unstable_fixed_point_is_not_steady(b, expected):
    """Brusselator x* = a, y* = b/a is stable without diffusion for b < 1 + a² but Turing
    unstable for b > (1 + a·sqrt(Dx/Dy))² = 6.72 (a = 4.5, Dx = 0.04, Dy = 0.32)."""
    a = 4.5
    # the unstable band lies around q ≈ (a²/(Dx·Dy))^¼ ≈ 6.3: resolve it with dx = 0.1
    s = System.build(brusselator_network(a, b), diffusion=[0.04, 0.32],
                     grid=Grid(64, 64, dx=0.1))
    assert homogeneous_steady(s, uniform(s, [a, b / a])).tolist() == [expected]

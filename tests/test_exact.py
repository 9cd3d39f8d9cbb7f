import numpy as np
import pytest

from rgppl import exact
from rgppl.errors import InputError
from rgppl.hamiltonians import BETA_C_ISING
from tests.dense import dense_free_field


@pytest.mark.parametrize("beta", [0.2, BETA_C_ISING, 0.6])
def test_kaufman_equals_enumeration_on_4x4(beta):
    assert abs(exact.ising_logz(4, beta) - exact.ising_enumerate(4, beta)["ln_z"]) < 1e-10


@pytest.mark.parametrize("rows, cols, beta", [(3, 4, 0.3), (4, 3, 0.7), (2, 5, BETA_C_ISING)])
def test_kaufman_on_rectangular_tori(rows, cols, beta):
    enumerated = exact.ising_enumerate((rows, cols), beta)["ln_z"]
    assert abs(exact.ising_logz(cols, beta, rows) - enumerated) < 1e-10
    assert abs(exact.ising_logz(rows, beta, cols) - enumerated) < 1e-10


@pytest.mark.parametrize(
    "L, per_site",
    [(4, 0.970119716172205), (8, 0.939715324829206), (16, 0.932196314980988), (32, 0.930320390184124)],
)
def test_kaufman_reference_values_at_tc(L, per_site):
    assert abs(exact.ising_logz(L, BETA_C_ISING) / L**2 - per_site) < 1e-12


def test_kaufman_above_tc_uses_signed_gamma0():
    # above T_c (beta < beta_c) taking arccosh for gamma_0 overestimates ln Z; the signed form must match enumeration
    beta = 0.25
    assert abs(exact.ising_logz(4, beta) - exact.ising_enumerate(4, beta)["ln_z"]) < 1e-10


@pytest.mark.parametrize("rows, cols", [(4, 4), (3, 5), (5, 3), (2, 5)])  # odd N too
@pytest.mark.parametrize("beta", [0.2, BETA_C_ISING, 0.6])
def test_transfer_matrix_moments_equal_enumeration(beta, rows, cols):
    tm, en = exact.ising_moments(cols, beta, rows), exact.ising_enumerate((rows, cols), beta)
    for key in ("ln_z", "m2", "m4", "abs_m"):
        assert abs(tm[key] - en[key]) < 1e-10


def test_exact_moments_at_tc_match_reference():
    m4x4, m8x8 = exact.ising_moments(4, BETA_C_ISING), exact.ising_moments(8, BETA_C_ISING)
    assert abs(m4x4["m2"] - 0.7613589086) < 1e-9
    assert abs(m8x8["m2"] - 0.6469115750) < 1e-9
    assert abs(m4x4["binder"] - 0.6172) < 1e-4 and abs(m8x8["binder"] - 0.6130) < 1e-4
    assert abs(m8x8["ln_z"] - exact.ising_logz(8, BETA_C_ISING)) < 1e-9


@pytest.mark.parametrize("L, log_z", [(4, 37.376732), (8, 148.6550162810), (16, 592.8757398576), (32, 2369.5870911253)])
def test_ising_dual_logz_reference_values(L, log_z):
    alpha = 0.1 + 4 * BETA_C_ISING
    assert abs(exact.ising_dual_logz(L, BETA_C_ISING, alpha) - log_z) < 1e-6


def test_ising_dual_logz_by_quadrature_on_2x2_to_the_precision_of_the_energies():
    # 2x2: integrate exp(-E) numerically over a grid (4-dimensional, product quadrature), with rgppl's energy
    from rgppl.hamiltonians import ising_dual
    from rgppl.precision import computing_in

    h = ising_dual(2, beta=0.3)
    alpha = h.terms[0].alpha
    grid = np.linspace(-9, 9, 41)
    x = np.stack(np.meshgrid(grid, grid, grid, grid, indexing="ij"), -1).reshape(-1, 2, 2)

    def quadrature(precision: str) -> float:
        with computing_in(precision):
            energy = np.asarray(h.energy(np.asarray(x, dtype=precision)), np.float64)
        return np.log(np.sum(np.exp(-energy)) * (grid[1] - grid[0]) ** 4)

    kaufman = exact.ising_dual_logz(2, 0.3, alpha)
    assert abs(quadrature("float64") - kaufman) < 1e-8  # the quadrature's own error is 4e-9
    assert abs(quadrature("float32") - kaufman) > 1e-8  # float32's rounding of the energies adds 2e-7


def test_free_field_logz_and_propagator_against_dense_matrix():
    dense = dense_free_field((3, 4), 0.7)
    sign, logdet = np.linalg.slogdet(dense)
    assert sign > 0
    assert abs(exact.free_field_logz((3, 4), 0.7) - (6 * np.log(2 * np.pi) - 0.5 * logdet)) < 1e-10
    covariance = np.linalg.inv(dense)
    two_point = exact.gaussian_two_point(exact.free_field_spectrum((3, 4), 0.7))
    for rx in range(3):
        for ry in range(4):
            shifted = [((x + rx) % 3) * 4 + (y + ry) % 4 for x in range(3) for y in range(4)]
            direct = np.mean([covariance[i, j] for i, j in enumerate(shifted)])
            assert abs(two_point[rx, ry] - direct) < 1e-12


def test_bad_arguments_name_the_field():
    with pytest.raises(InputError, match="m2"):
        exact.free_field_logz(4, -1.0)
    with pytest.raises(InputError, match="N <= 20"):
        exact.ising_enumerate(5, 0.3)
    with pytest.raises(InputError, match="alpha"):
        exact.ising_dual_logz(4, 0.4, 0.1)

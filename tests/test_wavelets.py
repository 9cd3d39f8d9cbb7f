import jax
import jax.numpy as jnp
import numpy as np
import pytest
import pywt

from rgppl.errors import InputError
from rgppl.wavelets import WAVELETS, dwt2, idwt2, pyramid

pytestmark = pytest.mark.usefixtures("float64")


@pytest.mark.filterwarnings("ignore:Level value")  # pywt warns that periodization wraps the filters at coarse levels
@pytest.mark.parametrize("wavelet", WAVELETS)
@pytest.mark.parametrize("L", [2, 8, 32])
def test_matches_pywt_periodization_at_every_level(wavelet, L):
    x = np.random.default_rng(L).normal(size=(3, L, L))
    coarse, details = pyramid(jnp.asarray(x), wavelet)
    reference = pywt.wavedec2(x, wavelet, mode="periodization", level=int(np.log2(L)), axes=(-2, -1))
    np.testing.assert_allclose(coarse[-1], reference[0], atol=1e-13)
    for mine, theirs in zip(details[::-1], reference[1:], strict=True):
        np.testing.assert_allclose(mine, np.stack(theirs, axis=-3), atol=1e-13)
    rebuilt = coarse[-1]
    for level_details in details[::-1]:
        rebuilt = idwt2(rebuilt, level_details, wavelet)
    np.testing.assert_allclose(rebuilt, x, atol=1e-13)


@pytest.mark.parametrize("wavelet", WAVELETS)
def test_one_level_is_orthogonal(wavelet):
    L = 8

    def analysis(v):
        coarse, details = dwt2(v.reshape(L, L), wavelet)
        return jnp.concatenate([coarse.ravel(), details.ravel()])

    W = np.asarray(jax.jacfwd(analysis)(jnp.zeros(L * L)))
    np.testing.assert_allclose(W @ W.T, np.eye(L * L), atol=1e-13)
    coarse_rows = W[: (L // 2) ** 2]  # G: the coarse projection; Gbar: the details
    np.testing.assert_allclose(coarse_rows @ W[(L // 2) ** 2 :].T, 0, atol=1e-13)
    x = np.random.default_rng(0).normal(size=(L, L))
    np.testing.assert_allclose(idwt2(*dwt2(jnp.asarray(x), wavelet), wavelet), x, atol=1e-13)


def test_bad_input_names_the_field():
    with pytest.raises(InputError, match="power of 2"):
        pyramid(jnp.zeros((12, 12)))
    with pytest.raises(InputError, match="levels"):
        pyramid(jnp.zeros((8, 8)), levels=4)
    with pytest.raises(InputError, match="wavelet"):
        pyramid(jnp.zeros((8, 8)), wavelet="morlet")

import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist
import pytest
import pywt

from rgppl.errors import InputError
from rgppl.wavelets import WAVELETS, WaveletTransform, dwt2, idwt2, wavedec2, waverec2


pytestmark = pytest.mark.usefixtures("float64")


@pytest.mark.filterwarnings("ignore:Level value")  # pywt warns that periodization wraps the filters at coarse levels
@pytest.mark.parametrize("wavelet", WAVELETS)
@pytest.mark.parametrize("L", [2, 8, 32])
def test_matches_pywt_periodization_at_every_level(wavelet, L):
    x = np.random.default_rng(L).normal(size=(3, L, L))
    ours = wavedec2(jnp.asarray(x), wavelet)
    reference = pywt.wavedec2(x, wavelet, mode="periodization", level=int(np.log2(L)), axes=(-2, -1))
    np.testing.assert_allclose(ours[0], reference[0], atol=1e-13)
    for mine, theirs in zip(ours[1:], reference[1:], strict=True):
        np.testing.assert_allclose(mine, np.stack(theirs, axis=-3), atol=1e-13)
    np.testing.assert_allclose(waverec2(ours, wavelet), x, atol=1e-13)


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


def test_transform_log_det_equals_autodiff_jacobian():
    L = 8
    scales = jnp.array([1.7, 0.6, 2.3])
    transform = WaveletTransform(L, "db2", scales=scales)
    x = jnp.asarray(np.random.default_rng(1).normal(size=(L, L)))
    y = transform(x)
    jacobian = jax.jacfwd(lambda v: transform(v.reshape(L, L)))(x.ravel())
    sign, logdet = jnp.linalg.slogdet(jacobian)
    assert abs(float(transform.log_abs_det_jacobian(x, y)) - float(logdet)) < 1e-10
    np.testing.assert_allclose(transform.inv(y), x, atol=1e-12)
    inverse_jacobian = jax.jacfwd(transform.inv)(y).reshape(L * L, L * L)
    assert abs(float(jnp.linalg.slogdet(inverse_jacobian)[1]) + float(logdet)) < 1e-10


def test_transform_in_a_numpyro_distribution_and_under_jit_and_vmap():
    L = 4
    transform = WaveletTransform(L, "haar", scales=jnp.array([2.0, 0.5]))
    base = dist.Normal(jnp.zeros((L, L)), 1.0).to_event(2)
    pushed = dist.TransformedDistribution(base, transform)
    y = pushed.sample(jax.random.PRNGKey(0), (5,))
    assert y.shape == (5, L * L)
    x = transform.inv(y)
    expected = base.log_prob(x) - transform.log_abs_det_jacobian(x, y)
    np.testing.assert_allclose(pushed.log_prob(y), expected, atol=1e-12)
    batched = jax.jit(jax.vmap(transform))(x)
    np.testing.assert_allclose(batched, y, atol=1e-12)
    flat, tree = jax.tree_util.tree_flatten(transform)
    rebuilt = jax.tree_util.tree_unflatten(tree, flat)
    np.testing.assert_allclose(rebuilt(x), y, atol=1e-12)


def test_bad_input_names_the_field():
    with pytest.raises(InputError, match="power of 2"):
        wavedec2(jnp.zeros((12, 12)))
    with pytest.raises(InputError, match="levels"):
        wavedec2(jnp.zeros((8, 8)), levels=4)
    with pytest.raises(InputError, match="wavelet"):
        wavedec2(jnp.zeros((8, 8)), wavelet="morlet")
    with pytest.raises(InputError, match="scales"):
        WaveletTransform(8, scales=[1.0, 2.0])

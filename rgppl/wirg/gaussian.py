"""The Gaussian conditional of each scale, fitted to the data: where the generator's chains start.

A chain started at ``phibar_j = 0`` must first grow the details to their size, a diffusion that takes hundreds
of MALA steps on the fine scales (the mean square of the 16x16 details at L = 32 is 6 standard errors short
after 200 steps, from 2000 chains).  Started at a draw of the best Gaussian approximation of the conditional, it
only has to correct what is not Gaussian.

The approximation is the translation-invariant linear regression of the details on the coarse field.  With
unitary 2D Fourier transforms ``c(k)`` of ``phi_j`` and ``v(k)`` of the ``C`` free channels, and the data's
spectra ``S_cc(k) = <|c(k)|^2>``, ``S_vc(k) = <v(k) c(k)^*>`` and ``S_vv(k) = <v(k) v(k)^H>``:

    v(k) = B(k) c(k) + Q(k) xi(k),   B = S_vc / S_cc,   Q Q^H = S_vv - B B^H S_cc   (Cholesky, per k),

with ``xi`` the transform of real white noise.  The data's spectra of real fields satisfy
``S(-k) = S(k)^*``, so the draws are real.  This is exact for a Gaussian field (the free field's every
conditional).  At the coarsest scale there is no coarse field and ``B = 0``.
"""

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

JITTER = 1e-9  # relative: keeps the residual covariance positive definite where a channel carries no power


class GaussianStart(NamedTuple):
    """``gain = B(k)`` of shape ``(C, m, m)`` and ``noise = Q(k)`` of shape ``(C, C, m, m)`` (complex)."""

    gain: np.ndarray
    noise: np.ndarray

    @classmethod
    def fit(cls, coarse, free) -> "GaussianStart":
        """The regression of ``free[n, C, m, m]`` on ``coarse[n, m, m]`` (zeros at the coarsest scale), in float64."""
        c = np.fft.fft2(np.asarray(coarse, np.float64), norm="ortho")
        v = np.fft.fft2(np.asarray(free, np.float64), norm="ortho")
        s_cc = np.mean(np.abs(c) ** 2, axis=0)
        s_vc = np.mean(v * np.conj(c)[:, None], axis=0)
        s_vv = np.einsum("nakl,nbkl->abkl", v, np.conj(v)) / len(v)
        resolved = s_cc > JITTER * np.max(s_cc)  # no coarse field (the coarsest scale): no regression
        gain = np.where(resolved, s_vc / np.where(resolved, s_cc, 1.0), 0.0)
        residual = s_vv - np.einsum("akl,bkl->abkl", gain, np.conj(gain)) * s_cc
        residual = np.moveaxis(residual, (0, 1), (-2, -1))
        residual = 0.5 * (residual + np.conj(np.swapaxes(residual, -1, -2)))
        scale = np.maximum(np.real(np.trace(residual, axis1=-2, axis2=-1)), 1e-300)
        residual = residual + JITTER * scale[..., None, None] * np.eye(residual.shape[-1])
        noise = np.moveaxis(np.linalg.cholesky(residual), (-2, -1), (0, 1))
        return cls(gain.astype(np.complex64), noise.astype(np.complex64))

    def draw(self, key, coarse) -> jax.Array:
        """One draw of the free channels for each ``coarse[n, m, m]``: ``(n, C, m, m)``, float32."""
        gain, noise = jnp.asarray(self.gain), jnp.asarray(self.noise)
        white = jnp.fft.fft2(jax.random.normal(key, (len(coarse), *gain.shape), jnp.float32), norm="ortho")
        mean = gain[None] * jnp.fft.fft2(coarse, norm="ortho")[:, None]
        spectrum = mean + jnp.einsum("abkl,nbkl->nakl", noise, white)
        return jnp.real(jnp.fft.ifft2(spectrum, norm="ortho")).astype(jnp.float32)

"""Periodic two-dimensional lattices: geometry, momenta and the FFT diagonalisation of
translation-invariant quadratic forms.

Conventions (used everywhere in rgppl):

* a field is an array whose last two axes are the lattice, ``phi[..., x, y]``, ``x`` in
  ``0..Lx-1``, ``y`` in ``0..Ly-1``, with periodic boundaries;
* nearest-neighbour sums run over the forward links, ``sum_<xy> f(phi_x, phi_y) =
  sum_x sum_mu f(phi_x, phi_{x+mu})`` with ``mu`` in {x, y}; on an axis of length 2 the forward and
  backward links join the same pair twice, and both are counted (the lattice is a multigraph);
* momenta ``k_mu = 2 pi n_mu / L_mu``; the Fourier transform is unitary,
  ``phi_k = N^{-1/2} sum_x exp(-i k.x) phi_x`` (``jnp.fft.fft2(..., norm="ortho")``).
"""

from dataclasses import dataclass
from functools import cached_property

import jax.numpy as jnp
import numpy as np

from rgppl.errors import InputError, require


@dataclass(frozen=True)
class Lattice:
    """A periodic ``Lx x Ly`` lattice (``N = Lx Ly`` sites)."""

    shape: tuple[int, int]

    def __post_init__(self):
        shape = self.shape
        if isinstance(shape, int) or np.ndim(shape) == 0:
            shape = (shape, shape)
        shape = tuple(shape)
        require(len(shape) == 2, "lattice.shape", self.shape, "give one size L or two sizes [Lx, Ly]")
        for size in shape:
            require(
                isinstance(size, (int, np.integer)) and not isinstance(size, bool) and size >= 2,
                "lattice.shape",
                self.shape,
                "each size must be an integer >= 2",
            )
        object.__setattr__(self, "shape", (int(shape[0]), int(shape[1])))

    @property
    def n_sites(self) -> int:
        """The number of sites ``N = Lx Ly``."""
        return self.shape[0] * self.shape[1]

    @property
    def is_square(self) -> bool:
        """Whether ``Lx == Ly``."""
        return self.shape[0] == self.shape[1]

    def require_power_of_two(self, what: str) -> int:
        """The side length ``L`` of a square lattice whose side is a power of two (hierarchies need it)."""
        size = self.shape[0]
        if not (self.is_square and size & (size - 1) == 0):
            raise InputError(
                "lattice.shape", list(self.shape), f"{what} needs a square L x L lattice with L a power of 2"
            )
        return size

    @cached_property
    def momenta(self) -> tuple[np.ndarray, np.ndarray]:
        """Momentum grids ``(k_x, k_y)``, each of shape ``(Lx, Ly)``, in FFT order."""
        kx = 2 * np.pi * np.fft.fftfreq(self.shape[0])
        ky = 2 * np.pi * np.fft.fftfreq(self.shape[1])
        return np.meshgrid(kx, ky, indexing="ij")

    @cached_property
    def laplacian_eigenvalues(self) -> np.ndarray:
        """Eigenvalues of minus the lattice Laplacian, ``sum_mu 4 sin^2(k_mu / 2)`` (float64)."""
        kx, ky = self.momenta
        return 4 * np.sin(kx / 2) ** 2 + 4 * np.sin(ky / 2) ** 2

    @cached_property
    def adjacency_eigenvalues(self) -> np.ndarray:
        """Eigenvalues of the nearest-neighbour adjacency matrix, ``2 (cos k_x + cos k_y)`` (float64)."""
        kx, ky = self.momenta
        return 2 * (np.cos(kx) + np.cos(ky))

    @cached_property
    def momentum_norm(self) -> np.ndarray:
        """``|k|`` on the FFT grid, with ``k`` folded into ``[-pi, pi)``."""
        kx, ky = self.momenta
        fold = lambda k: (k + np.pi) % (2 * np.pi) - np.pi  # noqa: E731
        return np.hypot(fold(kx), fold(ky))

    def check_field(self, phi, name: str = "phi") -> None:
        """Raise :class:`InputError` unless the last two axes of ``phi`` are this lattice."""
        shape = tuple(jnp.shape(phi))
        if shape[-2:] != self.shape:
            raise InputError(f"{name}.shape", shape, f"the last two axes must be the lattice {self.shape}")


def neighbour_sum(phi):
    """``sum_mu phi_{x+mu}`` over the two forward neighbours of every site (batched)."""
    return jnp.roll(phi, -1, axis=-2) + jnp.roll(phi, -1, axis=-1)


def apply_circulant(phi, eigenvalues):
    """Apply the translation-invariant operator with Fourier eigenvalues ``eigenvalues`` to ``phi``.

    ``(C phi)_x = IFFT[eig_k FFT[phi]_k]_x``; the cost is ``O(N log N)`` instead of ``O(N^2)``.
    """
    return jnp.fft.irfft2(jnp.fft.rfft2(phi) * eigenvalues[..., : phi.shape[-1] // 2 + 1], s=phi.shape[-2:])

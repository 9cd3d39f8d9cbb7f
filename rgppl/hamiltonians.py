r"""Lattice Hamiltonians written declaratively as sums of small terms.

A :class:`Hamiltonian` is a lattice plus a tuple of terms. Every term is an Equinox module, a pure
JAX function of the field whose couplings are data (pytree leaves), so energies can be jitted,
vmapped and differentiated with respect to both the field and the couplings.  The energy ``E(phi)``
defines the Boltzmann weight ``p(phi) ∝ exp(-E(phi))``; it is handed to the inference engines as

* ``energy(phi)``          -- batched over any leading axes of ``phi[..., Lx, Ly]``;
* ``potential_fn(params)`` -- NumPyro's potential, ``E(params["phi"])``;
* ``model()``              -- a NumPyro model: an ``ImproperUniform`` site ``"phi"`` plus the
  factor ``-E(phi)``, usable with stock NUTS, SVI and autoguides.

Terms (sums over sites $x$ and forward links $\mu$, see :mod:`rgppl.lattice`):

| term | energy | |
|---|---|---|
| ``Gradient`` | $\frac{\kappa}{2}\sum_{x,\mu}(\phi_{x+\mu}-\phi_x)^2$ | quadratic |
| ``Hopping`` | $-\beta\sum_{x,\mu}\phi_x\phi_{x+\mu}$ | quadratic |
| ``Mass`` | $\frac{m^2}{2}\sum_x\phi_x^2$ | quadratic |
| ``Quartic`` | $\lambda\sum_x\phi_x^4$ | |
| ``DoubleWell`` | $g\sum_x(\phi_x^2-1)^2$ | |
| ``IsingDual`` | $\frac12 x^\top(K+\alpha I)^{-1}x-\sum_x\ln\cosh x_x$, $K = \beta\,\mathrm{adjacency}$, by FFT | |
| ``Custom`` | any JAX function of one configuration $\phi[L_x, L_y] \to \mathbb{R}$ | |
"""

import abc
from collections.abc import Callable
from typing import override

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist

from rgppl.errors import InputError, is_number, require
from rgppl.lattice import Lattice, apply_circulant, neighbour_sum
from rgppl.storage import fingerprint

BETA_C_ISING = 0.5 * np.log(1 + np.sqrt(2))  # 0.44068679350977147
MAX_COUPLING = 1e6
FLOAT32_CONDITION = 1 / float(np.finfo(np.float32).eps)  # 8.4e6
BETA_C_PHI4_HOPPING = 0.68  # WC-RG's critical point of the hopping-form phi^4 model


def _site_sum(values):
    return jnp.sum(values, axis=(-2, -1))


def _coupling(term: str, name: str, value) -> float:
    """A coupling as a float, or an :class:`InputError` naming ``term.name``: a finite real number (numpy scalars
    included) of magnitude at most ``MAX_COUPLING``."""
    require(is_number(value), f"{term}.{name}", value, "a coupling must be a finite real number")
    require(
        abs(value) <= MAX_COUPLING,
        f"{term}.{name}",
        value,
        f"a coupling of magnitude at most {MAX_COUPLING:.0e}: float32, which the samplers run in, keeps about 7 "
        "significant digits, so beside a larger coupling the other terms of a unit field vanish",
    )
    return float(value)


def log_cosh(x):
    """Overflow-free ``ln cosh x = |x| + log1p(exp(-2|x|)) - ln 2``."""
    ax = jnp.abs(x)
    return ax + jnp.log1p(jnp.exp(-2 * ax)) - jnp.log(2.0).astype(ax.dtype)


class Term(eqx.Module):
    """One additive piece of a Hamiltonian.

    ``quadratic_spectrum`` returns the Fourier eigenvalues ``M_k`` of a translation-invariant
    quadratic term written as ``1/2 phi^T M phi``, or ``None`` for a non-quadratic term;
    ``confining`` says whether the term alone bounds the energy below at large ``|phi|``.
    Terms of phi^4 form, ``-J sum_<xy> phi_x phi_y + sum_x v(phi_x)``, give ``J`` by
    ``hopping_coupling`` and ``v`` by ``site_energy`` (elementwise); other terms return ``None``.
    """

    kind: str = eqx.field(static=True, init=False, default="term")
    confining: bool = eqx.field(static=True, init=False, default=False)

    @abc.abstractmethod
    def energy(self, phi):
        """The term's energy for ``phi[..., Lx, Ly]``, an array of the leading shape."""

    def validate(self, lattice: Lattice) -> None:
        """Raise :class:`InputError` if the term is ill-defined on ``lattice``."""

    def quadratic_spectrum(self, lattice: Lattice) -> np.ndarray | None:
        """The eigenvalues ``M_k`` of ``1/2 phi^T M phi`` on ``lattice``'s momenta, or ``None`` if not quadratic."""
        return None

    def hopping_coupling(self) -> float | None:
        """``J`` of ``-J sum_<xy> phi_x phi_y``, or ``None`` if the term is not of phi^4 form."""
        return None

    def site_energy(self, phi):
        """``v(phi_x)`` elementwise, or ``None`` if the term is not of phi^4 form."""
        return None

    def describe(self) -> dict:
        """The term as a card writes it: ``{type, coupling...}``."""
        couplings = {k: float(v) for k, v in vars(self).items() if k not in ("kind", "confining")}
        return {"type": self.kind, **couplings}


class Gradient(Term):
    r"""$\frac{\kappa}{2}\sum_{x,\mu}(\phi_{x+\mu}-\phi_x)^2$: the lattice kinetic term ($\kappa = 1$ canonical)."""

    kappa: float = 1.0
    kind = "gradient"

    def __post_init__(self):
        self.kappa = _coupling("gradient", "kappa", self.kappa)

    @override
    def energy(self, phi):
        dx = jnp.roll(phi, -1, axis=-2) - phi
        dy = jnp.roll(phi, -1, axis=-1) - phi
        return 0.5 * self.kappa * _site_sum(dx**2 + dy**2)

    @override
    def quadratic_spectrum(self, lattice):
        return float(self.kappa) * lattice.laplacian_eigenvalues

    @override
    def hopping_coupling(self):
        return self.kappa  # sum_{x,mu} (phi_{x+mu} - phi_x)^2 = 4 sum_x phi_x^2 - 2 sum_<xy> phi_x phi_y

    @override
    def site_energy(self, phi):
        return 2 * self.kappa * phi**2


class Hopping(Term):
    r"""$-\beta\sum_{x,\mu}\phi_x\phi_{x+\mu}$: nearest-neighbour hopping (ferromagnetic for $\beta > 0$)."""

    beta: float
    kind = "hopping"

    def __post_init__(self):
        self.beta = _coupling("hopping", "beta", self.beta)

    @override
    def energy(self, phi):
        return -self.beta * _site_sum(phi * neighbour_sum(phi))

    @override
    def quadratic_spectrum(self, lattice):
        return -float(self.beta) * lattice.adjacency_eigenvalues

    @override
    def hopping_coupling(self):
        return self.beta

    @override
    def site_energy(self, phi):
        return jnp.zeros_like(phi)


class LocalTerm(Term):
    """A term ``sum_x v(phi_x)`` of the field at single sites."""

    @abc.abstractmethod
    def site_energy(self, phi):
        """``v(phi_x)``, elementwise."""

    @override
    def energy(self, phi):
        return _site_sum(self.site_energy(phi))

    @override
    def hopping_coupling(self):
        return 0.0


class Mass(LocalTerm):
    r"""$\frac{m^2}{2}\sum_x\phi_x^2$ (``m2`` $= m^2$ may be negative when a quartic term confines the field)."""

    m2: float
    kind = "mass"

    def __post_init__(self):
        self.m2 = _coupling("mass", "m2", self.m2)

    @override
    def site_energy(self, phi):
        return 0.5 * self.m2 * phi**2

    @override
    def quadratic_spectrum(self, lattice):
        return np.full(lattice.shape, float(self.m2))


class Quartic(LocalTerm):
    r"""$\lambda\sum_x\phi_x^4$ with ``lam`` $= \lambda > 0$."""

    lam: float
    kind = "quartic"
    confining = True

    def __post_init__(self):
        self.lam = _coupling("quartic", "lam", self.lam)
        require(self.lam > 0, "quartic.lam", self.lam, "the quartic coupling must be > 0 (else E is unbounded below)")

    @override
    def site_energy(self, phi):
        return self.lam * phi**4


class DoubleWell(LocalTerm):
    r"""$g\sum_x(\phi_x^2-1)^2$ with ``coupling`` $= g > 0$."""

    coupling: float = 1.0
    kind = "double_well"
    confining = True

    def __post_init__(self):
        self.coupling = _coupling("double_well", "coupling", self.coupling)
        require(self.coupling > 0, "double_well.coupling", self.coupling, "must be > 0 (else E is unbounded below)")

    @override
    def site_energy(self, phi):
        return self.coupling * (phi**2 - 1) ** 2


class IsingDual(Term):
    r"""The continuous (Hubbard-Stratonovich) dual of the Ising model (Li & Wang 2018, eq. 8):

    $$E(x) = \tfrac12 x^\top A^{-1} x - \sum_i \ln\cosh x_i, \qquad A = K + \alpha I, \qquad
    K = \beta\,\mathrm{adjacency},$$

    so that $\tfrac12 s^\top K s = \beta\sum_{\langle ij\rangle} s_i s_j$.  $A$ is circulant with eigenvalues
    $\alpha + 2\beta(\cos k_x + \cos k_y)$ and is applied by FFT; it must be positive definite.
    $x \mid s \sim \mathcal{N}(A s, A)$ and $P(s_i = +1 \mid x) = \sigma(2 x_i)$.
    """

    beta: float
    alpha: float
    kind = "ising_dual"
    confining = True

    def __post_init__(self):
        self.beta = _coupling("ising_dual", "beta", self.beta)
        self.alpha = _coupling("ising_dual", "alpha", self.alpha)

    def a_eigenvalues(self, lattice: Lattice):
        """Fourier eigenvalues of ``A = K + alpha I`` (traceable in the couplings)."""
        return self.alpha + self.beta * lattice.adjacency_eigenvalues

    @override
    def validate(self, lattice):
        smallest = float(np.min(self.a_eigenvalues(lattice)))
        lowest_alpha = float(self.alpha) - smallest
        require(
            smallest > 0,
            "ising_dual.alpha",
            float(self.alpha),
            f"A = K + alpha I must be positive definite: need alpha > {lowest_alpha:.6g} for beta = {float(self.beta)} "
            f"on this lattice (the default is {lowest_alpha + 0.1:.6g})",
        )

    @override
    def energy(self, x):
        inverse = 1.0 / self.a_eigenvalues(Lattice(x.shape[-2:]))
        quadratic = 0.5 * _site_sum(x * apply_circulant(x, inverse.astype(x.dtype)))
        return quadratic - _site_sum(log_cosh(x))


class Custom(Term):
    """A user term: any JAX function of one configuration ``phi[Lx, Ly] -> scalar`` (vectorised here)."""

    fn: Callable = eqx.field(static=True)
    name: str = eqx.field(static=True, default="custom")
    kind = "custom"

    def __post_init__(self):
        require(callable(self.fn), "custom.fn", self.fn, "give a JAX function phi[Lx, Ly] -> scalar")

    def validate(self, lattice):
        """The function must trace on a ``float32[Lx, Ly]`` field to a scalar (checked abstractly, nothing is run)."""
        where, function = f"custom.{self.name}", self.describe()["function"]
        try:
            out = jax.eval_shape(self.fn, jax.ShapeDtypeStruct(lattice.shape, jnp.float32))
        except Exception as error:  # noqa: BLE001 -- user code: whatever it raises is reported, not a traceback
            raise InputError(
                where,
                function,
                f"it must trace as a JAX function phi[Lx, Ly] -> scalar, but on a "
                f"{lattice.shape} field it raised {type(error).__name__}: {error}",
            ) from None
        require(
            getattr(out, "shape", None) == (),
            where,
            function,
            f"a function phi[Lx, Ly] -> scalar; on a {lattice.shape} field it returns {getattr(out, 'shape', out)}",
        )

    @override
    def energy(self, phi):
        return jnp.vectorize(self.fn, signature="(n,m)->()")(phi)

    def describe(self):
        """The term's name, its function's qualified name and a fingerprint of its code (so that a checkpoint of one
        custom term is not resumed with another of the same name)."""
        code = getattr(self.fn, "__code__", None)
        closure = [repr(cell.cell_contents) for cell in getattr(self.fn, "__closure__", None) or ()]
        source = repr(self.fn) if code is None else (code.co_code, repr(code.co_consts), code.co_names, closure)
        return {
            "type": "custom",
            "name": self.name,
            "function": getattr(self.fn, "__qualname__", repr(self.fn)),
            "code": fingerprint(source),
        }


class Hamiltonian(eqx.Module):
    """``E(phi) = sum_t E_t(phi)`` on a periodic lattice; ``p(phi) ∝ exp(-E(phi))``."""

    lattice: Lattice = eqx.field(static=True)
    terms: tuple[Term, ...]
    name: str = eqx.field(static=True, default="hamiltonian")

    def __post_init__(self):
        if not isinstance(self.lattice, Lattice):
            self.lattice = Lattice(self.lattice)
        self.terms = tuple(self.terms)
        require(len(self.terms) > 0, "hamiltonian.terms", [], "give at least one term")
        for term in self.terms:
            require(isinstance(term, Term), "hamiltonian.terms", term, "each term must be an rgppl Term")
            term.validate(self.lattice)
        self._check_bounded_below()

    def _check_bounded_below(self):
        if any(t.confining or isinstance(t, Custom) for t in self.terms):
            return
        spectrum = self.quadratic_spectrum()
        smallest, largest = float(spectrum.min()), float(spectrum.max())
        if smallest <= 0:
            k = np.unravel_index(np.argmin(spectrum), spectrum.shape)
            raise InputError(
                "hamiltonian.terms",
                [t.describe() for t in self.terms],
                "a purely quadratic energy must be positive definite, "
                f"but its eigenvalue at momentum index {tuple(map(int, k))} "
                f"is {smallest:.6g}; add a mass m2 > 0 or a confining term",
            )
        require(
            largest / smallest <= FLOAT32_CONDITION,
            "hamiltonian.terms",
            [t.describe() for t in self.terms],
            f"a quadratic energy whose stiffest and softest modes differ by at most {FLOAT32_CONDITION:.2g} (1/eps of "
            f"float32, which the samplers run in); here they differ by {largest / smallest:.3g}: raise the mass",
        )

    @property
    def n_sites(self) -> int:
        """The number of lattice sites ``N``."""
        return self.lattice.n_sites

    def on(self, lattice: Lattice) -> "Hamiltonian":
        """The same terms and couplings on another lattice (e.g. a smaller volume to train a flow on first)."""
        return Hamiltonian(lattice, self.terms, name=self.name)

    def quadratic_spectrum(self) -> np.ndarray | None:
        """Fourier eigenvalues of ``M`` when ``E = 1/2 phi^T M phi`` exactly, else ``None``."""
        spectra = [t.quadratic_spectrum(self.lattice) for t in self.terms]
        if any(s is None for s in spectra):
            return None
        return np.sum(spectra, axis=0)

    def energy(self, phi):
        """``E(phi)`` for ``phi[..., Lx, Ly]``; returns an array of the leading shape."""
        self.lattice.check_field(phi)
        return sum(term.energy(phi) for term in self.terms)

    def log_density(self, phi):
        """Unnormalised ``ln p(phi) = -E(phi)`` (the ``logdensity_fn`` of BlackJAX-style samplers)."""
        return -self.energy(phi)

    def potential_fn(self, params: dict):
        """NumPyro's potential energy: ``E(params["phi"])``."""
        return self.energy(params["phi"])

    def model(self):
        """NumPyro model ``p(phi) ∝ exp(-E(phi))``: an improper flat site ``phi`` and a factor ``-E``."""
        phi = numpyro.sample("phi", dist.ImproperUniform(dist.constraints.real, (), event_shape=self.lattice.shape))
        numpyro.factor("boltzmann_weight", -self.energy(phi))

    def describe(self) -> dict:
        """The Hamiltonian as a card writes it, with its lattice, terms and name."""
        return {"name": self.name, "lattice": list(self.lattice.shape), "terms": [t.describe() for t in self.terms]}

    def phi4_form(self) -> tuple:
        """``(J, v)`` with ``E = -J sum_<xy> phi_x phi_y + sum_x v(phi_x)``; an :class:`InputError` if ``E`` is not of
        that form (Ising-dual and custom terms are not).  ``J`` is traceable (the couplings may be traced)."""
        couplings = [t.hopping_coupling() for t in self.terms]
        others = [t.kind for t, J in zip(self.terms, couplings, strict=True) if J is None]
        require(
            not others,
            "hamiltonian.terms",
            others,
            "this needs E = -J sum_<xy> phi_x phi_y + sum_x v(phi_x): "
            "gradient, hopping, mass, quartic, double_well terms",
        )
        return sum(couplings), lambda phi: sum(t.site_energy(phi) for t in self.terms)

    def term(self, kind: str) -> Term | None:
        """The first term of type ``kind`` (e.g. ``"ising_dual"``), or ``None``."""
        return next((t for t in self.terms if t.kind == kind), None)


# ---- the models of the reference sheet -------------------------------------------------------


def free_field(shape, m2: float = 1.0) -> Hamiltonian:
    """Gaussian free field ``E = 1/2 sum (nabla phi)^2 + m2/2 sum phi^2`` (``m2 > 0``)."""
    require(is_number(m2) and m2 > 0, "free_field.m2", m2, "the free-field mass m2 must be a number > 0")
    return Hamiltonian(Lattice(shape), (Gradient(1.0), Mass(float(m2))), name="free_field")


def ising_dual(shape, beta: float = BETA_C_ISING, alpha: float | None = None) -> Hamiltonian:
    """Continuous Ising dual at inverse temperature ``beta``.

    ``alpha`` defaults to ``0.1 - lambda_min(K)`` (``0.1 + 4 beta`` on even lattices), so that the
    smallest eigenvalue of ``A`` is 0.1, as in Li & Wang's NeuralRG.
    """
    lattice = Lattice(shape)
    beta = _coupling("ising_dual", "beta", beta)
    if alpha is None:
        alpha = 0.1 - float((beta * lattice.adjacency_eigenvalues).min())
    return Hamiltonian(lattice, (IsingDual(beta, alpha),), name="ising_dual")


def phi4_hopping(shape, beta: float = BETA_C_PHI4_HOPPING) -> Hamiltonian:
    """phi^4 in hopping form (WC-RG): ``E = -beta sum_<xy> phi_x phi_y + sum_x [phi_x^2 + (phi_x^2 - 1)^2]``.

    Critical near ``beta_c ~ 0.68``.
    """
    return Hamiltonian(Lattice(shape), (Hopping(beta), Mass(2.0), DoubleWell(1.0)), name="phi4_hopping")


def phi4_lattice_qft(shape, m2: float = -4.0, lam: float = 8.0) -> Hamiltonian:
    """phi^4 in lattice-QFT form (Albergo et al.):
    ``S = sum_x [sum_mu (phi_{x+mu} - phi_x)^2 + m2 phi_x^2 + lam phi_x^4]`` (no 1/2, no 4!),
    i.e. ``Gradient(kappa=2) + Mass(2 m2) + Quartic(lam)``.  With ``m2 = -4``, ``lam_c ~ 4.25-4.29``.
    """
    m2 = _coupling("phi4_lattice_qft", "m2", m2)
    return Hamiltonian(Lattice(shape), (Gradient(2.0), Mass(2 * m2), Quartic(lam)), name="phi4_lattice_qft")


TERM_TYPES: dict[str, type[Term]] = {
    cls.kind: cls for cls in (Gradient, Hopping, Mass, Quartic, DoubleWell, IsingDual, Custom)
}
PRESETS: dict[str, Callable[..., Hamiltonian]] = {
    "free_field": free_field,
    "ising_dual": ising_dual,
    "phi4_hopping": phi4_hopping,
    "phi4_lattice_qft": phi4_lattice_qft,
}

"""``AutoNeuralRG``: the NeuralRG flow as a NumPyro autoguide.

The guide is a NumPyro ``AutoContinuous`` whose posterior is the
``TransformedDistribution`` ``NeuralRGDistribution(N(0, I), NeuralRGTransform(flow))`` over the model's
single lattice site, so stock ``SVI``/``Trace_ELBO`` train it and stock ``NeuTraReparam(guide, params)``
runs NUTS in its latent space.  With ``symmetric=True`` the posterior is the Z2-symmetrised mixture
``q_sym(x) = [q(x) + q(-x)] / 2`` (Li & Wang's remedy for the mode seeking of the reverse KL on
models invariant under x -> -x); ``get_transform`` is always the bijection ``g`` itself.  With
``SVISettings(train_q_sym=False)`` (:mod:`rgppl.infer.training`) SVI trains the plain flow ``q``
(:meth:`AutoNeuralRG.get_flow_posterior`, one pass of the flow per draw instead of two) while
``get_posterior`` still returns ``q_sym``: for an even target ``p``, ``KL(q_sym||p) <= KL(q||p)`` by
convexity, so training ``q`` minimises an upper bound on the KL of the posterior that is reported.

The flow's weights are one NumPyro ``param`` (an Equinox pytree) initialised from the seed handler's
key, so one root key fixes the whole run.
"""

from typing import override

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
from numpyro.distributions import constraints
from numpyro.distributions.transforms import Transform
from numpyro.infer.autoguide import AutoContinuous
from numpyro.infer.util import potential_energy

from rgppl.errors import require
from rgppl.flows.neuralrg import FlowSettings, NeuralRGFlow
from rgppl.lattice import Lattice
from rgppl.mesh import constrain_batch


def _batched(method, values, side: int):
    """Apply ``method(fields[..., L, L]) -> (fields, log_det)`` to flattened ``values[..., L*L]``."""
    batch = values.shape[:-1]
    fields, log_det = method(values.reshape(*batch, side, side))
    return fields.reshape(*batch, side * side), log_det


def sample_with_log_prob(distribution, key, n: int):
    """``(x[n, ...], ln q(x)[n])``: ``n`` draws in one batch, with their log density from the generative pass
    (no inverse pass where the distribution keeps the intermediates).  Under ``jit`` the batch is sharded over the
    device mesh (:func:`rgppl.mesh.constrain_batch`): each device draws its share."""
    x, intermediates = distribution.sample_with_intermediates(key, (n,))
    x = constrain_batch(x)
    return x, distribution.log_prob(x, intermediates) if intermediates else distribution.log_prob(x)


class NeuralRGTransform(Transform):
    """The NeuralRG bijection as a NumPyro ``Transform`` on flattened fields ``[..., L*L]`` (latent -> field).

    The generative pass gives ``x = g(z)`` and ``ln|det dg/dz|`` together.  ``__call__`` keeps the log-det of
    its last call, so ``log_abs_det_jacobian(z, x)`` on that very ``z`` and ``x`` (the same arrays or tracers,
    compared by identity, like ``cache_size=1`` in ``torch.distributions``) costs nothing: stock
    ``NeuTraReparam`` calls the two in turn, and XLA does not merge two copies of the pass.
    """

    domain = constraints.real_vector
    codomain = constraints.real_vector

    def __init__(self, flow: NeuralRGFlow):
        self.params, self.static = eqx.partition(flow, eqx.is_array)

    @property
    def flow(self) -> NeuralRGFlow:
        """The bijection, its arrays recombined with its static structure."""
        return eqx.combine(self.params, self.static)

    @override
    def call_with_intermediates(self, z):
        flow = self.flow
        return _batched(flow.transform_and_log_det, z, flow.side)

    @override
    def __call__(self, z):
        x, log_det = self.call_with_intermediates(z)
        self._last_call = (z, x, log_det)
        return x

    def _inverse(self, x):
        flow = self.flow
        return _batched(flow.inverse_and_log_det, x, flow.side)[0]

    @override
    def log_abs_det_jacobian(self, z, x, intermediates=None):
        if intermediates is not None:
            return intermediates
        last_z, last_x, log_det = getattr(self, "_last_call", (None, None, None))
        return log_det if z is last_z and x is last_x else self.call_with_intermediates(z)[1]

    @override
    def tree_flatten(self):
        return (self.params,), (("params",), {"static": self.static})


class NeuralRGDistribution(dist.TransformedDistribution):
    """``q(x) = N(g^-1(x); 0, I) |det dg^-1/dx|``, the base pushed through a :class:`NeuralRGTransform`.

    ``log_prob`` without intermediates takes the one inverse pass that gives both ``z`` and the log-det
    (the stock one follows its inverse pass with a generative pass for the log-det: twice the cost).
    """

    @override
    def log_prob(self, value, intermediates=None):
        if intermediates is not None:
            return super().log_prob(value, intermediates)
        flow = self.transforms[0].flow
        z, log_det = _batched(flow.inverse_and_log_det, value, flow.side)
        return self.base_dist.log_prob(z) + log_det


class Z2Symmetrized(dist.Distribution):
    """``q_sym(x) = [q(x) + q(-x)] / 2`` for a flow ``q``: draw from ``q``, flip the sign with probability 1/2.

    For a folded flow (``q`` on ``m > 0`` only, ``FlowSettings.fold``) one term is zero:
    ``q_sym(x) = q(sign(m) x) / 2``, one inverse pass, and none for a draw's own intermediates.
    """

    arg_constraints = {}
    support = constraints.real_vector
    pytree_aux_fields = ("flow", "folded")

    def __init__(self, flow: dist.TransformedDistribution, folded: bool = False):
        self.flow, self.folded = flow, folded
        super().__init__(batch_shape=flow.batch_shape, event_shape=flow.event_shape)

    @override
    def sample(self, key, sample_shape=()):
        return self.sample_with_intermediates(key, sample_shape)[0]

    def sample_with_intermediates(self, key, sample_shape=()):
        """The draw ``+-x`` and, as intermediates, ``x`` and ``ln q(x)`` (known from the generative pass)."""
        key_flow, key_sign = jax.random.split(key)
        x, intermediates = self.flow.sample_with_intermediates(key_flow, sample_shape)
        sign = jax.random.rademacher(key_sign, x.shape[:-1] + (1,), dtype=x.dtype)
        return sign * x, [x, self.flow.log_prob(x, intermediates)]

    def log_prob(self, value, intermediates=None):
        """``ln q_sym``: with the intermediates of a draw, one inverse pass (for ``-x``) instead of two."""
        if self.folded:
            if intermediates:
                return intermediates[1] - jnp.log(2.0)
            sign = jnp.where(value.mean(axis=-1, keepdims=True) < 0, -1.0, 1.0)
            return self.flow.log_prob(sign * value) - jnp.log(2.0)
        if intermediates:
            x, log_q = intermediates
            return jnp.logaddexp(log_q, self.flow.log_prob(-x)) - jnp.log(2.0)
        return jnp.logaddexp(self.flow.log_prob(value), self.flow.log_prob(-value)) - jnp.log(2.0)


class AutoNeuralRG(AutoContinuous):
    """A NeuralRG normalizing-flow guide for a model with one lattice site ``phi[L, L]``.

    Usage::

        guide = AutoNeuralRG(hamiltonian.model, FlowSettings(couplings=4, width=32))
        svi = SVI(hamiltonian.model, guide, optimizer, Trace_ELBO(num_particles=256, vectorize_particles=True))

    ``settings`` fixes the architecture (:class:`~rgppl.flows.neuralrg.FlowSettings`).
    """

    def __init__(self, model, settings: FlowSettings = FlowSettings(), *, prefix: str = "auto", init_loc_fn=None):
        self.settings = settings
        kwargs = {"init_loc_fn": init_loc_fn} if init_loc_fn is not None else {}
        super().__init__(model, prefix=prefix, **kwargs)

    @property
    def param_name(self) -> str:
        """The name of the guide's parameter site in NumPyro's parameter store."""
        return f"{self.prefix}_neuralrg"

    def _setup_prototype(self, *args, **kwargs):
        super()._setup_prototype(*args, **kwargs)
        sites = [
            s
            for s in self.prototype_trace.values()
            if s["type"] == "sample" and not s["is_observed"] and not s["infer"].get("is_auxiliary")
        ]
        shapes = [tuple(np.shape(s["value"])) for s in sites]
        require(
            len(sites) == 1 and len(shapes[0]) == 2,
            "model",
            shapes,
            "AutoNeuralRG needs a model with exactly one latent site, a 2D lattice field phi[L, L]",
        )
        self.lattice = Lattice(shapes[0])
        self.settings.resolved_levels(self.lattice)
        self._static = eqx.partition(self._build(jax.random.PRNGKey(0)), eqx.is_array)[1]

    def _build(self, key) -> NeuralRGFlow:
        return NeuralRGFlow(key, self.lattice, self.settings)

    def _flow_distribution(self, flow: NeuralRGFlow, symmetric: bool):
        q = NeuralRGDistribution(self.get_base_dist(), NeuralRGTransform(flow))
        return Z2Symmetrized(q, folded=self.settings.fold) if symmetric else q

    def _get_posterior(self):
        params = numpyro.param(self.param_name, lambda key: eqx.partition(self._build(key), eqx.is_array)[0])
        return self._flow_distribution(eqx.combine(params, self._static), self.settings.symmetric)

    @override
    def get_base_dist(self):
        return dist.Normal(jnp.zeros(self.latent_dim), 1.0).to_event(1)

    def model_potential(self, latent, *args, **kwargs):
        """``U(u)``, the model's potential energy at latent vectors ``u[..., L*L]`` in the guide's unconstrained
        space: ``-ln p`` of the field plus the log-Jacobian of its support's bijection (none for real fields)."""
        one = lambda u: potential_energy(self.model, args, kwargs, self._unpack_latent(u))
        return jax.vmap(one)(latent.reshape(-1, latent.shape[-1])).reshape(latent.shape[:-1])

    def flow(self, params) -> NeuralRGFlow:
        """The trained bijection (an Equinox module) from SVI's ``params``."""
        return eqx.combine(params[self.param_name], self._static)

    @override
    def get_transform(self, params):
        return NeuralRGTransform(self.flow(params))

    def get_posterior(self, params):
        """The guide's posterior: ``q_sym`` with ``FlowSettings.symmetric``, else the flow's ``q``."""
        return self._flow_distribution(self.flow(params), self.settings.symmetric)

    def get_flow_posterior(self, params):
        """The flow's own ``q``, not symmetrised: what SVI trains with ``SVISettings(train_q_sym=False)``."""
        return self._flow_distribution(self.flow(params), False)

"""Training a flow guide with NumPyro's SVI: reverse KL on an energy, forward KL on data, or a mix.

Objectives (minimised, in nats):

* ``reverse``: ``F_q = E_q[ln q(x) + E(x)]`` (the negative ELBO of :meth:`Hamiltonian.model`) on ``batch``
  reparameterised draws; ``F_q >= -ln Z`` and ``F_q + ln Z = KL(q||p)``.  An :class:`AutoNeuralRG` draws
  them as one batch through its flow (an L = 16 spline step 2.5 times faster than under ``Trace_ELBO``'s
  per-particle ``vmap``); other guides use stock ``Trace_ELBO``.
* ``forward``: ``-(1/n) sum_i ln q(x_i)`` on a minibatch of ``batch`` fields from a data ensemble
  (maximum likelihood; KL(p_data||q) up to the data entropy), for when there are samples but no energy.
* ``mixed``: ``w F_q + (1 - w) (-mean ln q(x_data))`` with ``w = reverse_weight``.

``gradient`` chooses the estimator of F_q's gradient from the same draws ``x = g_theta(z)``:

* ``total``: the gradient of ``ln q_theta(x) + E(x)`` through both ``theta`` and ``x`` (the reparameterisation
  gradient of ``Trace_ELBO``);
* ``path``: the path gradient ``E_z[grad_x (ln q_theta'(x) + E(x)) . dx/dtheta]`` at ``theta' = theta``, i.e. the
  same with the density's own parameters held fixed (Roeder, Wu & Duvenaud, "Sticking the landing",
  NeurIPS 2017; Vaitl, Nicoli, Winkler & Kessel, arXiv:2207.08219, for lattice field theory).  The term it
  drops, the score ``E_q[grad_theta ln q_theta] = 0``, vanishes in expectation, so it is unbiased, and its
  variance vanishes as ``q -> p``.  It costs one extra inverse pass (an L = 8 spline step 0.114 -> 0.167 s) and
  buys a lower KL for the same steps (L = 8, 3000 steps after the same maximum likelihood: 0.158 against
  0.188 nats); AutoNeuralRG only.

With ``pretrain_steps > 0`` the objective's ``steps`` are preceded by ``pretrain_steps`` of ``forward`` on
the data, with their own optimiser and cosine schedule: maximum likelihood puts mass on every mode
before the mode-seeking reverse KL refines it.  :func:`stages` spells a setting out as its stages, and
:func:`train_flow` runs them one after the other through :func:`train_stage`.

Adam (optax) with global-norm clipping and a cosine-decayed learning rate.  rgppl's run loop
(:mod:`rgppl.loop`) runs ``lax.scan`` chunks of ``report_every`` steps compiled once, shows the loss in a
progress bar, and every
``checkpoint_every`` steps estimates F_q and the importance-sampling ESS on fresh draws and may write the
whole SVI state to a checkpoint (:mod:`rgppl.checkpoints`; at most one per ``checkpoint_seconds``, see
:mod:`rgppl.loop`); ``resume=True`` continues bit for bit.  A
non-finite loss, or one more than ``EXPLODED_NATS_PER_SITE`` per site above the best chunk so far, stops
the run with :class:`SamplingDiverged`; the last good checkpoint is kept.
"""

from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import override

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
from numpyro import handlers
from numpyro.infer import SVI, Trace_ELBO
from numpyro.infer.autoguide import AutoContinuous
from numpyro.infer.elbo import ELBO
from numpyro.optim import optax_to_numpyro

from rgppl.ensembles import checked_ensemble
from rgppl.errors import SamplingDiverged, require, require_integer, require_seed, require_types
from rgppl.flows import AutoNeuralRG, FlowSettings, grown, sample_with_log_prob
from rgppl.loop import Phase, run_phases
from rgppl.mesh import constrain_batch, gather, shard_batch
from rgppl.storage import fingerprint

OBJECTIVES = ("reverse", "forward", "mixed")
GRADIENTS = ("total", "path")
EXPLODED_NATS_PER_SITE = 10.0
MONITORED = ("F_q", "F_q_err", "ess_fraction")  # the free-energy monitor at every checkpoint
INVERSE_MISMATCH_NATS = 1.0  # a folded draw whose inverse ln q is further off than this is not reproduced


@dataclass(frozen=True)
class SVISettings:
    """How a flow is trained; ``batch`` is the number of particles (or data fields) per step.

    The defaults are the recipe of the ``ising_dual_neuralrg_L8`` card, whose record gives its KL, but for the
    learning rate: that card takes 2e-3, measured at L = 8 only, and the grown cards keep 1e-3.  The recipe: the
    path ``gradient`` (``"total"`` for guides other than :class:`AutoNeuralRG`), and SVI on the flow's own ``q``
    while ``q_sym`` is reported (``train_q_sym = False``: half the cost per step, an upper bound on the
    reported KL; a folded flow needs ``True``, its ``q`` covers ``m > 0`` only).
    """

    steps: int = 2000
    batch: int = 256
    learning_rate: float = 1e-3
    clip_norm: float = 10.0
    objective: str = "reverse"
    reverse_weight: float = 0.5
    gradient: str = "path"
    train_q_sym: bool = False
    pretrain_steps: int = 0
    report_every: int = 50
    checkpoint_every: int = 500

    @property
    def trains_on_data(self) -> bool:
        """Whether the run needs data: the forward and mixed objectives, and pretraining."""
        return self.objective != "reverse" or self.pretrain_steps > 0

    def __post_init__(self):
        require_types(self, "svi")
        for name in ("steps", "batch", "report_every", "checkpoint_every"):
            require_integer(f"svi.{name}", getattr(self, name), 1)
        require_integer("svi.pretrain_steps", self.pretrain_steps, 0)
        require(
            self.pretrain_steps % self.report_every == 0,
            "svi.pretrain_steps",
            self.pretrain_steps,
            f"a multiple of report_every = {self.report_every}",
        )
        for name in ("learning_rate", "clip_norm"):
            require(getattr(self, name) > 0, f"svi.{name}", getattr(self, name), "a positive number")
        require(self.objective in OBJECTIVES, "svi.objective", self.objective, f"one of {OBJECTIVES}")
        require(
            self.gradient in GRADIENTS,
            "svi.gradient",
            self.gradient,
            f"one of {GRADIENTS}: the reparameterisation gradient, or the path gradient (AutoNeuralRG only)",
        )
        weight = self.reverse_weight
        require(0 <= weight <= 1, "svi.reverse_weight", self.reverse_weight, "a number in [0, 1]")
        require(
            self.steps % self.report_every == 0,
            "svi.steps",
            self.steps,
            f"a multiple of report_every = {self.report_every}",
        )
        require(
            self.checkpoint_every % self.report_every == 0,
            "svi.checkpoint_every",
            self.checkpoint_every,
            f"a multiple of report_every = {self.report_every}",
        )


def _with_generative_value(inverse_log_q, generative_log_q):
    """Draws' ``ln q`` for the path gradient: the value of the generative pass, the derivative of the inverse.

    A folded flow's inverse recovers a field's mean only to float32's resolution (``rgppl.flows.neuralrg``):
    a draw whose mean the fold put below it gets ``ln q = -inf``, or one hundreds of nats off, from the inverse
    pass, which would stop the run as if it had diverged.  A draw whose two ``ln q`` differ by more than
    ``INVERSE_MISMATCH_NATS`` keeps its exact value and gives no path term; the others differ by round-off.
    """
    agree = jnp.abs(inverse_log_q - generative_log_q) < INVERSE_MISMATCH_NATS
    path_term = jnp.where(agree, inverse_log_q - jax.lax.stop_gradient(inverse_log_q), 0.0)
    return jax.lax.stop_gradient(generative_log_q) + path_term


class FlowObjective(ELBO):
    """``w * F_q + (1 - w) * (-mean ln q(data minibatch))`` as a NumPyro ELBO object, usable by stock SVI.

    For an :class:`AutoNeuralRG`, ``F_q = mean[ln q(u) + U(u)]`` over ``batch`` draws ``u`` of the distribution
    it trains, taken as one batch through the flow, with ``U`` the model's potential energy; the same
    estimator as ``Trace_ELBO`` (which other guides use) without its per-particle ``vmap`` of the flow.
    With ``path_gradient`` the draws' ``ln q`` is evaluated with the flow's parameters held fixed (one inverse
    pass): the same value, the path gradient (see the module docstring).  For a folded flow the value is the
    generative pass's, which the fold's inverse cannot always reproduce (``_with_generative_value``).
    """

    def __init__(
        self, reverse_weight: float, batch: int, data=None, path_gradient: bool = False, train_q_sym: bool = False
    ):
        super().__init__(num_particles=batch)
        require(
            reverse_weight == 1 or data is not None,
            "data",
            None,
            "the forward and mixed objectives need a data ensemble of fields",
        )
        self.reverse_weight, self.batch, self.path_gradient = reverse_weight, batch, path_gradient
        self.train_q_sym = train_q_sym
        self.data = None if data is None else jnp.asarray(data).reshape(len(data), -1)
        self.trace_elbo = Trace_ELBO(num_particles=batch, vectorize_particles=True)

    def trained_distribution(self, guide):
        """The distribution SVI trains, as a function of the parameters."""
        if not isinstance(guide, AutoNeuralRG):
            return guide.get_posterior
        return guide.get_posterior if self.train_q_sym else guide.get_flow_posterior

    def _free_energy(self, key, param_map, model, guide, args, kwargs):
        if not isinstance(guide, AutoNeuralRG):
            return self.trace_elbo.loss(key, param_map, model, guide, *args, **kwargs)
        trained = self.trained_distribution(guide)
        latent, log_q = sample_with_log_prob(trained(param_map), key, self.batch)
        if self.path_gradient:
            inverse_log_q = trained(jax.lax.stop_gradient(param_map)).log_prob(latent)
            log_q = _with_generative_value(inverse_log_q, log_q) if guide.settings.fold else inverse_log_q
        return jnp.mean(log_q + guide.model_potential(latent, *args, **kwargs))

    @override
    def loss_with_mutable_state(self, rng_key, param_map, model, guide, *args, **kwargs):
        key_reverse, key_data = jax.random.split(rng_key)
        loss = 0.0
        if self.reverse_weight > 0:
            loss += self.reverse_weight * self._free_energy(key_reverse, param_map, model, guide, args, kwargs)
        if self.reverse_weight < 1:
            rows = jax.random.randint(key_data, (self.batch,), 0, self.data.shape[0])
            log_q = self.trained_distribution(guide)(param_map).log_prob(constrain_batch(self.data[rows]))
            loss -= (1 - self.reverse_weight) * log_q.mean()
        return {"loss": loss, "mutable_state": None}


@dataclass
class TrainedFlow:
    """A trained guide: the model, the guide, SVI's parameters and the training record."""

    hamiltonian: object
    guide: AutoNeuralRG
    params: dict
    losses: np.ndarray
    monitor: list = field(default_factory=list)  # rows {step, F_q, F_q_err, ess_fraction} at checkpoints
    training_time_s: float = 0.0
    _compiled: dict = field(default_factory=dict, repr=False)

    @property
    def flow(self):
        """The NeuralRG bijection (for :class:`AutoNeuralRG` guides)."""
        return self.guide.flow(self.params)

    def draw(self, key, n: int, batch: int = 2048):
        """``(x[n, L, L], ln q(x)[n], w[n])`` with ``w = -E(x) - ln q(x)``, ``x`` from the guide's posterior.

        The posterior is Z2-symmetric if the guide is.  Compiled once per batch size.
        """
        if batch not in self._compiled:
            shape = self.hamiltonian.lattice.shape

            def draws(hamiltonian, params, key):
                x, log_q = sample_with_log_prob(self.guide.get_posterior(params), key, batch)
                fields = x.reshape(batch, *shape)
                return fields, log_q, -hamiltonian.energy(fields) - log_q

            self._compiled[batch] = jax.jit(draws)
        # the parameters and keys on the current mesh (which training may not have used), one layout for every call
        params, keys = shard_batch((self.params, list(jax.random.split(key, -(-n // batch)))), None)
        chunks = gather([self._compiled[batch](self.hamiltonian, params, k) for k in keys])
        return tuple(np.concatenate([c[i] for c in chunks])[:n] for i in range(3))

    @property
    def fingerprint(self) -> str:
        """A short hash of the flow's parameters: a sampler's checkpoint on this flow resumes only with it."""
        return fingerprint(*jax.tree.leaves(self.params))

    @property
    def n_params(self) -> int:
        """The number of trained parameters."""
        return int(sum(np.size(leaf) for leaf in jax.tree.leaves(self.params)))


def optimizer(settings: SVISettings):
    """Adam with a cosine-decayed learning rate and global-norm clipping, as NumPyro's optimizer."""
    schedule = optax.cosine_decay_schedule(settings.learning_rate, settings.steps, alpha=0.01)
    return optax_to_numpyro(optax.chain(optax.clip_by_global_norm(settings.clip_norm), optax.adam(schedule)))


def objective(settings: SVISettings, data=None):
    """The SVI objective ``settings`` select (reverse, forward or mixed KL), on ``data`` where it needs them."""
    weight = {"reverse": 1.0, "forward": 0.0, "mixed": settings.reverse_weight}[settings.objective]
    return FlowObjective(
        weight, settings.batch, data, path_gradient=settings.gradient == "path", train_q_sym=settings.train_q_sym
    )


def _run_defining(settings: SVISettings) -> dict:
    """The settings a checkpoint must agree on to be resumed.  Two are left out: ``checkpoint_every``, which
    says when the state is saved and F_q estimated, never what the state is; and ``reverse_weight`` unless
    the objective is the mixed one that reads it, so that one maximum-likelihood stage serves any weight."""
    unused = {"checkpoint_every"} | ({"reverse_weight"} if settings.objective != "mixed" else set())
    return {k: v for k, v in asdict(settings).items() if k not in unused}


def stages(settings: SVISettings) -> list[SVISettings]:
    """The stages ``settings`` stands for: ``pretrain_steps`` of maximum likelihood on the data (forward KL, their
    own optimiser and schedule), then ``steps`` of its objective."""
    objective = replace(settings, pretrain_steps=0)
    if not settings.pretrain_steps:
        return [objective]
    return [replace(objective, objective="forward", steps=settings.pretrain_steps), objective]


def train_flow(
    hamiltonian,
    flow: FlowSettings | AutoContinuous = FlowSettings(),
    settings: SVISettings = SVISettings(),
    *,
    data=None,
    init: TrainedFlow | None = None,
    seed: int = 0,
    checkpoint=None,
    resume: bool = False,
    progress: bool = True,
    monitor_samples: int = 1024,
) -> TrainedFlow:
    """Train a flow guide on ``hamiltonian`` (and/or ``data[n, L, L]``) through the :func:`stages` of ``settings``;
    one root key ``PRNGKey(seed)``.

    ``flow`` is the architecture of an :class:`AutoNeuralRG`, or any ready NumPyro ``AutoContinuous`` guide
    of ``hamiltonian.model`` (e.g. ``AutoIAFNormal``, the generic-flow baseline).  ``init``, a flow trained
    before (or one of a smaller lattice, :func:`grow`), is continued instead: its guide and parameters, a
    fresh optimiser (``flow`` is then not used); the result's ``training_time_s`` includes ``init``'s.
    With ``settings.pretrain_steps`` the maximum-likelihood stage checkpoints to ``<checkpoint>_pretrain``,
    and the result's ``losses`` and ``monitor`` are the last stage's.
    """
    require(
        not settings.trains_on_data or data is not None,
        "data",
        None,
        "the forward and mixed objectives and svi.pretrain_steps train on data: give a data ensemble of fields",
    )
    trained, all_stages = init, stages(settings)
    for index, stage in enumerate(all_stages):
        path = checkpoint
        if checkpoint and index < len(all_stages) - 1:
            path = Path(checkpoint).with_name(f"{Path(checkpoint).name}_pretrain")
        trained = train_stage(
            hamiltonian,
            flow,
            stage,
            data=data,
            init=trained,
            seed=seed,
            checkpoint=path,
            resume=resume,
            progress=progress,
            monitor_samples=monitor_samples,
        )
    return trained


def _guide(hamiltonian, flow, init: TrainedFlow | None, settings: SVISettings):
    guide = (
        init.guide
        if init is not None
        else (AutoNeuralRG(hamiltonian.model, flow) if isinstance(flow, FlowSettings) else flow)
    )
    require(
        settings.gradient == "total" or isinstance(guide, AutoNeuralRG),
        "svi.gradient",
        settings.gradient,
        f'"total" for {type(guide).__name__}: the path gradient needs an AutoNeuralRG guide',
    )
    if isinstance(guide, AutoNeuralRG):
        require(
            not settings.train_q_sym or guide.settings.symmetric,
            "svi.train_q_sym",
            settings.train_q_sym,
            "false for a flow without flow.symmetric: its posterior is q itself",
        )
        require(
            settings.train_q_sym or not guide.settings.fold,
            "svi.train_q_sym",
            settings.train_q_sym,
            "true for a folded flow (flow.fold): its q covers m > 0 only, the target and the data both signs",
        )
    return guide


def train_stage(
    hamiltonian,
    flow,
    settings: SVISettings,
    *,
    data=None,
    init: TrainedFlow | None = None,
    seed: int = 0,
    checkpoint=None,
    resume: bool = False,
    progress: bool = True,
    monitor_samples: int = 1024,
) -> TrainedFlow:
    """One stage of SVI with one objective (``settings.pretrain_steps`` is 0), in chunks of ``report_every`` steps
    of :func:`rgppl.loop.run_phases`: the loss in the progress bar, and every ``checkpoint_every`` steps F_q and
    the importance-sampling ESS on ``monitor_samples`` fresh draws and the whole SVI state in ``checkpoint``.

    A non-finite loss, or a chunk more than ``EXPLODED_NATS_PER_SITE`` per site above the best chunk so far,
    stops the run with :class:`SamplingDiverged`; the last good checkpoint is kept.
    """
    from rgppl.infer.free_energy import free_energy

    guide = _guide(hamiltonian, flow, init, settings)
    architecture = asdict(guide.settings) if isinstance(guide, AutoNeuralRG) else {"guide": type(guide).__name__}
    if data is not None:
        data = checked_ensemble(data, hamiltonian.lattice)
    svi = SVI(hamiltonian.model, guide, optimizer(settings), objective(settings, data))
    key_init, key_monitor = jax.random.split(jax.random.PRNGKey(require_seed(seed)))
    try:
        svi_state = svi.init(key_init, init_params=None if init is None else init.params)
    except RuntimeError as error:
        if "valid initial parameters" not in str(error):
            raise
        raise SamplingDiverged(
            f"SVI could not start: the energy of {hamiltonian.name} or its gradient is not finite "
            "at the initial point. Check the terms, in particular custom ones."
        ) from None
    meta = {
        "hamiltonian": hamiltonian.describe(),
        "seed": seed,
        "sampler": "svi",
        "settings": {
            **_run_defining(settings),
            "flow": architecture,
            "data_shape": None if data is None else list(np.shape(data)),
            "init_losses": None if init is None else len(init.losses),
        },
    }
    trained = TrainedFlow(hamiltonian, guide, svi.get_params(svi_state), np.zeros(0))
    run_chunk = jax.jit(lambda s: jax.lax.scan(lambda st, _: svi.update(st), s, None, length=settings.report_every))
    exploded = EXPLODED_NATS_PER_SITE * hamiltonian.n_sites

    def advance(state, n):
        svi_state, best = state
        svi_state, losses = run_chunk(svi_state)
        losses, mean = np.asarray(losses), float(np.mean(losses))
        if np.isfinite(best) and np.max(losses) > best + exploded:
            where = (
                f"{checkpoint} keeps the last good state"
                if checkpoint and Path(checkpoint).exists()
                else "no checkpoint had been written yet"
            )
            raise SamplingDiverged(
                f"the training loss exploded (max {np.max(losses):.4g} against the best chunk's "
                f"{best:.4g}); {where}. Lower svi.learning_rate or svi.clip_norm, or shrink the flow."
            )
        out = {"losses": losses[None]}
        step = int(svi_state.optim_state[0])
        if step % settings.checkpoint_every == 0 or step == settings.steps:
            trained.params = svi.get_params(svi_state)
            seed_now = int(jax.random.randint(jax.random.fold_in(key_monitor, step), (), 0, 2**31 - 1))
            estimate = free_energy(trained, samples=monitor_samples, seed=seed_now)
            out.update(
                {"monitor_step": np.array([[step]]), **{f"monitor_{k}": np.array([[estimate[k]]]) for k in MONITORED}}
            )
        return (svi_state, np.float32(min(best, mean) if np.isfinite(mean) else best)), out

    def live(out):
        shown = {"loss": f"{np.mean(out['losses']):.4f}"}
        if "monitor_F_q" in out:
            shown.update(F_q=f"{out['monitor_F_q'].item():.4f}", ess=f"{out['monitor_ess_fraction'].item():.2f}")
        return shown

    phase = Phase(
        settings.objective,
        settings.steps,
        settings.report_every,
        advance,
        keep=True,  # the losses, a trace per step
        finite=("losses",),
        postfix=live,
        checkpoint_every=settings.checkpoint_every,
        unit="step",
    )
    (svi_state, _), done = run_phases(
        [phase],
        (svi_state, np.float32(np.inf)),
        label=f"SVI {hamiltonian.name}",
        meta=meta,
        checkpoint=checkpoint,
        resume=resume,
        progress=progress,
        hint="Lower svi.learning_rate or svi.clip_norm, or shrink the flow.",
    )
    trained.params, trained.losses = svi.get_params(svi_state), done.draws["losses"][0]
    trained.monitor = [
        {"step": int(step), **{k: float(done.draws[f"monitor_{k}"][0, i]) for k in MONITORED}}
        for i, step in enumerate(done.draws["monitor_step"][0])
    ]
    trained.training_time_s = done.seconds[phase.name] + (init.training_time_s if init is not None else 0.0)
    return trained


def grow(trained: TrainedFlow, hamiltonian) -> TrainedFlow:
    """An :class:`AutoNeuralRG` trained on a smaller lattice, carried to ``hamiltonian``'s (:func:`rgppl.flows.grown`):
    a starting point for :func:`train_flow` (``init=``) that can be evaluated as it is.  Its training time
    is kept, so that what the larger flow cost in all is what its ``training_time_s`` says."""
    require(
        isinstance(trained.guide, AutoNeuralRG),
        "init",
        type(trained.guide).__name__,
        "a trained AutoNeuralRG: only the hierarchical flow can be grown to a larger lattice",
    )
    settings = trained.guide.settings
    guide = AutoNeuralRG(hamiltonian.model, settings)
    handlers.seed(guide, rng_seed=0)()  # inspects the model: the lattice, and the flow's static structure
    params = {guide.param_name: eqx.partition(grown(trained.flow, hamiltonian.lattice, settings), eqx.is_array)[0]}
    return TrainedFlow(hamiltonian, guide, params, np.zeros(0), training_time_s=trained.training_time_s)

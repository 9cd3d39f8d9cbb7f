"""NeuTra-NUTS: NUTS in the latent space of a trained flow (Hoffman et al. 2019; Li & Wang 2018).

Stock ``numpyro.infer.reparam.NeuTraReparam(guide, params)`` rewrites the model so that NUTS samples
``z`` with potential ``U(z) = E(g(z)) - ln|det dg/dz|`` (NumPyro masks the base density), i.e. the
target pulled back through the flow; ``phi = g(z)`` is recorded as a deterministic site.  When ``g`` is a good
transport map ``U`` is nearly an isotropic Gaussian and the critical slowing down of the field
variables is gone.  The run itself is :func:`rgppl.mcmc.run_nuts` (chunks, checkpoints, resume).

With a folded flow (``FlowSettings(fold=True)``) every ``g(z)`` has a positive magnetisation: NUTS samples
``p`` restricted to ``m > 0``, which for a Z2-symmetric ``p`` gives Z2-invariant observables (``|m|``,
``m^2``, the Binder ratio) exactly; the signed field is that sample with a random sign.
"""

from numpyro.infer.reparam import NeuTraReparam

from rgppl.mcmc import NUTSSettings, run_nuts


def neutra_model(trained):
    """The model reparameterised into the flow's latent space (stock ``NeuTraReparam``)."""
    return NeuTraReparam(trained.guide, trained.params).reparam(trained.hamiltonian.model)


def run_neutra(
    trained,
    settings: NUTSSettings = NUTSSettings(),
    *,
    seed: int = 0,
    checkpoint=None,
    resume: bool = False,
    progress: bool = True,
):
    """NUTS on the NeuTra model of ``trained``; a DataTree of ``phi = g(z)`` labelled ``neutra``.

    Gradient evaluations count NUTS leapfrog steps, each a gradient of ``E(g(z))`` through the flow.
    """
    return run_nuts(
        trained.hamiltonian,
        settings,
        seed=seed,
        checkpoint=checkpoint,
        resume=resume,
        progress=progress,
        model=neutra_model(trained),
        label="neutra",
        fingerprint=trained.fingerprint,
    )

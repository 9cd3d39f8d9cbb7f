"""The one run loop of rgppl's chunked samplers: chunks, progress, checkpoints and exact resume, the NaN stop
and timing.

A run is a sequence of :class:`Phase` s (for NUTS: warm-up, then sampling).  Each phase advances the sampler's
state ``chunk`` units at a time (draws, sweeps or steps) with its ``advance(state, n) -> (state, out)``, a
pure function of the state that draws its randomness from keys inside the state.  After every chunk the loop

1. stops the run with :class:`~rgppl.errors.SamplingDiverged` if any array of ``out`` named in the phase's
   ``finite`` is not finite (warm-up included), keeping the last good checkpoint;
2. keeps ``out`` if the phase keeps its draws (``keep``; arrays ``[chain, draw, ...]`` joined along the draws);
3. writes the whole state, the kept draws, the phase reached and the wall times so far to the checkpoint
   atomically (:mod:`rgppl.checkpoints`, Orbax), so a killed run resumes exactly where it stopped and
   gives the draws an uninterrupted run would have.  A checkpoint is written at each phase's end, and within a
   phase after a chunk that ends a multiple of ``checkpoint_every`` units once at least ``checkpoint_seconds``
   of wall time have passed since the last one (:func:`checkpointing_every`; 10 s by default, so that the
   checkpoints of a fast sampler cost under 1 % of its run while a kill loses seconds of work);
4. moves the progress bar, whose postfix shows the phase's live figures (``postfix(out)``).

A finished run resumed with a larger last phase (more samples) continues it: a checkpoint agrees with a run
on everything but ``settings.samples``.
"""

import time
from collections.abc import Callable
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from rgppl import checkpoints
from rgppl.errors import SamplingDiverged, is_number, require
from rgppl.mesh import gather, shard_batch, sharded_over

CHECKPOINT_SECONDS = 10.0
_checkpoint_seconds = ContextVar("checkpoint_seconds", default=CHECKPOINT_SECONDS)


def require_checkpoint_seconds(seconds, field: str = "checkpoint_seconds") -> float:
    """``seconds`` as a float, or :class:`~rgppl.errors.InputError` naming ``field`` unless it is a number >= 0."""
    require(
        is_number(seconds) and seconds >= 0,
        field,
        seconds,
        "a number of seconds >= 0 (0 writes a checkpoint every checkpoint_every units)",
    )
    return float(seconds)


@contextmanager
def checkpointing_every(seconds: float):
    """Within this ``with`` block, runs write a checkpoint within a phase at most once per ``seconds`` of wall
    time (0: at every ``checkpoint_every`` units); a phase's end always writes one."""
    token = _checkpoint_seconds.set(require_checkpoint_seconds(seconds))
    try:
        yield
    finally:
        _checkpoint_seconds.reset(token)


@dataclass(frozen=True)
class Phase:
    """``total`` units advanced ``chunk`` at a time by ``advance(state, n) -> (state, out)``; ``out`` is a dict of
    arrays ``[chain, n, ...]``.  ``keep``: the draws are the run's; ``finite``: the outputs that must be finite;
    ``summed``: the outputs whose sums over the phase's chunks the run reports (``Progress.totals``); ``unit``:
    what the progress bar counts (``"draw"`` for a phase that keeps its draws, else ``"step"``, by default)."""

    name: str
    total: int
    chunk: int
    advance: Callable
    keep: bool = False
    finite: tuple = ()
    summed: tuple = ()
    postfix: Callable[[dict], dict] = field(default=lambda out: {})
    checkpoint_every: int | None = (
        None  # units between chances of a checkpoint, a multiple of ``chunk``; None: each chunk
    )
    unit: str | None = None


@dataclass
class Progress:
    """Where a run is: the phase reached, units done in it, the draws kept and the seconds spent per phase."""

    phase: int = 0
    done: int = 0
    draws: dict = field(default_factory=dict)
    seconds: dict = field(default_factory=dict)
    totals: dict = field(default_factory=dict)  # "<phase>_<output>": the sum of a ``summed`` output
    devices: int = 1  # the number of devices the state's batch was split over (:func:`rgppl.mesh.sharded_over`)

    def add(self, phase: Phase, out: dict, seconds: float) -> None:
        """Count a chunk of ``phase``: its seconds and the sums of its ``summed`` outputs."""
        self.seconds[phase.name] = self.seconds.get(phase.name, 0.0) + seconds
        for key in phase.summed:
            name = f"{phase.name}_{key}"
            self.totals[name] = self.totals.get(name, 0.0) + float(np.sum(out[key]))
        if phase.keep:
            self.draws.update(
                {k: np.concatenate([self.draws[k], v], axis=1) if k in self.draws else v for k, v in out.items()}
            )  # a key a chunk leaves out keeps its draws


def _save(path: Path, meta: dict, state, progress: Progress, phases: list[Phase]) -> None:
    """Checkpoint the run as the step numbered by the units done in all phases so far (by every process)."""
    step = sum(phase.total for phase in phases[: progress.phase]) + progress.done
    where = {"phase": progress.phase, "done": progress.done, "seconds": progress.seconds, "totals": progress.totals}
    checkpoints.save(path, step, {**meta, **where}, state, progress.draws)


def _load(path: Path, meta: dict, like) -> tuple:
    saved, state, draws = checkpoints.load(path, meta, like)
    return state, Progress(saved["phase"], saved["done"], draws, saved["seconds"], saved["totals"])


def run_phases(
    phases: list[Phase],
    state,
    *,
    label: str,
    meta: dict,
    batch: int | None = None,
    checkpoint=None,
    resume: bool = False,
    progress: bool = True,
    hint: str = "",
) -> tuple:
    """Run ``phases`` from ``state``; return ``(state, Progress)``.

    ``meta`` identifies the run (model, seed, sampler, settings) in its checkpoint; ``resume=True`` continues
    an existing checkpoint of the same run.  ``hint`` ends the message of a non-finite stop (what to check).
    ``batch`` is the number of chains or fields, the leading axis of the state's arrays that is sharded over the
    device mesh (:func:`rgppl.mesh.shard_batch`; a checkpoint resumes on any number of devices).
    """
    checkpoint = Path(checkpoint) if checkpoint else None
    least_seconds, saved_at = _checkpoint_seconds.get(), time.monotonic()
    where = Progress()
    state = shard_batch(state, batch)
    if resume and checkpoint and checkpoint.exists():  # read onto this run's devices; a finished phase is passed over
        state, where = _load(checkpoint, meta, state)
    for index in range(where.phase, len(phases)):
        phase = phases[index]
        if index > where.phase:
            where.phase, where.done = index, 0
        bar = tqdm(
            total=phase.total,
            initial=where.done,
            desc=f"{label} {phase.name}",
            disable=not progress,
            unit=phase.unit or ("draw" if phase.keep else "step"),
        )
        with bar:
            while where.done < phase.total:
                n = min(phase.chunk, phase.total - where.done)
                start = time.perf_counter()
                state, out = phase.advance(state, n)
                out = gather(out)
                seconds = time.perf_counter() - start
                bad = [k for k in phase.finite if not np.all(np.isfinite(out[k]))]
                if bad:
                    kept = (
                        f"the last good checkpoint is kept at {checkpoint}"
                        if checkpoint and checkpoint.exists()
                        else "no checkpoint had been written"
                    )
                    raise SamplingDiverged(
                        f"{label} produced non-finite {' and '.join(bad)} in its {phase.name} after "
                        f"{where.done} of {phase.total}; {kept}. {hint}".strip()
                    )
                where.add(phase, out, seconds)
                where.done += n
                due = phase.checkpoint_every is None or where.done % phase.checkpoint_every == 0
                due = due and time.monotonic() - saved_at >= least_seconds
                if checkpoint and (due or where.done == phase.total):
                    _save(checkpoint, meta, state, where, phases)
                    saved_at = time.monotonic()
                bar.set_postfix(phase.postfix(out))
                bar.update(n)
    where.devices = sharded_over(state)
    return state, where

"""The ``rgppl`` command.

    rgppl run CARD [--out DIR] [--resume] [--quiet] [--distributed]
                                                      run a model card, write results to DIR
    rgppl check CARD                                  validate a card and print the model
    rgppl cards [--reference]                         list the built-in cards (or every card key and its default)

CARD is a path or the name of a built-in card in ``models/`` (e.g. ``ising_dual_tc_L4``).
Every foreseeable failure is one ``rgppl: error:`` paragraph: invalid input, a file that cannot be read or
written (a full disk included), memory that runs out; exit status 2.  A run that stops (a non-finite energy,
an exploding loss) exits with 3 and keeps its last good checkpoint; an interrupted run (Ctrl-C) with 130 and
the command that resumes it.  ``--debug`` shows the traceback instead.  A run that fails before computing
anything leaves no directory behind.
"""

import argparse
import errno
import json
import os
import shutil
import sys
from pathlib import Path

import jax
import pandas as pd
from jax.experimental import multihost_utils

from rgppl.card_reference import card_reference
from rgppl.cards import BUILT_IN_CARDS, load_card
from rgppl.errors import InputError, SamplingDiverged
from rgppl.jobs import JOBS
from rgppl.loop import checkpointing_every
from rgppl.mesh import distributed_requested, initialize_distributed, is_writer
from rgppl.precision import computing_in
from rgppl.report import markdown_table, output_directory
from rgppl.run_page import write_run_page
from rgppl.storage import atomic_write, atomic_write_text

RUN = "run.json"  # the identity of the run in a results directory, checked by --resume


def check_resumable(out: Path, identity: str) -> None:
    """Refuse ``--resume`` into a directory that holds anything but a run of the same card (before anything
    in it is written)."""
    if not out.exists() or not any(out.iterdir()):
        return
    valid = "resume with the card of that run (only its sample counts may grow), or give a new --out"
    if not (out / RUN).is_file():
        raise InputError("--resume", str(out), f"the directory holds files but no {RUN} of an rgppl run; {valid}")
    try:
        saved = json.loads((out / RUN).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise InputError("--resume", str(out), f"its {RUN} cannot be read ({error}); {valid}") from None
    if saved.get("identity") != identity:
        raise InputError(
            "--resume",
            str(out),
            f"it holds a run of card {saved.get('card')!r} with other settings, model or custom terms; {valid}",
        )


def run(args) -> int:
    """``rgppl run CARD``: run a card into its output directory; the exit status."""
    if args.distributed or distributed_requested():
        initialize_distributed()
    card = load_card(args.card)
    requested = Path(args.out) if args.out else card.output
    out = output_directory(requested, args.resume)
    if jax.process_count() > 1:  # every process chooses the directory before process 0 writes into it
        multihost_utils.sync_global_devices("rgppl: output directory chosen")
    if out != requested:
        print(f"{requested} already holds results; this run writes to {out} (earlier results are never overwritten)")
    identity = card.identity()
    if args.resume:
        check_resumable(out, identity)
    fresh = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    atomic_write(out / "card.toml", lambda tmp: shutil.copyfile(card.path, tmp))
    atomic_write_text(out / RUN, json.dumps({"card": card.name, "identity": identity}) + "\n")
    print(
        f"{card.name}: {model_name(card)} on {card.lattice.shape[0]}x{card.lattice.shape[1]}, sampler {card.sampler}, "
        f"seed {card.seed}"
    )
    job, written = JOBS[card.sampler]
    try:
        with computing_in(card.precision), checkpointing_every(card.checkpoint_seconds):
            job(card, out, resume=args.resume, progress=not args.quiet and is_writer())
    except InputError:
        if fresh and {p.name for p in out.iterdir()} <= {"card.toml", RUN}:  # refused before computing anything
            shutil.rmtree(out)
        raise
    except KeyboardInterrupt:
        print(
            f"\ninterrupted; the work up to the last checkpoint is in {out} (*checkpoint). "
            f"Continue with: rgppl run {args.card} --out {out} --resume",
            file=sys.stderr,
        )
        return 130
    if not is_writer():  # process 0 writes the results and reports them
        return 0
    write_run_page(out)
    print((out / "summary.md").read_text())
    print(f"wrote {out}/: {written}, and index.html, the run's page")
    return 0


def model_name(card) -> str:
    """The Hamiltonian's name, or where the fields come from when their energy is unknown."""
    if card.hamiltonian is not None:
        return card.hamiltonian.name
    return f"{card.source.surrogate} surrogate" if card.source.surrogate else f"fields from {card.source.path.name}"


def check(args) -> int:
    """``rgppl check CARD``: validate a card and its data files without running it."""
    card = load_card(args.card)
    model = card.hamiltonian.describe() if card.hamiltonian is not None else model_name(card)
    print(
        json.dumps(
            {"name": card.name, "model": model, "sampler": card.sampler, "seed": card.seed, "output": str(card.output)},
            indent=2,
        )
    )
    return 0


def cards(args) -> int:
    """``rgppl cards``: list the built-in cards, or print the card reference (``--reference``)."""
    if args.reference:
        print(card_reference())
        return 0
    rows = []
    for path in sorted(BUILT_IN_CARDS.glob("*.toml")):
        card = load_card(path)
        rows.append(
            {
                "card": path.stem,
                "model": model_name(card),
                "lattice": "x".join(map(str, card.lattice.shape)),
                "sampler": card.sampler,
                "description": card.description,
            }
        )
    print(markdown_table(pd.DataFrame(rows).set_index("card")))
    return 0


def parser() -> argparse.ArgumentParser:
    """The ``rgppl`` command's argument parser."""
    main = argparse.ArgumentParser(prog="rgppl", description="RG-inspired inference on lattice field theories")
    commands = main.add_subparsers(dest="command", required=True)
    run_parser = commands.add_parser("run", help="run a model card")
    run_parser.add_argument("card", help="path of a .toml card, or a built-in card's name")
    run_parser.add_argument("--out", help="output directory (default: the card's run.output)")
    run_parser.add_argument("--resume", action="store_true", help="continue from the checkpoints in DIR")
    run_parser.add_argument("--quiet", action="store_true", help="no progress bar")
    run_parser.add_argument(
        "--distributed",
        action="store_true",
        help="join a multi-process run (jax.distributed; also when JAX_COORDINATOR_ADDRESS is set)",
    )
    main.add_argument("--debug", action="store_true", help="show the traceback of an error")
    run_parser.set_defaults(handler=run)
    check_parser = commands.add_parser("check", help="validate a card")
    check_parser.add_argument("card")
    check_parser.set_defaults(handler=check)
    cards_parser = commands.add_parser("cards", help="list the built-in cards")
    cards_parser.add_argument("--reference", action="store_true", help="print every card key with its default instead")
    cards_parser.set_defaults(handler=cards)
    return main


def explain(error: BaseException) -> tuple[str, int] | None:
    """The message and exit status of a foreseeable failure, or ``None`` for a fault in rgppl itself."""
    if isinstance(error, InputError):
        return f"error: {error}", 2
    if isinstance(error, SamplingDiverged):
        return f"stopped: {error}", 3
    if (isinstance(error, OSError) and error.errno == errno.ENOSPC) or os.strerror(errno.ENOSPC) in str(error):
        # HDF5 reports a full disk as a RuntimeError that quotes the system's message
        return (
            "error: the disk is full; the last complete checkpoint is kept and no file is left half-written. "
            "Free some space and continue with --resume."
        ), 2
    if isinstance(error, OSError):
        where = f" {error.filename}" if error.filename else ""
        return f"error: {error.strerror or error}{where and ':' + where}; check the path and its permissions.", 2
    out_of_memory = isinstance(error, MemoryError) or "RESOURCE_EXHAUSTED" in str(error)
    if out_of_memory:
        return (
            "error: out of memory; use a smaller lattice, fewer chains or smaller batches ([nuts] chains, "
            "[svi] batch, [fit] batch, [generator] samples)."
        ), 2
    return None


def main(argv=None) -> int:
    """The ``rgppl`` command: parse ``argv``, run the verb, explain bad input in one paragraph."""
    args = parser().parse_args(argv)
    try:
        return args.handler(args)
    except Exception as error:
        explained = None if args.debug else explain(error)
        if explained is None:
            raise
        message, status = explained
        print(f"rgppl: {message}", file=sys.stderr)
        return status


if __name__ == "__main__":
    sys.exit(main())

"""One exception type for invalid user input, and the checks every module uses to raise it.

Every check of a lattice, a coupling, a model card or a field names the offending field, the value
it was given and what would be valid, so that a user never has to read a JAX traceback to learn
that a coupling was negative.
"""

import dataclasses
import math
import numbers
import types
from pathlib import Path

SEEDS = 2**32  # a seed is one of the 2^32 values jax.random.PRNGKey keeps; beyond them it would wrap silently


class InputError(ValueError):
    """Invalid user input: ``field`` had ``value``; ``valid`` says what is accepted."""

    def __init__(self, field: str, value, valid: str, *, where: str = ""):
        self.field, self.value, self.valid, self.where = field, value, valid, where
        prefix = f"{where}: " if where else ""
        super().__init__(f"{prefix}`{field}` = {value!r} is invalid; {valid}")

    def located(self, where: str) -> "InputError":
        """The same error, reported as coming from ``where`` (a card path, a function name)."""
        return InputError(self.field, self.value, self.valid, where=where)


class SamplingDiverged(RuntimeError):
    """A sampler produced non-finite values; the message says where and what was kept."""


def require(condition: bool, field: str, value, valid: str) -> None:
    """Raise :class:`InputError` unless ``condition`` holds."""
    if not condition:
        raise InputError(field, value, valid)


def is_integer(value) -> bool:
    """A Python or numpy integer, not a bool."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def is_number(value) -> bool:
    """A finite real number, Python or numpy, not a bool."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


def require_integer(field: str, value, minimum: int) -> None:
    """Raise :class:`InputError` unless ``value`` is an integer (not a bool) ``>= minimum``."""
    require(is_integer(value) and value >= minimum, field, value, f"an integer >= {minimum}")


def require_number(field: str, value, valid: str = "a finite number", *, positive: bool = False) -> None:
    """Raise :class:`InputError` unless ``value`` is a finite real number (positive, with ``positive``)."""
    require(is_number(value) and (not positive or value > 0), field, value, valid)


def require_seed(seed, field: str = "seed") -> int:
    """``seed`` as a Python int, after checking it is one of the ``2^32`` seeds (0 to 2^32 - 1) a key can hold."""
    require(is_integer(seed) and 0 <= seed < SEEDS, field, seed, f"an integer from 0 to 2^32 - 1 = {SEEDS - 1}")
    return int(seed)


_KINDS = {  # an annotated type: (does a value match it, how a user would say it)
    bool: (lambda v: isinstance(v, bool), "true or false"),
    int: (is_integer, "an integer"),
    float: (is_number, "a finite number"),
    str: (lambda v: isinstance(v, str), "a string"),
    tuple: (lambda v: isinstance(v, (tuple, list)) and all(is_integer(x) for x in v), "a list of integers"),
    Path: (lambda v: isinstance(v, (str, Path)), "a path"),
    type(None): (lambda v: v is None, "unset"),
}


def require_types(settings, section: str) -> None:
    """Raise :class:`InputError` for the first field of the dataclass ``settings`` whose value is not of its
    annotated type (``int | tuple`` and the like: any of them), so that a string where a number belongs, or an
    infinite number, is named before any comparison with it fails.  ``section`` prefixes the field's name."""
    for field in dataclasses.fields(settings):
        kinds = field.type.__args__ if isinstance(field.type, types.UnionType) else (field.type,)
        known = [_KINDS[kind] for kind in kinds if kind in _KINDS]
        value = getattr(settings, field.name)
        if known and not any(matches(value) for matches, _ in known):
            raise InputError(f"{section}.{field.name}", value, " or ".join(name for _, name in known))

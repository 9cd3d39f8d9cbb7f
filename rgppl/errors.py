"""One exception type for invalid user input.

Every check of a lattice, a coupling, a model card or a field names the offending field, the value
it was given and what would be valid, so that a user never has to read a JAX traceback to learn
that a coupling was negative.
"""


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


def require_integer(field: str, value, minimum: int) -> None:
    """Raise :class:`InputError` unless ``value`` is an integer (not a bool) ``>= minimum``."""
    ok = isinstance(value, int) and not isinstance(value, bool) and value >= minimum
    require(ok, field, value, f"an integer >= {minimum}")

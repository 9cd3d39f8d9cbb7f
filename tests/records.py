"""Reading a run's record.json the way a user's tool would: validated against the shipped JSON Schema."""

import jsonschema

from rgppl.record import read_record, schema


def valid_record(out) -> dict:
    """The record in the run directory ``out``, after checking it against ``rgppl/schemas/record.schema.json``."""
    record = read_record(out)
    jsonschema.Draft202012Validator(schema(), format_checker=jsonschema.FormatChecker()).validate(record)
    return record


def figures_by(record: dict, *keys: str) -> dict:
    """The record's figures keyed by ``(name, run)`` (or by ``name`` alone)."""
    return {
        tuple(entry.get(key) for key in keys) if len(keys) > 1 else entry[keys[0]]: entry for entry in record["figures"]
    }

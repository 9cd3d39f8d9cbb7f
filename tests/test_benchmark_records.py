"""The checked-in records of current recipe runs are valid records, and their index is generated from them."""

import importlib.util
from pathlib import Path

from tests.records import valid_record

CURRENT = Path(__file__).parents[1] / "benchmarks" / "results" / "current"


def test_every_current_record_follows_the_schema_and_carries_provenance():
    records = sorted(CURRENT.glob("*/record.json"))
    assert records, f"no records under {CURRENT}"
    for path in records:
        record = valid_record(path)
        assert record["provenance"]["commit"] is not None, path  # a recipe run from a checkout names its commit
        assert record["stages"], path


def test_the_index_is_what_the_records_generate():
    spec = importlib.util.spec_from_file_location("index", CURRENT.parents[1] / "index.py")
    index = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(index)
    for path in sorted(CURRENT.glob("*/record.json")):
        row = index.index_row(path)
        assert f"| {row['recipe']} | {row['job']} |" in (CURRENT / "index.md").read_text(), row["recipe"]

"""The output contract lives in one place (dart_hf.schema) and matches what the adapter writes."""

import math
from pathlib import Path

import datasets

import dart_hf
from dart_hf import schema
from dart_hf.formatting import duration, number

from test_rows_and_inputs import GOOD, adapter


def test_adapted_columns_have_the_declared_types_and_descriptions():
    ds = datasets.Dataset.from_list([GOOD, {"problem": "x", "solution": "", "answer": ""}])
    for keep in (False, True):
        out = ds.map(adapter(keep_rollouts=keep), batched=True, load_from_cache_file=False)
        assert out["dart_action"] == ["explore", "error"]
        assert {k: out.features[k] for k in schema.OUTPUT_COLUMNS} == dict(schema.OUTPUT_FEATURES)
    assert tuple(schema.COLUMN_DESCRIPTIONS) == tuple(schema.COLUMN_TYPES) == schema.OUTPUT_COLUMNS
    assert all(d.strip() and "\n" not in d for d in schema.COLUMN_DESCRIPTIONS.values())


def test_actions_are_plain_strings_with_a_meaning():
    assert schema.ACTIONS == ("imitate", "explore", "fallback", "error")
    assert tuple(schema.ACTION_MEANINGS) == schema.ACTIONS
    assert schema.Action.EXPLORE == "explore" and f"{schema.Action.EXPLORE}" == str(schema.Action.EXPLORE) == "explore"
    assert set(schema.USABLE_ACTIONS) == set(schema.ACTIONS) - {"error"}
    assert dart_hf.OUTPUT_COLUMNS is schema.OUTPUT_COLUMNS and dart_hf.is_usable is schema.is_usable


def test_paper_reference_is_one_record():
    assert schema.PAPER_URL == "https://arxiv.org/abs/2505.20700"
    assert schema.PAPER_TITLE in schema.PAPER_CITATION and schema.PAPER_ARXIV_ID in schema.PAPER_CITATION
    assert schema.PAPER_CITATION.count("{") == schema.PAPER_CITATION.count("}")
    from dart_hf.trainer import DartTrainer

    assert DartTrainer._paper == {"title": schema.PAPER_TITLE, "id": "2505.20700", "citation": schema.PAPER_CITATION}


def test_number_and_duration_formatting():
    assert [number(x) for x in (None, True, 1234, 1234.0, 3.14159, math.nan, math.inf, "x")] == [
        "–",
        "True",
        "1,234",
        "1,234",
        "3.14",
        "–",
        "–",
        "x",
    ]
    assert number(0.5, 1) == "0.5"
    assert [duration(s) for s in (None, math.nan, True, 42, 750, 11520)] == [
        "–",
        "–",
        "–",
        "42.0 s",
        "12.5 min (750 s)",
        "3.2 h (11,520 s)",
    ]


def test_the_docs_column_table_is_the_schema():
    """The README and docs/transform.md show the columns exactly as `schema.py` declares them (one place to edit)."""
    root = Path(__file__).resolve().parent.parent
    for page in (root / "README.md", root / "docs" / "transform.md"):
        assert schema.columns_markdown() in page.read_text(encoding="utf-8"), page.name
    assert schema.columns_markdown().count("\n") == len(schema.OUTPUT_COLUMNS) + 1

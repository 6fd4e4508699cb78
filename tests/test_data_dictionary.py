"""The data dictionary under docs/ is generated from the registry and kept up to date."""

from __future__ import annotations

import re
from dataclasses import replace

import pytest

from omni import data_dictionary
from omni.config import REPO_ROOT
from omni.tables import ALL_TABLES, Column

LAYER_ORDER = {"bronze": 0, "quarantine": 1, "silver": 2, "gold": 3, "quality": 4}


def _section(page: str, name: str) -> str:
    start = page.index(f"### `{name}`")
    following = page.find("\n### ", start + 1)
    return page[start : following if following != -1 else len(page)]


def test_the_committed_dictionary_is_what_the_registry_gives_now():
    assert data_dictionary.stale_files() == [], "run 'make data-dictionary' and commit docs/"


def test_every_registered_table_and_column_is_described():
    page = data_dictionary.MARKDOWN.read_text()
    html = data_dictionary.HTML.read_text()
    headings = re.findall(r"^### `([a-z_]+\.[a-z_]+)`$", page, re.M)
    assert sorted(headings) == sorted(t.name for t in ALL_TABLES)
    for table in ALL_TABLES:
        section = _section(page, table.name)
        assert f"**Grain:** {table.row_grain}" in section
        assert f"[`{table.producer}`](../{table.producer})" in section
        for column in table.columns:
            assert f"| `{column.name}` | `{column.type}` |" in section, (table.name, column)
            assert column.comment.replace("|", "\\|") in section
        assert f'id="{table.name}"' in html


def test_the_registry_says_grain_lineage_and_producer_of_every_table():
    for table in ALL_TABLES:
        assert table.grain or table.keys, f"{table.name}: neither grain nor keys"
        assert (REPO_ROOT / table.producer).is_file(), table.producer
        for name in data_dictionary.upstream_names(table):
            upstream = next(t for t in ALL_TABLES if t.name == name)
            # Data flows from bronze to gold; quarantine and quality read whole layers.
            assert LAYER_ORDER[upstream.layer] <= LAYER_ORDER[table.layer] or table.layer in (
                "quarantine",
                "quality",
            ), (table.name, name)
        if table.layer != "bronze":
            assert data_dictionary.upstream_names(table), f"{table.name}: no upstream tables"


def test_upstream_naming_no_table_is_an_error():
    broken = replace(ALL_TABLES[-1], upstream=("gold.no_such_table",))
    with pytest.raises(ValueError, match="gold.no_such_table"):
        data_dictionary.upstream_names(broken)


def test_a_registry_change_makes_the_dictionary_stale(monkeypatch, capsys):
    scores = next(t for t in ALL_TABLES if t.name == "gold.customer_scores")
    changed = replace(scores, columns=(*scores.columns, Column("uplift", "double", "New")))
    monkeypatch.setattr(
        data_dictionary, "ALL_TABLES", tuple(changed if t is scores else t for t in ALL_TABLES)
    )
    assert set(data_dictionary.stale_files()) == {data_dictionary.MARKDOWN, data_dictionary.HTML}
    assert data_dictionary.main(["--check"]) == 1
    assert "docs/data-dictionary.md is out of date: run 'make data-dictionary'" in (
        capsys.readouterr().out
    )
    assert "| `uplift` | `double` | yes | New |" in data_dictionary.render_markdown()


def test_the_rules_of_a_suite_are_shown_on_their_columns():
    section = _section(data_dictionary.MARKDOWN.read_text(), "gold.customer_scores")
    assert re.search(
        r"\| `churn_probability` \| `double` \| yes \| [^|]+ \| between 0 and 1", section
    )
    assert (
        "| `churn_risk_band` | `string` | no | low, medium or high; no_purchase_yet when never "
        "bought | one of low, medium, high, no_purchase_yet |" in (section)
    )
    assert "unique (`customer_key`, `as_of_date`)" in section

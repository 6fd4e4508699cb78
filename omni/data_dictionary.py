"""The data dictionary under ``docs/``, generated from the table registry and the expectation
suites: never edited by hand, and checked for freshness by the tests.

    python -m omni.data_dictionary            (or: make data-dictionary) writes it
    python -m omni.data_dictionary --check    exits 1 when the files are out of date
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from omni.config import REPO_ROOT
from omni.sources import SOURCES
from omni.suites import suite_path
from omni.tables import ALL_TABLES, Table

DOCS_DIR = REPO_ROOT / "docs"
MARKDOWN = DOCS_DIR / "data-dictionary.md"
HTML = DOCS_DIR / "data-dictionary.html"
LAYERS = ("bronze", "quarantine", "silver", "gold", "quality")
LAYER_MEANING = {
    "bronze": "Raw records as delivered, plus ingest metadata. Append-only; erasure only.",
    "quarantine": "Rejected records with their reasons, counts that reconcile, erasure audit.",
    "silver": "Typed, deduplicated, UTC, personal data hashed; one identity per customer.",
    "gold": "The serving tables BI tools and personalization read.",
    "quality": "The data-quality gates' results, run after run.",
}
# A suite's "scope": which rows of the table each run validates.
SCOPE_MEANING = {
    "run": "the rows the run wrote",
    "as_of": "the rows of the run's as-of dates",
    "all": "every row",
}


def upstream_names(table: Table) -> list[str]:
    """The registered tables ``table`` is built from, ``<layer>.*`` expanded."""
    names: list[str] = []
    for item in table.upstream:
        if item.endswith(".*"):
            layer = item[:-2]
            matched = [t.name for t in ALL_TABLES if t.layer == layer]
        else:
            matched = [t.name for t in ALL_TABLES if t.name == item]
        if not matched:
            raise ValueError(f"{table.name}: upstream {item!r} names no registered table")
        names += [name for name in matched if name not in names and name != table.name]
    return names


def _link(name: str) -> str:
    return f"[`{name}`](#{name})"


def _code(names) -> str:
    return ", ".join(f"`{name}`" for name in names)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _suite(table: Table) -> dict[str, Any] | None:
    path = suite_path(table.name)
    return json.loads(path.read_text()) if path.exists() else None


def _rule_phrase(item: dict[str, Any]) -> str:
    """A suite's rule in a few words: ``not null``, ``row count at least 1``..."""
    args = {k: v for k, v in (item.get("kwargs") or {}).items() if k != "column"}
    kind = item["type"].removeprefix("expect_")
    kind = next(
        (kind[len(p) :] for p in ("column_values_to_", "table_") if kind.startswith(p)), kind
    )
    if "description" in args:
        phrase = args["description"]
    elif kind == "not_be_null":
        phrase = "not null"
    elif kind in ("be_unique", "compound_columns_to_be_unique"):
        phrase = "unique" + (f" ({_code(args['column_list'])})" if "column_list" in args else "")
    elif kind == "be_in_set":
        phrase = "one of " + ", ".join(str(v) for v in args["value_set"])
    elif kind.endswith("be_between") and set(args) <= {"min_value", "max_value"}:
        subject = kind.removesuffix("be_between").removesuffix("to_").replace("_", " ")
        low, high = args.get("min_value"), args.get("max_value")
        bounds = (
            f"between {low} and {high}"
            if low is not None and high is not None
            else (f"at least {low}" if high is None else f"at most {high}")
        )
        phrase = f"{subject}{bounds}"
    else:
        phrase = kind.replace("_", " ") + (f" `{json.dumps(args, sort_keys=True)}`" if args else "")
    return phrase + (" (warning)" if item.get("severity") == "warning" else "")


def _suite_lines(table: Table, suite: dict[str, Any] | None) -> tuple[list[str], dict]:
    """The suite's summary lines, and each column's rule phrases."""
    if suite is None:
        return ["- **Expectation suite:** none: this table is not validated."], {}
    per_column: dict[str, list[str]] = {}
    table_rules = []
    for item in suite["expectations"]:
        column = (item.get("kwargs") or {}).get("column")
        if column:
            per_column.setdefault(column, []).append(_rule_phrase(item))
        else:
            table_rules.append(_rule_phrase(item))
    severities = [item.get("severity", "blocking") for item in suite["expectations"]]
    path = suite_path(table.name).relative_to(REPO_ROOT).as_posix()
    lines = [
        f"- **Expectation suite:** `{table.name}` in [`{path}`](../{path}): the registry's "
        f"columns and types, plus {len(severities)} rules "
        f"({severities.count('blocking')} blocking, {severities.count('warning')} warning; "
        f"validated rows: {SCOPE_MEANING[suite.get('scope', 'all')]})"
    ]
    if table_rules:
        lines.append(f"- **Table rules:** {'; '.join(table_rules)}")
    if fresh := suite.get("freshness"):
        lag = fresh["max_lag_days"]
        by = f"at most {lag} days before the run's date" if lag else "the run's date"
        if "source" in fresh:
            text = (
                f"the source `{fresh['source']}` delivered a complete folder by {by} (judged "
                "on `bronze.landing_folders`; a source with no folder is a channel the retailer "
                "lacks)"
            )
            if "store_lag_days" in fresh:
                text += (
                    f"; a warning for each store silent for more than {fresh['store_lag_days']} "
                    "days"
                )
        else:
            text = f"the newest `{fresh['column']}` is {by}"
        lines.append(f"- **Freshness:** {text} ({fresh.get('severity', 'blocking')})")
    if volume := suite.get("volume"):
        unit = " and ".join(f"`{c}`" for c in volume.get("per", [])) or "day"
        lines.append(
            f"- **Volume:** rows per {unit if unit == 'day' else unit + ' unit'} between "
            f"{volume['min_ratio']} and {volume['max_ratio']} times the median of the last "
            f"{volume.get('lookback_runs', 7)} runs ({volume.get('severity', 'warning')}); "
            "none expected when nothing was delivered"
        )
    return lines, per_column


def _table_section(table: Table, downstream: list[str]) -> list[str]:
    suite_lines, rules = _suite_lines(table, _suite(table))
    bronze_sources = [s.folder for s in SOURCES if s.bronze.name == table.name]
    if table.name == "bronze.ingested_files":
        bronze_sources = [s.folder for s in SOURCES]
    upstream = upstream_names(table)
    reads = [_link(name) for name in upstream] + [
        f"landing zone `{folder}/dt=YYYY-MM-DD/`" for folder in bronze_sources
    ]
    lines = [
        f'<a id="{table.name}"></a>',
        "",
        f"### `{table.name}`",
        "",
        table.description,
        "",
        f"- **Grain:** {table.row_grain}",
        f"- **Keys:** {_code(table.keys) or 'none (append-only)'}",
        f"- **Partitioned by:** {_code(table.partition_by) or 'not partitioned'}",
        f"- **Produced by:** [`{table.producer}`](../{table.producer})",
        f"- **Upstream:** {', '.join(reads) or 'none'}",
        f"- **Downstream:** {', '.join(_link(name) for name in downstream) or 'none'}",
        *(
            "- **Record fields** (in `_raw_record`, parsed once by silver): "
            + _code(name for name, _ in source.fields)
            for source in SOURCES
            if source.bronze.name == table.name
        ),
        *suite_lines,
    ]
    if table.erase_by:
        erased = ", ".join(f"`{column}` ({kind})" for column, kind in table.erase_by)
        lines.append(f"- **Erasure finds a customer's rows by:** {erased}")
    if table.kept_on_rebuild:
        lines.append(
            "- **Kept on a rebuild from the landing zone** (`python -m omni.rebuild`): no "
            "landing file can give its rows back"
        )
    lines += [
        "",
        "| column | type | null | comment | rules |",
        "|---|---|---|---|---|",
    ]
    for column in table.columns:
        lines.append(
            f"| `{column.name}` | `{_cell(column.type)}` | "
            f"{'yes' if column.nullable else 'no'} | {_cell(column.comment)} | "
            f"{_cell('; '.join(rules.get(column.name, [])))} |"
        )
    return [*lines, ""]


def render_markdown() -> str:
    layers = [layer for layer in LAYERS if any(t.layer == layer for t in ALL_TABLES)]
    unknown = {t.layer for t in ALL_TABLES} - set(LAYERS)
    if unknown:
        raise ValueError(f"layers {sorted(unknown)} have no place in {LAYERS}")
    downstream: dict[str, list[str]] = {t.name: [] for t in ALL_TABLES}
    for table in ALL_TABLES:
        for name in upstream_names(table):
            downstream[name].append(table.name)
    lines = [
        "# Data dictionary",
        "",
        "Generated from the table registry (`omni/tables.py`) and the expectation suites "
        "(`expectations/`) by `make data-dictionary`: do not edit by hand. The test suite "
        "fails when this page is out of date.",
        "",
        "Every table is a Delta table at `<lakehouse>/<layer>/<table>` (by default "
        "`data/lakehouse`), registered in the Spark catalog as `<layer>.<table>`: over JDBC "
        "(`make sql-server`) query it by that name. Column comments are in the tables too.",
        "",
        "| table | grain | produced by |",
        "|---|---|---|",
    ]
    ordered = [t for layer in layers for t in ALL_TABLES if t.layer == layer]
    lines += [f"| {_link(t.name)} | {_cell(t.row_grain)} | `{t.producer}` |" for t in ordered]
    lines.append("")
    for layer in layers:
        lines += [f"## {layer}", "", LAYER_MEANING[layer], ""]
        for table in (t for t in ordered if t.layer == layer):
            lines += _table_section(table, downstream[table.name])
    return "\n".join(lines).rstrip() + "\n"


def render_html(markdown: str) -> str:
    import mistune

    body = mistune.create_markdown(escape=False, plugins=["table"])(markdown)
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        "<title>Data dictionary</title>\n<style>\n"
        "body{font-family:sans-serif;max-width:70rem;margin:2rem auto;padding:0 1rem}\n"
        "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.2rem .5rem;"
        "vertical-align:top;text-align:left}\n</style>\n</head>\n<body>\n"
        f"{body}</body>\n</html>\n"
    )


def rendered() -> dict[Path, str]:
    markdown = render_markdown()
    return {MARKDOWN: markdown, HTML: render_html(markdown)}


def stale_files() -> list[Path]:
    """The generated files whose text differs from what the registry gives now."""
    return [
        path
        for path, text in rendered().items()
        if not path.exists() or path.read_text(encoding="utf-8") != text
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="fail when the files are stale")
    args = parser.parse_args(argv)
    if args.check:
        stale = stale_files()
        for path in stale:
            print(f"{path.relative_to(REPO_ROOT)} is out of date: run 'make data-dictionary'")
        return 1 if stale else 0
    DOCS_DIR.mkdir(exist_ok=True)
    for path, text in rendered().items():
        path.write_text(text, encoding="utf-8")
        print(f"wrote {path.relative_to(REPO_ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

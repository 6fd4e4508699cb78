"""The data-quality report that opens from disk with no network.

GX's Data Docs load their CSS and JavaScript from public CDNs, so on an air-gapped host the
engineer on call sees empty pages. This report is the project's own, built from
``quality.validation_results`` alone: one self-contained HTML page per night (inline CSS and
SVG, no script, no link outside the folder) and an index of the nights.

Per night: every validated table with its rules (the latest run of the night for each table:
a retry or rerun supersedes), the failures with their observed values and sample rows, and
per table the trend of its volume (rows per batch) and freshness (the freshness rules' outcome)
over the nights before. ``python -m omni.quality_report --date D`` writes it; ``make run``'s
closing report does too and names the page.
"""

from __future__ import annotations

import html
import json
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from pyspark.sql import SparkSession, Window
from pyspark.sql import functions as F

from omni import lakehouse, tables
from omni.cli import print_for_date
from omni.config import Settings
from omni.quality import RESULT_COLUMNS

# Nights shown in the trends, the latest last.
TREND_NIGHTS = 30
# The columns of a recorded result that a page reads.
COLUMNS = (
    "run_id",
    "business_date",
    "table_name",
    "check_kind",
    "column_name",
    *RESULT_COLUMNS,
    "batch_rows",
    "validated_at",
)
STYLE = """
body { font-family: sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; }
th, td { border: 1px solid #ccc; padding: 0.2em 0.5em; text-align: left; vertical-align: top; }
th { background: #f0f0f0; }
.failed { background: #fde0dc; } .warned { background: #fff4d6; } .passed { color: #2e7d32; }
.strip span { display: inline-block; width: 8px; height: 14px; margin-right: 1px; }
.strip .ok { background: #66bb6a; } .bad { background: #e53935; } .none { background: #ddd; }
code { font-size: 90%; word-break: break-all; }
.sample { max-width: 60em; overflow-x: auto; }
"""


def report_dir(settings: Settings) -> Path:
    """Beside GX's own files: erasure deletes a page that quotes an erased customer."""
    return settings.gx_dir / "quality_report"


@dataclass(frozen=True)
class Night:
    """What the page of one night shows."""

    as_of: date
    results: list[dict[str, Any]]  # the night's results, the latest run of each table
    volume: dict[str, list[tuple[date, int]]]  # table -> (night, rows) up to as_of
    freshness: dict[str, list[tuple[date, bool | None]]]  # table -> (night, held) up to as_of


def load(spark: SparkSession, settings: Settings, as_of: date) -> Night:
    """The night's results and the trends of the TREND_NIGHTS nights up to it, from
    ``quality.validation_results``."""
    results = lakehouse.read_table(spark, settings, tables.VALIDATION_RESULTS)
    day = F.lit(str(as_of)).cast("date")
    nights = (
        results.where(F.col("business_date") <= day)
        .select("business_date")
        .distinct()
        .orderBy(F.col("business_date").desc())
        .limit(TREND_NIGHTS)
    )
    recent = results.join(nights, "business_date").select(*COLUMNS)
    # The latest run of each table and night: a retried or rerun validation supersedes.
    latest = Window.partitionBy("business_date", "table_name").orderBy(
        F.col("validated_at").desc(), F.col("run_id").desc()
    )
    runs = (
        recent.groupBy("business_date", "table_name", "run_id")
        .agg(F.max("validated_at").alias("validated_at"))
        .withColumn("rank", F.row_number().over(latest))
        .where("rank = 1")
        .select("business_date", "table_name", "run_id")
    )
    # Read twice below (the trends, the night's rows): computed once.
    kept = recent.join(runs, ["business_date", "table_name", "run_id"]).cache()
    trend = (
        kept.groupBy("business_date", "table_name")
        .agg(
            F.max("batch_rows").alias("rows"),
            F.min(F.when(F.col("check_kind") == "freshness", F.col("success"))).alias("fresh"),
        )
        .orderBy("table_name", "business_date")
        .collect()
    )
    volume: dict[str, list[tuple[date, int]]] = {}
    freshness: dict[str, list[tuple[date, bool | None]]] = {}
    for row in trend:
        volume.setdefault(row["table_name"], []).append((row["business_date"], row["rows"]))
        freshness.setdefault(row["table_name"], []).append((row["business_date"], row["fresh"]))
    night = [
        row.asDict()
        for row in kept.where(F.col("business_date") == day)
        .orderBy("table_name", F.col("success"), "check_kind", "expectation_type", "column_name")
        .collect()
    ]
    kept.unpersist()
    return Night(as_of, night, volume, freshness)


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def _sample(text: str | None) -> str:
    """The sample of bad rows as a small table (or a list of values)."""
    if not text:
        return ""
    try:
        rows = json.loads(text)
    except ValueError:
        return f"<code>{_e(text)}</code>"
    if rows and all(isinstance(r, dict) for r in rows):
        columns = list(dict.fromkeys(c for r in rows for c in r))
        head = "".join(f"<th>{_e(c)}</th>" for c in columns)
        body = "".join(
            "<tr>" + "".join(f"<td>{_e(r.get(c))}</td>" for c in columns) + "</tr>" for r in rows
        )
        return f'<div class="sample"><table><tr>{head}</tr>{body}</table></div>'
    return "<code>" + _e(", ".join(json.dumps(r) for r in rows)) + "</code>"


def _sparkline(points: list[tuple[date, int]]) -> str:
    """Rows per night as an inline SVG line, the night's count written after it."""
    values = [rows or 0 for _, rows in points]
    width, height = 160, 24
    top = max(values) or 1
    step = width / max(len(values) - 1, 1)
    xy = [(i * step, height - 2 - (v / top) * (height - 4)) for i, v in enumerate(values)]
    coords = " ".join(f"{x:.1f},{y:.1f}" for x, y in xy)
    title = _e(", ".join(f"{day}: {rows}" for day, rows in points))
    return (
        f'<svg width="{width + 4}" height="{height}" role="img"><title>{title}</title>'
        f'<polyline fill="none" stroke="#1565c0" stroke-width="1.5" points="{coords}"/>'
        f'<circle cx="{xy[-1][0]:.1f}" cy="{xy[-1][1]:.1f}" r="2" fill="#1565c0"/></svg>'
        f" {values[-1]:,}"
    )


def _strip(points: list[tuple[date, bool | None]]) -> str:
    kinds = {True: ("ok", "fresh"), False: ("bad", "stale"), None: ("none", "no freshness rule")}
    cells = "".join(
        f'<span class="{kinds[held][0]}" title="{day}: {kinds[held][1]}"></span>'
        for day, held in points
    )
    return f'<span class="strip">{cells}</span>'


def render(night: Night) -> str:
    """The page of the night: a summary, the failures, then every table with its rules."""
    by_table: dict[str, list[dict[str, Any]]] = {}
    for row in night.results:
        by_table.setdefault(row["table_name"], []).append(row)
    failed = [r for r in night.results if not r["success"]]
    blocking = [r for r in failed if r["severity"] == "blocking"]
    verdict = "FAILED" if blocking else "passed"
    parts = [
        f"<h1>Data quality of {night.as_of}: {verdict}</h1>",
        f"<p>{len(by_table)} tables, {len(night.results)} rules, {len(blocking)} blocking and "
        f"{len(failed) - len(blocking)} warning failure(s). "
        f'<a href="index.html">All nights</a></p>',
    ]
    if failed:
        parts.append(
            "<h2>Failures</h2><table><tr><th>table</th><th>severity</th><th>rule</th>"
            "<th>observed</th><th>bad rows</th><th>sample</th></tr>"
        )
        for r in failed:
            rule = f"{_e(r['expectation_type'])} <code>{_e(r['kwargs'])}</code>"
            if r["exception"]:
                rule += f"<br>error: <code>{_e(r['exception'])}</code>"
            parts.append(
                f'<tr class="{"failed" if r["severity"] == "blocking" else "warned"}">'
                f"<td>{_e(r['table_name'])}</td><td>{_e(r['severity'])}</td><td>{rule}</td>"
                f"<td>{_e(r['observed_value'])}</td><td>{_e(r['unexpected_count'])}</td>"
                f"<td>{_sample(r['unexpected_sample'])}</td></tr>"
            )
        parts.append("</table>")
    parts.append(
        "<h2>Tables</h2><table><tr><th>table</th><th>run</th><th>rules</th><th>failed</th>"
        f"<th>rows per night (last {TREND_NIGHTS})</th><th>freshness</th></tr>"
    )
    for name, rows in by_table.items():
        bad = sum(not r["success"] for r in rows)
        parts.append(
            f'<tr class="{"failed" if bad else "passed"}"><td><a href="#{_e(name)}">'
            f"{_e(name)}</a></td><td>{_e(rows[0]['run_id'])}</td><td>{len(rows)}</td>"
            f"<td>{bad}</td><td>{_sparkline(night.volume.get(name, [(night.as_of, 0)]))}</td>"
            f"<td>{_strip(night.freshness.get(name, []))}</td></tr>"
        )
    parts.append("</table>")
    for name, rows in by_table.items():
        parts.append(
            f'<h3 id="{_e(name)}">{_e(name)}</h3><table><tr><th>rule</th><th>column</th>'
            "<th>kind</th><th>severity</th><th>held</th><th>observed</th></tr>"
        )
        for r in rows:
            parts.append(
                f'<tr class="{"passed" if r["success"] else "failed"}">'
                f"<td>{_e(r['expectation_type'])} <code>{_e(r['kwargs'])}</code></td>"
                f"<td>{_e(r['column_name'])}</td><td>{_e(r['check_kind'])}</td>"
                f"<td>{_e(r['severity'])}</td><td>{'yes' if r['success'] else 'NO'}</td>"
                f"<td>{_e(r['observed_value'])}</td></tr>"
            )
        parts.append("</table>")
    return _page(f"Data quality {night.as_of}", "\n".join(parts))


def _page(title: str, body: str) -> str:
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{_e(title)}'
        f"</title><style>{STYLE}</style></head><body>\n{body}\n</body></html>\n"
    )


def write(spark: SparkSession, settings: Settings, as_of: date) -> Path:
    """Write the night's page and the index of every night's page; returns the page."""
    folder = report_dir(settings)
    folder.mkdir(parents=True, exist_ok=True)
    night = load(spark, settings, as_of)
    if not night.results:
        raise ValueError(
            f"no validation results for {as_of} in {tables.VALIDATION_RESULTS.name}: "
            "run the night first"
        )
    page = folder / f"{as_of}.html"
    page.write_text(render(night), encoding="utf-8")
    pages = sorted((p for p in folder.glob("*.html") if p.name != "index.html"), reverse=True)
    items = "".join(f'<li><a href="{_e(p.name)}">{_e(p.stem)}</a></li>' for p in pages)
    (folder / "index.html").write_text(
        _page("Data quality", f"<h1>Data quality, night by night</h1><ul>{items}</ul>"),
        encoding="utf-8",
    )
    return page


def main(argv: list[str] | None = None) -> int:
    return print_for_date(__doc__, "omni.quality_report", write, argv)


if __name__ == "__main__":
    raise SystemExit(main())

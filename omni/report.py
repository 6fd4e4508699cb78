"""Print what a run left behind, for the people who read it first.

For the data engineer: row counts of the tables and the night's data quality. For marketing:
the segments with their sizes and descriptions, customers and value at risk per churn risk
band, and what each campaign changed against its control group. For the data scientist: the
champions, churn ROC-AUC beside its BG/NBD baseline, recommendation recall beside popularity.
Then where to look next. ``make run`` ends with it.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from omni import lakehouse, quality, quality_report, tables
from omni.cli import print_for_date
from omni.config import Settings

# Riskiest first; a band the scores do not hold is left out.
RISK_BANDS = ("high", "medium", "low", "no_purchase_yet")


def _on(df, as_of: date, column: str = "as_of_date"):
    return df.where(F.col(column) == F.lit(str(as_of)).cast("date"))


def _money(amount) -> str:
    return "-" if amount is None else f"{amount:,.0f}"


def lakehouse_lines(spark: SparkSession, settings: Settings, as_of: date) -> list[str]:
    """Row counts (of the date where a table has one) and the date's expectation results."""
    lines = [f"Lakehouse {settings.lakehouse_location} after the run of {as_of}:"]
    for table in tables.ALL_TABLES:
        df = lakehouse.read_table(spark, settings, table)
        if "as_of_date" in df.columns:
            df = _on(df, as_of)
        lines.append(f"  {table.name:<28} {df.count():>9} rows")
    results = _on(
        lakehouse.read_table(spark, settings, tables.VALIDATION_RESULTS), as_of, "business_date"
    )
    failed = results.where(~F.col("success")).orderBy("table_name").collect()
    lines += [
        "",
        f"Data quality of {as_of}: {results.count()} expectation results, {len(failed)} failed",
    ]
    lines += [
        f"  [{row['severity']}] {row['table_name']}: {row['expectation_type']} "
        f"{row['kwargs']} (observed {row['observed_value']})"
        for row in failed
    ]
    return lines


def customer_lines(spark: SparkSession, settings: Settings, as_of: date) -> list[str]:
    """The date's segments (customers, share, description) and risk bands (customers,
    expected value and value at risk over 365 days), from gold.customer_scores."""
    scores = _on(lakehouse.read_table(spark, settings, tables.GOLD_SCORES), as_of).cache()
    total = scores.count()
    if total == 0:
        scores.unpersist()
        return [f"Customers: gold.customer_scores holds no scores for {as_of}"]
    segments = (
        scores.groupBy("segment_name", "segment_description")
        .agg(F.count("*").alias("customers"))
        .orderBy(F.col("customers").desc(), "segment_name")
        .collect()
    )
    lines = [f"Segments of {as_of} ({total} customers scored):"]
    width = max(len(row["segment_name"]) for row in segments)
    for row in segments:
        lines.append(
            f"  {row['segment_name']:<{width}} {row['customers']:>8} "
            f"{row['customers'] / total:>6.1%}  {row['segment_description'] or ''}"
        )
    bands = {
        row["churn_risk_band"]: row
        for row in scores.groupBy("churn_risk_band")
        .agg(
            F.count("*").alias("customers"),
            F.sum("expected_value_365d").alias("value"),
            F.sum("value_at_risk").alias("at_risk"),
        )
        .collect()
    }
    scores.unpersist()
    lines += [
        "",
        f"Churn risk of {as_of} (next 365 days, in the shop's currency):",
        f"  {'band':<16} {'customers':>9} {'expected value':>15} {'value at risk':>14}",
    ]
    for band in sorted(bands, key=lambda b: (RISK_BANDS + (b,)).index(b)):
        row = bands[band]
        lines.append(
            f"  {band:<16} {row['customers']:>9} {_money(row['value']):>15} "
            f"{_money(row['at_risk']):>14}"
        )
    return lines


def _share(value) -> str:
    """A share or a difference of shares, in percent with its sign."""
    return "-" if value is None else f"{value:+.1%}"


def _rate(value) -> str:
    return "-" if value is None else f"{value:.1%}"


def campaign_lines(spark: SparkSession, settings: Settings, as_of: date) -> list[str]:
    """Each campaign's readout of the date (gold.campaign_readout): per segment, the groups'
    conversion, the uplift with its 95% interval and p-value, or why it is too small to say."""
    rows = (
        _on(lakehouse.read_table(spark, settings, tables.GOLD_READOUT), as_of)
        .orderBy("campaign_id", F.col("segment_name") != "all", "segment_name")
        .collect()
    )
    if not rows:
        return [f"Campaigns: none running or inside its conversion window on {as_of}"]
    lines = [
        f"Campaigns of {as_of} (conversion in any channel within the window after assignment; "
        "uplift = treatment - control, 95% interval):"
    ]
    width = max(len(row["segment_name"]) for row in rows)
    for row in rows:
        if row["segment_name"] == "all":
            lines.append(
                f"  {row['campaign_id']} {row['campaign_name']!r} ({row['channel']}, "
                f"{row['campaign_status']}): of the treatment group, {_rate(row['sent_rate'])} "
                f"sent, {_rate(row['opened_rate'])} opened, {_rate(row['clicked_rate'])} clicked"
            )
        groups = (
            f"{row['converters_treatment']}/{row['customers_treatment']} vs "
            f"{row['converters_control']}/{row['customers_control']}"
        )
        if row["too_small"]:
            verdict = f"too small to say: {row['too_small_reason']}"
        else:
            verdict = (
                f"uplift {_share(row['uplift_abs'])} [{_share(row['uplift_abs_low'])}, "
                f"{_share(row['uplift_abs_high'])}], p = {row['p_value']:.3f}"
                + ("  significant" if row["significant"] else "")
            )
        lines.append(f"    {row['segment_name']:<{width}} {groups:>17}  {verdict}")
    return lines


def model_lines(client, as_of: date) -> list[str]:
    """The champions, churn metrics beside the baseline's, the date's recommendation
    evaluation beside its baselines."""
    from models import registry
    from models.recommend import METHODS
    from models.recommend_evaluation import EXPERIMENT

    lines = ["Models (MLflow registry):"]
    for model in (registry.SEGMENTATION_MODEL, registry.CHURN_MODEL):
        champion = registry.champion_version(client, model)
        if champion is None:
            lines.append(f"  {model:<24} no champion")
            continue
        run = client.get_run(champion.run_id)
        lines.append(
            f"  {model:<24} champion version {champion.version}, "
            f"trained on {run.data.tags.get('as_of_date', '?')}"
        )
        if model == registry.CHURN_MODEL:
            metrics = run.data.metrics
            for name in ("roc_auc", "brier", "calibration_error"):
                if name in metrics:
                    lines.append(
                        f"    {name:<17} {metrics[name]:.3f}  (BG/NBD baseline "
                        f"{metrics.get('baseline_' + name, float('nan')):.3f}, same holdout)"
                    )
    experiment = client.get_experiment_by_name(EXPERIMENT)
    runs = (
        client.search_runs(
            [experiment.experiment_id],
            filter_string=f"tags.as_of_date = '{as_of}' and attributes.status = 'FINISHED'",
            order_by=["attributes.start_time DESC"],
            max_results=1,
        )
        if experiment
        else []
    )
    if not runs:
        lines.append(f"  recommendations            not evaluated on {as_of}")
        return lines
    params, metrics = runs[0].data.params, runs[0].data.metrics
    top = params["top"]
    lines.append(
        f"  recommendations            {params['holdout_days']} days held out after "
        f"{params['cutoff']}, {int(metrics['customers'])} customers buying something new:"
    )
    for method in METHODS:
        lines.append(
            f"    {method:<19} recall@{top} {metrics[f'{method}_recall_at_{top}']:.3f}  "
            f"hit rate {metrics[f'{method}_hit_rate']:.3f}"
        )
    if "recall_lift_over_popularity" in metrics:
        lines.append(
            f"    the feed's recommender recalls {metrics['recall_lift_over_popularity']:.2f}x "
            "what popularity does"
        )
    return lines


def next_lines(settings: Settings, quality_page: Path | str) -> list[str]:
    return [
        "Where to look next:",
        f"  MLflow UI      .venv/bin/mlflow ui --backend-store-uri {settings.mlflow_tracking_uri}",
        f"  Quality report open {quality_page} (offline: no CDN, no script)"
        if isinstance(quality_page, Path)
        else f"  Quality report {quality_page}",
        f"  Data Docs      make data-docs (or open {quality.data_docs_index(settings)})",
        "  SQL server     make sql-server, then JDBC/ODBC on localhost:10000, tables by name",
        "  Notebooks      make notebooks (profiles and segments, model runs, campaign readout)",
    ]


def render(spark: SparkSession, settings: Settings, client, as_of: date) -> str:
    try:
        quality_page: Path | str = quality_report.write(spark, settings, as_of)
    except ValueError as missing:  # a date no run validated: the report still says the rest
        quality_page = f"none: {missing}"
    sections = (
        lakehouse_lines(spark, settings, as_of),
        customer_lines(spark, settings, as_of),
        campaign_lines(spark, settings, as_of),
        model_lines(client, as_of),
        next_lines(settings, quality_page),
    )
    return "\n\n".join("\n".join(lines) for lines in sections)


def main(argv: list[str] | None = None) -> int:
    from models import registry

    def text(spark: SparkSession, settings: Settings, as_of: date) -> str:
        return "\n" + render(spark, settings, registry.configure_tracking(settings), as_of)

    return print_for_date(__doc__, "omni.report", text, argv)


if __name__ == "__main__":
    raise SystemExit(main())

"""The data-quality report of the project's own (``omni/quality_report.py``): real GX results
of two nights, a rerun and a failure, rendered to pages that need no network."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from html.parser import HTMLParser

import pytest

from jobs.erase_customer import erase_from_gx_files
from omni import quality, quality_report
from omni.config import REPO_ROOT
from tests.browser import SCREENSHOTS, open_offline
from tests.test_quality import DAY, batch

NIGHT_1, NIGHT_2 = DAY - timedelta(days=1), DAY


class _Page(HTMLParser):
    """The tags and every link or resource a page names."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.tags: set[str] = set()
        self.references: list[str] = []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        self.tags.add(tag)
        self.references += [v for k, v in attrs if k in ("href", "src", "srcset", "action") and v]


@pytest.fixture(scope="module")
def report(spark, settings, tmp_path_factory):
    """Night 1 passes; night 2 is validated twice: a first run that passes, then a rerun
    with a duplicate store and a monitoring batch of the night before (stale: a warning)."""
    local = replace(settings, lakehouse_dir=tmp_path_factory.mktemp("report") / "lakehouse")

    def duplicate(i, row):
        if i == 1:
            row["store_id"] = "store_id-0"

    def monitoring(day, n):
        def change(i, row):
            row["model_name"], row["kind"] = "customer_churn", "feature"
            row["psi"], row["threshold"], row["drifted"] = 0.01, 0.2, False

        return batch(spark, "gold.model_monitoring", n, change, as_of_date=day)

    runs = [
        ("night-1", NIGHT_1, batch(spark, "silver.stores", 4), monitoring(NIGHT_1, 3)),
        ("night-2-first", NIGHT_2, batch(spark, "silver.stores", 5), monitoring(NIGHT_2, 3)),
        (
            "night-2-rerun",
            NIGHT_2,
            batch(spark, "silver.stores", 6, duplicate),
            monitoring(NIGHT_1, 2),
        ),
    ]
    for run_id, day, stores, monitor in runs:
        quality.validate_tables(
            spark, local, {"silver.stores": stores, "gold.model_monitoring": monitor}, run_id, day
        )
    pages = {day: quality_report.write(spark, local, day) for day in (NIGHT_1, NIGHT_2)}
    return local, pages


def test_a_night_page_shows_its_failures_with_the_bad_rows_of_the_latest_run(report):
    _, pages = report
    text = pages[NIGHT_2].read_text()
    assert f"<h1>Data quality of {NIGHT_2}: FAILED</h1>" in text
    assert "2 tables" in text and "1 blocking and 1 warning failure(s)" in text
    failures = text.split("<h2>Failures</h2>")[1].split("<h2>Tables</h2>")[0]
    assert "expect_column_values_to_be_unique" in failures and "silver.stores" in failures
    assert "<td>store_id-0</td>" in failures  # the sample of the duplicated rows
    assert "expect_column_max_to_be_between" in failures  # monitoring's stale as_of_date
    assert "night-2-rerun" in text and "night-2-first" not in text  # the rerun supersedes
    assert f"<h1>Data quality of {NIGHT_1}: passed</h1>" in pages[NIGHT_1].read_text()


def test_the_trends_show_volume_and_freshness_night_by_night(report):
    _, pages = report
    text = pages[NIGHT_2].read_text()
    assert f"<title>{NIGHT_1}: 4, {NIGHT_2}: 6</title>" in text  # silver.stores, latest runs
    assert f"<title>{NIGHT_1}: 3, {NIGHT_2}: 2</title>" in text  # gold.model_monitoring
    assert f'title="{NIGHT_1}: fresh"></span><span class="bad" title="{NIGHT_2}: stale"' in text
    assert f'title="{NIGHT_1}: no freshness rule"' in text  # silver.stores has none


def test_the_pages_need_no_network(report):
    local, pages = report
    index = quality_report.report_dir(local) / "index.html"
    for path in (*pages.values(), index):
        page = _Page(path.read_text())
        assert not page.tags & {"script", "link", "img", "iframe", "object", "embed"}, path
        for reference in page.references:
            assert "://" not in reference and not reference.startswith("//"), (path, reference)
            target = reference.split("#")[0]
            assert not target or (path.parent / target).exists(), (path, reference)
    assert [p for p in _Page(index.read_text()).references] == [
        f"{NIGHT_2}.html",
        f"{NIGHT_1}.html",
    ]


def test_the_report_and_the_data_dictionary_read_in_chromium_with_no_network(report):
    """Screenshots: test-artifacts/screenshots/quality_report.png, data_dictionary.png."""
    _, pages = report
    dom = open_offline(pages[NIGHT_2].as_uri(), "quality_report")
    failures = dom.split("Failures")[1].split("Tables")[0]
    assert f"Data quality of {NIGHT_2}: FAILED" in dom
    assert "silver.stores" in failures and "expect_column_values_to_be_unique" in failures
    assert "<svg" in dom and "polyline" in dom  # the volume trends are drawn
    dictionary = open_offline(
        (REPO_ROOT / "docs" / "data-dictionary.html").as_uri(), "data_dictionary"
    )
    assert "gold.campaign_readout" in dictionary and "uplift_abs_low" in dictionary
    assert (SCREENSHOTS / "quality_report.png").stat().st_size > 10_000


def test_a_night_with_no_results_is_refused(spark, report):
    local, _ = report
    with pytest.raises(ValueError, match=f"no validation results for {DAY + timedelta(9)}"):
        quality_report.write(spark, local, DAY + timedelta(9))


def test_erasure_deletes_a_page_that_quotes_the_customer(report):
    local, pages = report
    assert erase_from_gx_files(local, {"store_id-0"}) >= 1
    assert not pages[NIGHT_2].exists() and pages[NIGHT_1].exists()

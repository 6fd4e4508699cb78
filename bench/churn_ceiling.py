"""How far the churn model is from the best any model could do on ``make run``'s sample.

The generator knows what no model sees: each customer's type (their daily chances of a
session, of buying in one, of a store visit) and, for a lapsing customer, the day they stop
and how their activity fades before it. This builds the churn training set of the lakehouse's
latest date with the pipeline's own code (identity as of each cut-off included), trains the
model, and scores the holdout customers three ways besides the model and its BG/NBD baseline:

- ``ceiling``: the chance of no purchase in the horizon from the customer's true type and
  activity on each day of the horizon (it knows when a lapsing customer stops);
- ``state on the cut-off``: the same from their type and activity on the cut-off only.

It prints each one's ROC-AUC on the holdout customers the generator made (every one, on the
default sample) and the share of the way from BG/NBD to the ceiling the model covers. Run it
after ``make run`` on the default sample (``omni.sample``'s defaults):

    python -m bench.churn_ceiling
"""

from __future__ import annotations

import argparse
import json

from sklearn.metrics import roc_auc_score

from models.churn import train_churn
from models.features import KEYS_THEN, LABEL, ChurnWindows
from models.train import churn_training_frame
from omni.config import load_settings
from omni.history import customer_history, keys_as_of
from omni.sample import BEHAVIOURS, SampleGenerator, SampleSpec, latest_ready_date
from omni.spark import get_spark
from omni.transforms.identity import TYPE_ORDER, python_key


def _key(customer_id: str) -> str:
    """The customer_key of a CRM customer alone in their component."""
    return python_key(f"{TYPE_ORDER['customer_id']}|customer_id|{customer_id}")


def quiet_chance(generator: SampleGenerator, customer, days: range) -> float:
    """The chance of no purchase on any of ``days`` (day indices) at the customer's true rates."""
    behaviour = BEHAVIOURS[customer.kind]
    chance = 1.0
    for day in days:
        activity = generator._activity(customer, day)
        online = behaviour.session_rate * activity * behaviour.purchase_rate
        chance *= (1 - online) * (1 - behaviour.store_rate * activity)
    return chance


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.parse_args(argv)
    settings = load_settings()
    spec = SampleSpec()
    as_of = latest_ready_date(settings.landing_dir)
    windows = ChurnWindows.for_date(
        as_of,
        settings.churn_horizon_days,
        settings.churn_training_snapshots,
        settings.churn_snapshot_step_days,
    )
    spark = get_spark(settings, app_name="bench.churn_ceiling")
    spark.sparkContext.setLogLevel("ERROR")
    try:
        with customer_history(spark, settings) as inputs:
            moved = keys_as_of(spark, settings, inputs["identity"], windows.cutoffs, as_of)
            inputs = {**inputs, KEYS_THEN: moved.localCheckpoint()}
            training = churn_training_frame(inputs, settings, as_of)
    finally:
        spark.stop()
    result = train_churn(training, settings.churn_horizon_days)
    holdout = result.holdout.assign(
        customer_key=training[training.split == "holdout"].customer_key.to_numpy()
    )
    generator = SampleGenerator(spec)
    customers = {_key(c.customer_id): c for c in generator.customers}
    known = holdout[holdout.customer_key.isin(customers)].copy()
    cut = (windows.holdout - spec.start_date).days
    horizon = range(cut + 1, cut + 1 + settings.churn_horizon_days)
    at_cutoff = range(cut, cut + 1)
    known["ceiling"] = [quiet_chance(generator, customers[k], horizon) for k in known.customer_key]
    known["state on the cut-off"] = [
        quiet_chance(generator, customers[k], at_cutoff) ** settings.churn_horizon_days
        for k in known.customer_key
    ]
    y = known[LABEL].astype(int)
    auc = {
        name: round(float(roc_auc_score(y, known[column])), 4)
        for name, column in (
            ("model", "probability"),
            ("BG/NBD", "baseline_probability"),
            ("ceiling", "ceiling"),
            ("state on the cut-off", "state on the cut-off"),
        )
    }
    report = {
        "as_of": str(as_of),
        "holdout_customers": len(holdout),
        "from_the_generator": len(known),
        "roc_auc": auc,
        "share_of_the_way_to_the_ceiling": round(
            (auc["model"] - auc["BG/NBD"]) / (auc["ceiling"] - auc["BG/NBD"]), 2
        ),
    }
    print(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main()

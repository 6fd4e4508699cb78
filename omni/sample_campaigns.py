"""The sample's campaigns: what marketing planned, what the providers report, and how customers
react, with the truth kept so tests can check the readout against it.

``LAUNCH_DAYS_BEFORE_END`` days before the sample's end, two campaigns start (``PLANS``). The
pipeline assigns their audience on the launch night (``models.campaigns``, the contract's
rule): the generator does the same, on what the pipeline knows that night (customers signed
up by then, consent as the CRM records it then, audience ``all``), and the providers send the
treatment group the next morning and report it (``marketing/messages``: sent, delivered or
bounced, opened, clicked, unsubscribed, complained; some reports a day or two late, some
twice). A treated customer then buys once more within the conversion window with the
probability their behaviour type's effect gives (strong on lapsing customers, some of it in
store with the loyalty card, none on loyal ones); the control group is never sent anything.

Everything here draws from its own random stream, so the rest of the sample is the same with
or without campaigns. ``CampaignTruth`` rows say, per assigned customer, the group and the
effect's purchase (its day and channel, and whether the pipeline can see it: a store receipt
without the card scanned is nobody's), and the customer's own identified purchases (the
conversion they would have made anyway) are in ``SampleGenerator.identified``.
"""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from omni.sample import Customer, SampleGenerator, SampleSpec

LAUNCH_DAYS_BEFORE_END = 20
# A sample shorter than this has no campaign: the models need history before the launch.
MIN_DAYS = 40


@dataclass(frozen=True)
class Plan:
    campaign_id: str
    name: str
    channel: str
    offer: str
    holdout_share: float
    run_days: int
    window_days: int
    open_rate: float
    # Behaviour type: (chance a treated customer buys once more in the window, share in store).
    effects: dict[str, tuple[float, float]]


PLANS = (
    Plan(
        "CMP-WINBACK",
        "Win back",
        "email",
        "15% off",
        0.3,
        7,
        14,
        0.35,
        {
            "lapsing": (0.30, 0.4),
            "discount_hunter": (0.15, 0.7),
            "online_browser": (0.06, 0.0),
            "omni_loyal": (0.0, 0.0),
            "store_regular": (0.0, 0.0),
        },
    ),
    # A push that changes nothing: its readout must not find an effect.
    Plan("CMP-APPNEWS", "App news", "push", "", 0.2, 7, 14, 0.12, {}),
)


@dataclass(frozen=True)
class CampaignTruth:
    campaign_id: str
    customer_id: str
    kind: str
    treatment_group: str
    assigned_on: date
    window_days: int
    effect_day: date | None = None
    effect_channel: str | None = None  # online or store
    effect_seen: bool = False  # the pipeline can tie the purchase to the customer


def holdout_draw(campaign_id: str, customer_id: str) -> float:
    """raw-landing.md's rule: the first 8 hex digits of sha256("<campaign>:<customer>") / 2^32."""
    digest = hashlib.sha256(f"{campaign_id}:{customer_id}".encode()).hexdigest()
    return int(digest[:8], 16) / 2**32


def launch_date(spec: SampleSpec) -> date:
    """The campaigns' launch: the spec's, or ``LAUNCH_DAYS_BEFORE_END`` days before its end."""
    return spec.campaign_launch or spec.end_date - timedelta(days=LAUNCH_DAYS_BEFORE_END)


def campaign_rows(plans: tuple[Plan, ...], launch: date) -> dict[date, list[list[str]]]:
    """``marketing/campaigns`` by folder date: planned three days before the launch, and the
    offer of the first changed the day before it (the latest ``updated_at`` wins)."""
    planned, changed = launch - timedelta(days=3), launch - timedelta(days=1)

    def row(plan: Plan, offer: str, updated: date) -> list[str]:
        end = launch + timedelta(days=plan.run_days - 1)
        return [
            plan.campaign_id,
            plan.name,
            plan.channel,
            "all",
            offer,
            str(launch),
            str(end),
            str(plan.holdout_share),
            str(plan.window_days),
            f"{updated} 09:00:00",
        ]

    first = plans[0]
    return {
        planned: [row(p, "10% off" if p is first else p.offer, planned) for p in plans],
        changed: [row(first, first.offer, changed)],
    }


class CampaignPlanter:
    """Plants ``PLANS`` into a generator's landing (after its own simulation)."""

    def __init__(self, generator: SampleGenerator, plans: tuple[Plan, ...] = PLANS) -> None:
        self.g, self.plans = generator, plans
        self.spec = generator.spec
        self.launch = launch_date(self.spec)
        self.rng = random.Random(self.spec.seed * 7919 + 27)
        self._messages = 0

    def opted_in(self, c: Customer, channel: str, day: date) -> bool:
        """The CRM's flag for ``channel`` as its latest record up to ``day`` says."""
        if channel == "push":
            return c.push_opt_in
        changed = c.email_opt_in_changed_on
        return c.email_opt_in if changed is None or changed <= day else not c.email_opt_in

    def plant(self) -> list[CampaignTruth]:
        landing = self.g.landing
        for day, rows in campaign_rows(self.plans, self.launch).items():
            landing.campaigns[day].extend(rows)
        truth = []
        saved, self.g.rng = self.g.rng, self.rng  # the sample's own stream stays untouched
        try:
            for plan in self.plans:
                for c in self.g.customers:
                    if c.signup.date() > self.launch or not self.opted_in(
                        c, plan.channel, self.launch
                    ):
                        continue
                    treated = holdout_draw(plan.campaign_id, c.customer_id) >= plan.holdout_share
                    if not treated:
                        truth.append(self._truth(plan, c, "control"))
                        continue
                    self._report(plan, c)
                    truth.append(self._react(plan, c))
        finally:
            self.g.rng = saved
        return truth

    def _truth(self, plan: Plan, c: Customer, group: str, **effect) -> CampaignTruth:
        return CampaignTruth(
            plan.campaign_id, c.customer_id, c.kind, group, self.launch, plan.window_days, **effect
        )

    def _report(self, plan: Plan, c: Customer) -> None:
        """The provider's events of the message sent to ``c`` the morning after the launch."""
        rng = self.rng
        sent = datetime.combine(self.launch + timedelta(days=1), datetime.min.time())
        sent += timedelta(hours=8, seconds=rng.randint(0, 3 * 3600))
        self._messages += 1
        message_id = f"MSG-{plan.campaign_id}-{self._messages:07d}"
        steps = [("sent", sent)]
        if rng.random() < 0.04:
            steps.append(("bounced", sent + timedelta(minutes=1)))
        else:
            moment = sent + timedelta(minutes=rng.randint(1, 20))
            steps.append(("delivered", moment))
            if rng.random() < plan.open_rate:
                moment += timedelta(hours=rng.uniform(0.2, 30))
                steps.append(("opened", moment))
                if rng.random() < 0.3:
                    steps.append(("clicked", moment + timedelta(seconds=rng.randint(5, 300))))
            if rng.random() < 0.015:
                steps.append(("unsubscribed", moment + timedelta(minutes=rng.randint(1, 600))))
            elif rng.random() < 0.002:
                steps.append(("complained", moment + timedelta(hours=2)))
        for n, (event_type, moment) in enumerate(steps):
            line = json.dumps(
                {
                    "event_id": f"{message_id}-{n}",
                    "message_id": message_id,
                    "campaign_id": plan.campaign_id,
                    "channel": plan.channel,
                    "customer_id": c.customer_id,
                    "event_type": event_type,
                    "event_time": f"{moment.isoformat(timespec='seconds')}+00:00",
                },
                separators=(",", ":"),
            )
            day = moment.date()
            folder = self.g._folder_for(day)  # late reports, like every source
            self.g.landing.messages[folder].append(line)
            duplicate = self.g._maybe_duplicate(day)
            if duplicate is not None:
                self.g.landing.messages[duplicate].append(line)

    def _react(self, plan: Plan, c: Customer) -> CampaignTruth:
        """The effect: maybe one more purchase in the window, online or in store."""
        rng, spec = self.rng, self.spec
        chance, store_share = plan.effects.get(c.kind, (0.0, 0.0))
        if rng.random() >= chance:
            return self._truth(plan, c, "treatment")
        offset = 1 + min(int(rng.expovariate(1 / 4)), plan.window_days - 1)
        day = self.launch + timedelta(days=offset)
        in_store = spec.in_store and c.card is not None and rng.random() < store_share
        if spec.online and not in_store:
            behaviour = replace(self.g.behaviour(c), purchase_rate=1.0)
            events = self.g._session(c, day, behaviour)
            for event in events:
                event.update(utm_source="crm", utm_medium=plan.channel)
                event.update(utm_campaign=plan.campaign_id)
            self.g._deliver_events(events, day)
            return self._truth(
                plan, c, "treatment", effect_day=day, effect_channel="online", effect_seen=True
            )
        if not spec.in_store:
            return self._truth(plan, c, "treatment")
        store = self.g.store_for(c, day)
        if store is None:
            return self._truth(plan, c, "treatment")
        lines = self.g._receipt(c, day, store, self.g.behaviour(c))
        self.g._deliver_receipt(lines, day, store)
        seen = bool(lines[0][10])  # the loyalty card was scanned
        return self._truth(
            plan, c, "treatment", effect_day=day, effect_channel="store", effect_seen=seen
        )

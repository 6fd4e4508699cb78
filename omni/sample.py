"""Generate a deterministic sample of every raw source in ``raw-landing.md``.

Customers belong to a few behaviour types the models should find: omni-channel loyal
shoppers, online browsers who search a lot, store-only regulars, discount hunters and lapsing
customers whose activity decays and stops. The sample also carries what real exports carry:
loyalty cards linking receipts to online accounts, sessions that log in half-way, shared
in-store devices, returns, late and duplicated records, and a small rate of every bad-record
kind the contract lists (each kind at least once). Same seed, same files.

Stores export on their own, as real tills do: every open store writes its own ``store_id=``
folder every day, with its ``_SUCCESS``, and no data file on a day without a receipt. Options
give the history shapes of real retailers: a year or more (``--days 365``), a store closed on
public holidays (``--holidays``), a store that opens half-way (``--new-store``), a store whose
last day is still waiting for its marker (``--late-store``), and a retailer with one channel
only (``--channels store`` or ``--channels online``).

    python -m omni.sample --customers 2000 --days 120 --seed 7
    python -m omni.sample --customers 300 --days 365 --holidays --new-store --late-store
"""

from __future__ import annotations

import argparse
import csv
import gzip
import io
import json
import random
import shutil
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from omni.config import load_settings, parse_date
from omni.sample_campaigns import MIN_DAYS as CAMPAIGN_MIN_DAYS
from omni.sample_campaigns import CampaignPlanter, CampaignTruth
from omni.sources import (
    CAMPAIGN_COLUMNS,
    CRM_COLUMNS,
    POS_COLUMNS,
    PRODUCT_COLUMNS,
    STORE_COLUMNS,
)

SITE_ZONE = ZoneInfo("Europe/Paris")
STORES = (
    ("S001", "Paris Rivoli", "Paris", "Ile-de-France", "FR", "Europe/Paris", "2015-03-01"),
    ("S002", "Lyon Part-Dieu", "Lyon", "Auvergne-Rhone-Alpes", "FR", "Europe/Paris", "2017-09-15"),
    ("S003", "Berlin Mitte", "Berlin", "Berlin", "DE", "Europe/Berlin", "2018-05-20"),
    ("S004", "Lisboa Chiado", "Lisboa", "Lisboa", "PT", "Europe/Lisbon", "2019-11-02"),
    ("S005", "Helsinki Kamppi", "Helsinki", "Uusimaa", "FI", "Europe/Helsinki", "2021-04-10"),
    ("S006", "Dublin Grafton", "Dublin", "Leinster", "IE", "Europe/Dublin", "2022-06-01"),
)
CATEGORIES = {
    "apparel": ("tops", "trousers", "outerwear"),
    "footwear": ("sneakers", "boots", "sandals"),
    "beauty": ("skincare", "makeup", "fragrance"),
    "home": ("kitchen", "decor", "bedding"),
    "electronics": ("audio", "phones", "accessories"),
    "sports": ("running", "yoga", "outdoor"),
    "books": ("fiction", "cooking", "travel"),
    "toys": ("games", "puzzles", "plush"),
}
PRICE_RANGE = {
    "apparel": (15, 90),
    "footwear": (40, 160),
    "beauty": (8, 70),
    "home": (10, 120),
    "electronics": (20, 300),
    "sports": (15, 140),
    "books": (8, 35),
    "toys": (10, 60),
}
BRANDS = ("Acme", "Nordlys", "Solano", "Vireo", "Kestrel", "Maris", "Oakline", "Tessera")
FIRST_NAMES = (
    "Ana",
    "Luc",
    "Mia",
    "Jon",
    "Eva",
    "Tom",
    "Ines",
    "Paul",
    "Lea",
    "Omar",
    "Sara",
    "Ivo",
)
LAST_NAMES = ("Martin", "Silva", "Muller", "Virtanen", "Murphy", "Dubois", "Costa", "Keller")
SEARCH_TERMS = {
    "apparel": ("linen shirt", "black jeans", "rain jacket"),
    "footwear": ("running shoes", "leather boots", "white sneakers"),
    "beauty": ("vitamin c serum", "red lipstick", "perfume gift"),
    "home": ("cast iron pan", "bed linen", "scented candle"),
    "electronics": ("wireless earbuds", "phone case", "usb c charger"),
    "sports": ("yoga mat", "trail shoes", "water bottle"),
    "books": ("crime novel", "vegan cookbook", "lisbon guide"),
    "toys": ("board game", "1000 piece puzzle", "teddy bear"),
}
EVENT_BAD_KINDS = (
    "truncated_json",
    "not_json",
    "wrong_type",
    "missing_required_field",
    "unknown_event_type",
    "negative_price",
    "timestamp_in_future",
    "timestamp_before_2000",
    "unknown_sku",
)
POS_BAD_KINDS = (
    "wrong_column_count",
    "wrong_type",
    "missing_required_field",
    "negative_price",
    "unknown_store",
    "unknown_sku",
    "timestamp_in_future",
    "timestamp_before_2000",
)
CRM_BAD_KINDS = ("wrong_column_count", "wrong_type", "missing_required_field")
CHANNELS = ("both", "store", "online")
# Public holidays (month, day) on which HOLIDAY_STORE closes (with ``holidays``).
PUBLIC_HOLIDAYS = ((1, 1), (5, 1), (7, 14), (8, 15), (11, 1), (11, 11), (12, 25), (12, 26))
HOLIDAY_STORE = "S002"
# The store whose folders arrive a night late (with ``late_store``): its last day waits.
LATE_STORE = "S003"


@dataclass(frozen=True)
class Behaviour:
    """Per-day probabilities and habits of one customer type."""

    session_rate: float
    purchase_rate: float  # chance an online session ends in a purchase
    store_rate: float
    search_weight: int
    discount_rate: float
    card_rate: float


BEHAVIOURS = {
    "omni_loyal": Behaviour(0.10, 0.30, 0.06, 1, 0.05, 0.95),
    "online_browser": Behaviour(0.16, 0.07, 0.004, 4, 0.05, 0.25),
    "store_regular": Behaviour(0.006, 0.10, 0.09, 1, 0.05, 0.97),
    "discount_hunter": Behaviour(0.07, 0.18, 0.04, 2, 0.60, 0.85),
    "lapsing": Behaviour(0.08, 0.22, 0.05, 1, 0.08, 0.80),
}
# Lapsing customers stop after this share of the sample's days on average (exponentially).
LAPSE_MEAN_SHARE = 0.75
TYPE_WEIGHTS = {
    "omni_loyal": 0.2,
    "online_browser": 0.22,
    "store_regular": 0.2,
    "discount_hunter": 0.15,
    "lapsing": 0.23,
}


@dataclass(frozen=True)
class SampleSpec:
    customers: int = 2000
    days: int = 120
    end_date: date = date(2026, 11, 1)
    seed: int = 7
    anonymous_visitors: int | None = None
    walk_in_rate: float = 0.25  # receipts per store-day without any card, per store
    bad_rate: float = 0.0015
    late_rate: float = 0.01
    duplicate_rate: float = 0.005
    gzip_events: bool = True
    channels: str = "both"  # "store": no online shop; "online": no stores
    holidays: bool = False  # HOLIDAY_STORE closes on PUBLIC_HOLIDAYS
    new_store: bool = False  # the last store opens half-way through the sample
    late_store: bool = False  # LATE_STORE's folder of the end date still waits for its marker
    campaigns: bool = True  # marketing campaigns and their effects (omni.sample_campaigns)
    campaign_launch: date | None = (
        None  # their launch (default: LAUNCH_DAYS_BEFORE_END days before the end)
    )

    @property
    def start_date(self) -> date:
        return self.end_date - timedelta(days=self.days - 1)

    @property
    def has_campaigns(self) -> bool:
        """Campaigns need history before their launch: none in a short sample."""
        return self.campaigns and self.days >= CAMPAIGN_MIN_DAYS

    @property
    def online(self) -> bool:
        return self.channels != "store"

    @property
    def in_store(self) -> bool:
        return self.channels != "online"

    @property
    def new_store_opens(self) -> date | None:
        """The day the last store opens, when it opens within the sample."""
        return self.start_date + timedelta(days=self.days // 2) if self.new_store else None

    def store_open(self, store_id: str, day: date) -> bool:
        """Whether the store trades that day."""
        if not self.store_exists(store_id, day):
            return False
        if self.holidays and store_id == HOLIDAY_STORE:
            return (day.month, day.day) not in PUBLIC_HOLIDAYS
        return True

    def store_exists(self, store_id: str, day: date) -> bool:
        """Whether the store has opened by that day: it then exports a folder every day, an
        empty complete one when it is closed (a holiday), as ``raw-landing.md`` has it."""
        return not (
            self.new_store_opens and store_id == STORES[-1][0] and day < self.new_store_opens
        )

    def validate(self) -> None:
        if self.customers < 10:
            raise ValueError(f"customers={self.customers}: expected at least 10")
        if self.days < 2:
            raise ValueError(f"days={self.days}: expected at least 2")
        for name in ("bad_rate", "late_rate", "duplicate_rate"):
            value = getattr(self, name)
            if not 0 <= value < 0.5:
                raise ValueError(f"{name}={value}: expected a rate in [0, 0.5)")
        if self.channels not in CHANNELS:
            raise ValueError(f"channels={self.channels!r}: expected one of {CHANNELS}")
        if not self.in_store and (self.holidays or self.new_store or self.late_store):
            raise ValueError(
                f"channels={self.channels!r} has no stores: holidays, new_store and late_store "
                "need them"
            )


@dataclass
class Customer:
    customer_id: str
    kind: str
    devices: list[tuple[str, str]]  # (anonymous_id, platform)
    card: str | None
    home_store: int
    categories: list[str]
    signup: datetime
    email_opt_in: bool
    push_opt_in: bool
    first_name: str
    last_name: str
    birth_year: int
    postal_code: str
    stop_day: int | None = None  # lapsing: the day index activity stops
    email_opt_in_changed_on: date | None = None  # the day the CRM's flag flipped, if it did
    bought: list[str] = field(default_factory=list)


@dataclass
class Landing:
    """Records per source and folder date, written at the end."""

    events: dict[date, list[str]] = field(default_factory=lambda: defaultdict(list))
    pos: dict[tuple[date, str], list[list[str]]] = field(default_factory=lambda: defaultdict(list))
    crm: dict[date, list[list[str]]] = field(default_factory=lambda: defaultdict(list))
    products: dict[date, list[list[str]]] = field(default_factory=lambda: defaultdict(list))
    stores: dict[date, list[list[str]]] = field(default_factory=lambda: defaultdict(list))
    campaigns: dict[date, list[list[str]]] = field(default_factory=lambda: defaultdict(list))
    messages: dict[date, list[str]] = field(default_factory=lambda: defaultdict(list))


class SampleGenerator:
    def __init__(self, spec: SampleSpec) -> None:
        spec.validate()
        self.spec = spec
        self.rng = random.Random(spec.seed)
        self.landing = Landing()
        self.products = self._make_products()
        self.skus_by_category: dict[str, list[tuple[str, float]]] = defaultdict(list)
        for sku, _, category, _, _, price, _ in self.products:
            self.skus_by_category[category].append((sku, float(price)))
        self.customers = [self._make_customer(i) for i in range(spec.customers)]
        n_anonymous = spec.anonymous_visitors
        if n_anonymous is None:
            n_anonymous = spec.customers // 5
        self.visitors = [self._new_device() for _ in range(n_anonymous)]
        self.shared_devices = [(f"A-SHARED-TABLET-{i}", "web") for i in range(2)]
        self._serial = 0
        # Each customer's purchases the pipeline can tie to them (online, or a scanned card),
        # by day: the conversions they make without any campaign.
        self.identified: dict[str, list[date]] = defaultdict(list)
        self._recording = True
        self.campaign_truth: list[CampaignTruth] = []

    # ---------------------------------------------------------------- reference and CRM
    def _make_products(self) -> list[list[str]]:
        rows = []
        for category, subcategories in CATEGORIES.items():
            low, high = PRICE_RANGE[category]
            for n in range(25):
                sku = f"SKU-{category[:3].upper()}-{n:03d}"
                price = round(self.rng.uniform(low, high), 2)
                rows.append(
                    [
                        sku,
                        f"{self.rng.choice(BRANDS)} {category} {n}",
                        category,
                        subcategories[n % 3],
                        self.rng.choice(BRANDS),
                        f"{price:.2f}",
                        "EUR",
                    ]
                )
        return rows

    def _new_device(self) -> tuple[str, str]:
        platform = self.rng.choices(("web", "ios", "android"), (0.5, 0.3, 0.2))[0]
        return f"A-{self.rng.getrandbits(48):012x}", platform

    def _make_customer(self, index: int) -> Customer:
        rng, spec = self.rng, self.spec
        kind = rng.choices(list(TYPE_WEIGHTS), list(TYPE_WEIGHTS.values()))[0]
        behaviour = BEHAVIOURS[kind]
        before = rng.random() < 0.85
        if before:
            signup_day = spec.start_date - timedelta(days=rng.randint(1, 900))
        else:
            signup_day = spec.start_date + timedelta(days=rng.randint(0, spec.days - 1))
        signup = datetime.combine(signup_day, datetime.min.time()) + timedelta(
            seconds=rng.randint(8 * 3600, 22 * 3600)
        )
        stop_day = None
        if kind == "lapsing":
            # A steady hazard, as in a real shop: the chance of stopping in the next month is
            # the same on every day. (A stop day drawn uniformly from a range would make the
            # hazard of those still buying rise towards the range's end, which no model trained
            # on earlier months can foresee.)
            stop_day = int(rng.expovariate(1.0 / (LAPSE_MEAN_SHARE * spec.days)))
        return Customer(
            customer_id=f"C{index + 1:07d}",
            kind=kind,
            devices=[self._new_device() for _ in range(rng.choice((1, 1, 2)))],
            card=f"L{index + 1:08d}" if rng.random() < behaviour.card_rate else None,
            home_store=rng.randrange(len(STORES)),
            categories=rng.sample(list(CATEGORIES), k=rng.choice((1, 2, 3))),
            signup=signup,
            email_opt_in=rng.random() < 0.6,
            push_opt_in=rng.random() < 0.4,
            first_name=rng.choice(FIRST_NAMES),
            last_name=rng.choice(LAST_NAMES),
            birth_year=rng.randint(1950, 2006),
            postal_code=f"{rng.randint(1000, 99999):05d}",
            stop_day=stop_day,
        )

    def _crm_row(self, c: Customer, updated_at: datetime) -> list[str]:
        email = f"{c.first_name}.{c.last_name}{c.customer_id[-4:]}@example.com".lower()
        if self.rng.random() < 0.1:
            email = email.upper()  # the hash must normalise case
        return [
            c.customer_id,
            c.card or "",
            email,
            f"+3519{self.rng.randint(10**7, 10**8 - 1)}",
            c.first_name,
            c.last_name,
            str(c.birth_year),
            c.postal_code,
            c.signup.isoformat(sep=" "),
            str(c.email_opt_in).lower(),
            str(c.push_opt_in).lower(),
            updated_at.isoformat(sep=" "),
        ]

    def _write_reference_and_crm(self) -> None:
        spec, rng = self.spec, self.rng
        start = spec.start_date
        self.landing.products[start] = [list(p) for p in self.products]
        if spec.in_store:
            opens = spec.new_store_opens
            self.landing.stores[start] = [list(s) for s in (STORES[:-1] if opens else STORES)]
            if opens:  # a full snapshot again on the day the new store opens
                self.landing.stores[opens] = [list(s) for s in STORES[:-1]]
                self.landing.stores[opens].append([*STORES[-1][:-1], str(opens)])
        # A catalogue change half-way: a full snapshot again, with one price changed.
        middle = start + timedelta(days=spec.days // 2)
        snapshot = [list(p) for p in self.products]
        snapshot[0][5] = f"{float(snapshot[0][5]) * 0.9:.2f}"
        self.landing.products[middle] = snapshot
        for c in self.customers:
            first_day = max(c.signup.date(), start)
            self.landing.crm[first_day].append(self._crm_row(c, c.signup))
            if rng.random() < 0.12:  # a later change of consent: the latest record wins
                day = first_day + timedelta(days=rng.randint(1, spec.days))
                if day <= spec.end_date:
                    c.email_opt_in = not c.email_opt_in
                    c.email_opt_in_changed_on = day
                    updated = datetime.combine(day, datetime.min.time()) + timedelta(hours=12)
                    self.landing.crm[day].append(self._crm_row(c, updated))

    # ---------------------------------------------------------------- behaviour
    def _activity(self, c: Customer, day_index: int) -> float:
        """Multiplier on a customer's rates: lapsing customers decay, then stop."""
        if c.stop_day is None:
            return 1.0
        if day_index >= c.stop_day:
            return 0.0
        remaining = c.stop_day - day_index
        return min(1.0, 0.25 + remaining / 40)

    def _pick_sku(self, c: Customer) -> tuple[str, float, str]:
        category = (
            self.rng.choice(c.categories)
            if self.rng.random() < 0.8
            else self.rng.choice(list(CATEGORIES))
        )
        sku, price = self.rng.choice(self.skus_by_category[category])
        return sku, price, category

    def _event(self, **fields: object) -> dict[str, object]:
        self._serial += 1
        event = {
            "event_id": f"E{self.spec.seed:02d}{self._serial:010d}",
            "utm_source": None,
            "utm_medium": None,
            "utm_campaign": None,
            "customer_id": None,
            "sku": None,
            "search_query": None,
            "order_id": None,
            "items": None,
            "currency": None,
        }
        event.update(fields)
        return event

    def _session(
        self,
        c: Customer | None,
        day: date,
        behaviour: Behaviour,
        device: tuple[str, str] | None = None,
    ) -> list[dict]:
        rng = self.rng
        if device is None:
            if c is None:
                raise ValueError("a visitor session needs its device")
            device = rng.choice(self.shared_devices if rng.random() < 0.03 else c.devices)
        anonymous_id, platform = device
        start = datetime.combine(day, datetime.min.time(), SITE_ZONE) + timedelta(
            seconds=rng.randint(7 * 3600, 23 * 3600)
        )
        session_id = f"S-{rng.getrandbits(40):010x}"
        utm = {}
        if rng.random() < 0.2:
            utm = {
                "utm_source": rng.choice(("newsletter", "google", "instagram")),
                "utm_medium": rng.choice(("email", "cpc", "social")),
                "utm_campaign": f"cmp-{day:%Y%m}",
            }
        login_at = 0 if rng.random() < 0.7 else rng.randint(1, 3)  # logged in from the start?
        steps: list[dict] = [{"event_type": "page_view", "page_url": "/"}]
        customer_like = c or Customer(
            "",
            "visitor",
            [],
            None,
            0,
            [rng.choice(list(CATEGORIES))],
            start,
            False,
            False,
            "",
            "",
            0,
            "",
        )
        viewed: list[tuple[str, float, str]] = []
        for _ in range(rng.randint(0, behaviour.search_weight)):
            category = rng.choice(customer_like.categories)
            steps.append(
                {"event_type": "search", "search_query": rng.choice(SEARCH_TERMS[category])}
            )
        for _ in range(rng.randint(1, 4)):
            item = self._pick_sku(customer_like)
            viewed.append(item)
            steps.append(
                {"event_type": "product_view", "sku": item[0], "page_url": f"/p/{item[0].lower()}"}
            )
        buys = c is not None and rng.random() < behaviour.purchase_rate
        if buys or rng.random() < 0.15:
            for item in viewed[: rng.randint(1, len(viewed))]:
                steps.append({"event_type": "add_to_cart", "sku": item[0]})
            if rng.random() < 0.1:
                steps.append({"event_type": "remove_from_cart", "sku": viewed[0][0]})
            steps.append({"event_type": "checkout_start"})
        if buys:
            items = []
            for sku, price, _ in viewed[: rng.randint(1, min(3, len(viewed)))]:
                if rng.random() < behaviour.discount_rate:
                    price = round(price * rng.uniform(0.6, 0.85), 2)
                quantity = rng.choice((1, 1, 1, 2))
                items.append(
                    {
                        "sku": sku,
                        "quantity": quantity,
                        "unit_price": f"{price:.2f}" if rng.random() < 0.5 else price,
                    }
                )
                c.bought.append(sku)
            self._identify(c, day)
            steps.append(
                {
                    "event_type": "purchase",
                    "order_id": f"O-{rng.getrandbits(48):012x}",
                    "items": items,
                    "currency": "EUR",
                }
            )
        events = []
        moment = start
        for position, step in enumerate(steps):
            moment += timedelta(seconds=rng.randint(5, 180), milliseconds=rng.randint(0, 999))
            fields = {
                "event_time": moment.isoformat(timespec="milliseconds"),
                "platform": platform,
                "session_id": session_id,
                "anonymous_id": anonymous_id,
                "page_url": None,
                **utm,
                **step,
            }
            if c is not None and (position >= login_at or step["event_type"] == "purchase"):
                fields["customer_id"] = c.customer_id
            if rng.random() < 0.01:
                fields["experiment"] = "new-checkout"  # an unknown extra field
            events.append(self._event(**fields))
        return events

    def _receipt(
        self, c: Customer | None, day: date, store_index: int, behaviour: Behaviour
    ) -> list[list[str]]:
        rng = self.rng
        store = STORES[store_index]
        local = datetime.combine(day, datetime.min.time()) + timedelta(
            seconds=rng.randint(9 * 3600, 20 * 3600)
        )
        transaction_id = f"T{store[0][1:]}-{rng.getrandbits(40):010x}"
        register = f"R{rng.randint(1, 4)}"
        payment = rng.choice(("card", "card", "cash", "mobile"))
        scanned = c is not None and c.card is not None and rng.random() < 0.9
        card = c.card if scanned else ""
        if scanned:
            self._identify(c, day)
        shopper = c or Customer(
            "",
            "walk_in",
            [],
            None,
            0,
            [rng.choice(list(CATEGORIES))],
            local,
            False,
            False,
            "",
            "",
            0,
            "",
        )
        lines = []
        for line_number in range(1, rng.randint(1, 4) + 1):
            sku, price, _ = self._pick_sku(shopper)
            quantity = rng.choice((1, 1, 1, 2, 3))
            discount = 0.0
            if rng.random() < behaviour.discount_rate:
                discount = round(price * quantity * rng.uniform(0.1, 0.35), 2)
            lines.append(
                [
                    transaction_id,
                    str(line_number),
                    store[0],
                    register,
                    local.isoformat(sep=" "),
                    sku,
                    str(quantity),
                    f"{price:.2f}",
                    f"{discount:.2f}",
                    payment,
                    card,
                    "EUR",
                ]
            )
            if c is not None:
                c.bought.append(sku)
        if c is not None and c.bought and rng.random() < 0.05:  # a return of an earlier buy
            sku = rng.choice(c.bought)
            price = next(p for s, _, _, _, _, p, _ in self.products if s == sku)
            lines.append(
                [
                    transaction_id,
                    str(len(lines) + 1),
                    store[0],
                    register,
                    local.isoformat(sep=" "),
                    sku,
                    "-1",
                    price,
                    "0.00",
                    payment,
                    card,
                    "EUR",
                ]
            )
        return lines

    def _identify(self, c: Customer, day: date) -> None:
        if self._recording:
            self.identified[c.customer_id].append(day)

    @staticmethod
    def behaviour(c: Customer) -> Behaviour:
        return BEHAVIOURS[c.kind]

    def store_for(self, c: Customer, day: date) -> int | None:
        """The store a customer shops in that day: mostly their own, another when it is shut
        (None: every store is)."""
        store = c.home_store if self.rng.random() < 0.85 else self.rng.randrange(len(STORES))
        if not self.spec.store_open(STORES[store][0], day):
            store = self._open_store(day)
        return store

    # ---------------------------------------------------------------- delivery quirks
    def _folder_for(self, day: date) -> date:
        """Late delivery: a record of day D can land in the folder of D+1 or D+2."""
        if self.rng.random() < self.spec.late_rate:
            return day + timedelta(days=self.rng.choice((1, 2)))
        return day

    def _maybe_duplicate(self, day: date) -> date | None:
        if self.rng.random() < self.spec.duplicate_rate:
            return day + timedelta(days=self.rng.choice((0, 0, 1)))
        return None

    def _simulate(self) -> None:
        spec, rng = self.spec, self.rng
        for day_index in range(spec.days):
            day = spec.start_date + timedelta(days=day_index)
            for c in self.customers:
                if c.signup.date() > day:
                    continue
                behaviour = BEHAVIOURS[c.kind]
                activity = self._activity(c, day_index)
                if rng.random() < behaviour.session_rate * activity and spec.online:
                    self._deliver_events(self._session(c, day, behaviour), day)
                if rng.random() < behaviour.store_rate * activity and spec.in_store:
                    store = self.store_for(c, day)
                    if store is not None:
                        self._deliver_receipt(self._receipt(c, day, store, behaviour), day, store)
            for device in self.visitors if spec.online else ():
                if rng.random() < 0.03:
                    events = self._session(None, day, BEHAVIOURS["online_browser"], device)
                    self._deliver_events(events, day)
            for store in range(len(STORES)) if spec.in_store else ():
                if not spec.store_open(STORES[store][0], day):
                    continue
                if spec.late_store and day == spec.end_date and STORES[store][0] == LATE_STORE:
                    # A receipt for the late store's waiting folder to carry.
                    lines = self._receipt(None, day, store, BEHAVIOURS["store_regular"])
                    self.landing.pos[(day, LATE_STORE)].extend(lines)
                while rng.random() < spec.walk_in_rate:
                    self._deliver_receipt(
                        self._receipt(None, day, store, BEHAVIOURS["store_regular"]), day, store
                    )

    def _open_store(self, day: date) -> int | None:
        """Another store for a shopper whose store is closed that day (None: all are)."""
        open_stores = [i for i, s in enumerate(STORES) if self.spec.store_open(s[0], day)]
        return self.rng.choice(open_stores) if open_stores else None

    def _deliver_events(self, events: list[dict], day: date) -> None:
        for event in events:
            line = json.dumps(event, separators=(",", ":"))
            self.landing.events[self._folder_for(day)].append(line)
            duplicate = self._maybe_duplicate(day)
            if duplicate is not None:
                self.landing.events[duplicate].append(line)

    def _deliver_receipt(self, lines: list[list[str]], day: date, store: int) -> None:
        store_id = STORES[store][0]
        folder = self._folder_for(day)
        while not self.spec.store_open(store_id, folder):  # a closed store exports no receipt
            folder += timedelta(days=1)
        for line in lines:
            self.landing.pos[(folder, store_id)].append(line)
            duplicate = self._maybe_duplicate(day)
            if duplicate is not None and self.spec.store_open(store_id, duplicate):
                self.landing.pos[(duplicate, store_id)].append(list(line))

    # ---------------------------------------------------------------- bad records
    def _bad_event(self, kind: str, day: date) -> str:
        base = self._event(
            event_time=datetime.combine(day, datetime.min.time(), SITE_ZONE)
            .replace(hour=12)
            .isoformat(timespec="milliseconds"),
            event_type="product_view",
            platform="web",
            session_id="S-bad",
            anonymous_id="A-bad",
            page_url="/p/x",
            sku=self.products[0][0],
        )
        purchase = dict(
            base,
            event_type="purchase",
            order_id=f"O-bad-{self._serial}",
            currency="EUR",
            sku=None,
            items=[{"sku": self.products[1][0], "quantity": 1, "unit_price": "9.99"}],
        )
        if kind == "truncated_json":
            return json.dumps(base)[:40]
        if kind == "not_json":
            return "<html>502 Bad Gateway</html>"
        if kind == "wrong_type":
            purchase["items"][0]["quantity"] = "two"
            return json.dumps(purchase)
        if kind == "missing_required_field":
            base.pop("event_id")
            return json.dumps(base)
        if kind == "unknown_event_type":
            return json.dumps(dict(base, event_type="hover"))
        if kind == "negative_price":
            purchase["items"][0]["unit_price"] = "-9.99"
            return json.dumps(purchase)
        if kind == "timestamp_in_future":
            return json.dumps(dict(base, event_time="2099-01-01T10:00:00.000+01:00"))
        if kind == "timestamp_before_2000":
            return json.dumps(dict(base, event_time="1999-12-31T10:00:00.000+01:00"))
        if kind == "unknown_sku":
            return json.dumps(dict(base, sku="SKU-NOPE-999"))
        raise ValueError(f"unknown bad event kind {kind!r}")

    def _bad_pos(self, kind: str, day: date) -> tuple[str, list[str]]:
        store = STORES[0][0]
        row = [
            f"TBAD-{self.rng.getrandbits(32):08x}",
            "1",
            store,
            "R1",
            f"{day} 12:00:00",
            self.products[0][0],
            "1",
            "10.00",
            "0.00",
            "card",
            "",
            "EUR",
        ]
        if kind == "wrong_column_count":
            return store, row[:7]
        if kind == "wrong_type":
            row[6] = "abc"
        elif kind == "missing_required_field":
            row[0] = ""
        elif kind == "negative_price":
            row[7] = "-10.00"
        elif kind == "unknown_store":
            row[2] = "S999"
        elif kind == "unknown_sku":
            row[5] = "SKU-NOPE-999"
        elif kind == "timestamp_in_future":
            row[4] = "2099-06-01 12:00:00"
        elif kind == "timestamp_before_2000":
            row[4] = "1998-06-01 12:00:00"
        else:
            raise ValueError(f"unknown bad POS kind {kind!r}")
        return store, row

    def _bad_crm(self, kind: str, day: date) -> list[str]:
        stamp = f"{day} 09:00:00"
        row = [
            f"CBAD{self.rng.getrandbits(24):06x}",
            "",
            "bad@example.com",
            "",
            "X",
            "Y",
            "1980",
            "1000",
            stamp,
            "true",
            "false",
            stamp,
        ]
        if kind == "wrong_column_count":
            return row[:5]
        if kind == "wrong_type":
            row[6] = "19x0"
        elif kind == "missing_required_field":
            row[0] = ""
        else:
            raise ValueError(f"unknown bad CRM kind {kind!r}")
        return row

    def _inject_bad_records(self) -> None:
        spec, rng = self.spec, self.rng
        days = [spec.start_date + timedelta(days=i) for i in range(spec.days)]

        def how_many(records: int) -> int:
            return max(1, round(records * spec.bad_rate)) if spec.bad_rate > 0 else 0

        n_events = sum(len(v) for v in self.landing.events.values())
        for kind in EVENT_BAD_KINDS if spec.online else ():
            for _ in range(how_many(n_events)):
                day = rng.choice(days)
                self.landing.events[day].append(self._bad_event(kind, day))
        n_pos = sum(len(v) for v in self.landing.pos.values())
        for kind in POS_BAD_KINDS if spec.in_store else ():
            for _ in range(how_many(n_pos)):
                day = rng.choice(days)
                store, row = self._bad_pos(kind, day)
                self.landing.pos[(day, store)].append(row)
        for kind in CRM_BAD_KINDS:
            day = rng.choice(days)
            self.landing.crm[day].append(self._bad_crm(kind, day))
        if spec.bad_rate > 0:  # a catalogue row with a negative price (and its own sku)
            bad = ["SKU-BAD-001", "Broken", "home", "decor", "Acme", "-5.00", "EUR"]
            self.landing.products[spec.start_date].append(bad)

    # ---------------------------------------------------------------- files
    def generate(self) -> Landing:
        self._write_reference_and_crm()
        self._simulate()
        self._inject_bad_records()
        if self.spec.has_campaigns:
            self._recording = False  # what campaigns cause is not what customers do anyway
            self.campaign_truth = CampaignPlanter(self).plant()
        return self.landing


def _csv_text(header: tuple[str, ...], rows: list[list[str]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n", quoting=csv.QUOTE_MINIMAL)
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue()


def _write(path: Path, text: str, compress: bool = False) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if compress:
        with gzip.GzipFile(path.with_name(path.name + ".gz"), "wb", mtime=0) as handle:
            handle.write(text.encode("utf-8"))
    else:
        path.write_text(text, encoding="utf-8")


def write_landing(landing: Landing, root: Path, spec: SampleSpec) -> dict[str, int]:
    """Write every folder; days after the end date stay without ``_SUCCESS`` (not ready).

    The clickstream has a complete folder every day. Every store opened by a day exports its
    own folder with its own marker, empty on a day without a receipt (closed on a holiday);
    ``late_store``'s folder of the end date waits for its marker.
    """
    counts: dict[str, int] = defaultdict(int)
    folders: set[Path] = set()
    days = [spec.start_date + timedelta(days=n) for n in range(spec.days)]

    def folder(source: str, day: date) -> Path:
        path = root / source / f"dt={day}"
        if day <= spec.end_date:
            folders.add(path)
        return path

    for day in days if spec.online else ():
        folder("ecommerce/events", day).mkdir(parents=True, exist_ok=True)
    for day, lines in sorted(landing.events.items()):
        compress = spec.gzip_events and day.toordinal() % 2 == 0
        _write(
            folder("ecommerce/events", day) / "part-00000.jsonl", "\n".join(lines) + "\n", compress
        )
        counts["ecommerce_events"] += len(lines)
    store_folders: set[Path] = set()
    for day in days if spec.in_store else ():
        for store in STORES:
            if spec.store_exists(store[0], day):
                store_folders.add(root / "instore/pos" / f"dt={day}" / f"store_id={store[0]}")
    for (day, store_id), rows in sorted(landing.pos.items()):
        path = root / "instore/pos" / f"dt={day}" / f"store_id={store_id}"
        _write(path / "part-00000.csv", _csv_text(POS_COLUMNS, rows))
        store_folders.add(path)
        counts["pos_lines"] += len(rows)
    for day, lines in sorted(landing.messages.items()):
        compress = day.toordinal() % 2 == 1
        _write(
            folder("marketing/messages", day) / "part-00000.jsonl",
            "\n".join(lines) + "\n",
            compress,
        )
        counts["marketing_messages"] += len(lines)
    for source, header, by_day in (
        ("crm/customers", CRM_COLUMNS, landing.crm),
        ("reference/products", PRODUCT_COLUMNS, landing.products),
        ("reference/stores", STORE_COLUMNS, landing.stores),
        ("marketing/campaigns", CAMPAIGN_COLUMNS, landing.campaigns),
    ):
        for day, rows in sorted(by_day.items()):
            _write(folder(source, day) / "part-00000.csv", _csv_text(header, rows))
            counts[source.split("/")[1]] += len(rows)
    for path in folders:
        (path / "_SUCCESS").touch()
    waiting = root / "instore/pos" / f"dt={spec.end_date}" / f"store_id={LATE_STORE}"
    for path in store_folders:
        path.mkdir(parents=True, exist_ok=True)
        day = date.fromisoformat(path.parent.name.removeprefix("dt="))
        if day <= spec.end_date and not (spec.late_store and path == waiting):
            (path / "_SUCCESS").touch()
    return dict(counts)


def generate_sample(root: Path, spec: SampleSpec, overwrite: bool = False) -> dict[str, int]:
    """Generate the sample into ``root``; refuses to mix with existing files unless told."""
    if root.exists() and any(root.iterdir()):
        if not overwrite:
            raise FileExistsError(f"{root} is not empty: pass overwrite=True (--force) to replace")
        shutil.rmtree(root)
    landing = SampleGenerator(spec).generate()
    return write_landing(landing, root, spec)


def latest_ready_date(root: Path) -> date:
    """The newest business date with a complete delivery folder of any source."""
    from omni.landing import delivered_dates

    days = [day for dates in delivered_dates(root).values() for day in dates]
    if not days:
        raise FileNotFoundError(f"no complete delivery folder (dt=.../_SUCCESS) under {root}")
    return max(days)


def nights_to_run(root: Path) -> list[date]:
    """The nights ``make run`` runs: the first launch night of a campaign in the landing zone
    (its audience is assigned then, so the last night has a readout to give), then the latest
    ready date; the latest alone when no campaign starts before it."""
    latest = latest_ready_date(root)
    starts = sorted(
        date.fromisoformat(row["start_date"])
        for path in (root / "marketing" / "campaigns").glob("dt=*/*.csv")
        for row in csv.DictReader(path.open(encoding="utf-8"))
        if _is_date(row.get("start_date"))
    )
    first = next((day for day in starts if day < latest), None)
    return [first, latest] if first else [latest]


def _is_date(text: str | None) -> bool:
    try:
        date.fromisoformat(text or "")
    except ValueError:
        return False
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Generate the raw landing sample.")
    parser.add_argument("--customers", type=int, default=SampleSpec.customers)
    parser.add_argument("--days", type=int, default=SampleSpec.days)
    parser.add_argument("--end-date", type=parse_date, default=SampleSpec.end_date)
    parser.add_argument("--seed", type=int, default=SampleSpec.seed)
    parser.add_argument("--bad-rate", type=float, default=SampleSpec.bad_rate)
    parser.add_argument(
        "--channels", choices=CHANNELS, default="both", help="a retailer with one channel only"
    )
    parser.add_argument(
        "--holidays", action="store_true", help=f"store {HOLIDAY_STORE} closes on public holidays"
    )
    parser.add_argument(
        "--new-store", action="store_true", help=f"store {STORES[-1][0]} opens half-way"
    )
    parser.add_argument(
        "--late-store",
        action="store_true",
        help=f"store {LATE_STORE}'s folder of the last day still waits for its marker",
    )
    parser.add_argument(
        "--no-campaigns", action="store_true", help="no marketing campaigns or provider events"
    )
    parser.add_argument("--landing-dir", type=Path, default=None)
    parser.add_argument("--force", action="store_true", help="replace an existing landing zone")
    parser.add_argument("--if-empty", action="store_true", help="do nothing when data exists")
    parser.add_argument("--print-latest-date", action="store_true")
    parser.add_argument(
        "--print-nights",
        action="store_true",
        help="the nights make run runs: a campaign's launch, then the latest date",
    )
    args = parser.parse_args(argv)
    root = args.landing_dir or load_settings().landing_dir
    if args.print_latest_date:
        print(latest_ready_date(root))
        return 0
    if args.print_nights:
        print(" ".join(str(day) for day in nights_to_run(root)))
        return 0
    if args.if_empty and root.exists() and any(root.iterdir()):
        print(f"{root} already holds data: keeping it")
        return 0
    spec = SampleSpec(
        customers=args.customers,
        days=args.days,
        end_date=args.end_date,
        seed=args.seed,
        bad_rate=args.bad_rate,
        channels=args.channels,
        holidays=args.holidays,
        new_store=args.new_store,
        late_store=args.late_store,
        campaigns=not args.no_campaigns,
    )
    counts = generate_sample(root, spec, overwrite=args.force)
    print(json.dumps({"landing_dir": str(root), **counts}, sort_keys=True))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

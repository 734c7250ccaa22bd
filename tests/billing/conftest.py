import datetime as dt
from decimal import Decimal

import pytest

from tests import factories as f

GIB = 2**30


@pytest.fixture
def price_book(db):
    """The seeded list prices (version 1)."""
    return f.default_price_book()


@pytest.fixture
def july_price_change(price_book):
    """Version 2 from 1 July 2026: dearer, more included, an overage price with half cents."""
    book = f.PriceBookFactory(version=2, effective_from=dt.date(2026, 7, 1), note="July 2026")
    f.PriceFactory(
        price_book=book,
        model="V1",
        purchase=Decimal("1499.00"),
        rental_monthly=Decimal("89.00"),
        monitoring_monthly=Decimal("55.00"),
        included_gb=40,
        overage_per_gb=Decimal("1.245"),
    )
    f.PriceFactory(
        price_book=book,
        model="V2",
        purchase=Decimal("2799.00"),
        rental_monthly=Decimal("159.00"),
        monitoring_monthly=Decimal("109.00"),
        included_gb=80,
        overage_per_gb=Decimal("1.245"),
    )
    return book


@pytest.fixture
def msp_admin(make_user):
    from portal.models import Role

    return make_user(Role.MSP_ADMIN)


def add_usage(
    appliance, first: dt.date, last: dt.date, offsite_bytes: int, source: str = "local"
) -> None:
    """One sample a day from ``first`` to ``last`` inclusive (measured on the vault, or
    local bytes standing in)."""
    from billing.models import UsageSample

    day = first
    samples = []
    while day <= last:
        samples.append(
            UsageSample(appliance=appliance, day=day, offsite_bytes=offsite_bytes, source=source)
        )
        day += dt.timedelta(days=1)
    UsageSample.objects.bulk_create(samples)

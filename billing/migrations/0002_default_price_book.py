"""Seed price book version 1: the product's list prices (see the README's billing section)."""

import datetime as dt
from decimal import Decimal

from django.db import migrations

DEFAULT_PRICES = {
    "V1": {
        "purchase": Decimal("1399.00"),
        "rental_monthly": Decimal("79.00"),
        "monitoring_monthly": Decimal("49.00"),
        "included_gb": 30,
        "overage_per_gb": Decimal("0.99"),
    },
    "V2": {
        "purchase": Decimal("2699.00"),
        "rental_monthly": Decimal("149.00"),
        "monitoring_monthly": Decimal("99.00"),
        "included_gb": 60,
        "overage_per_gb": Decimal("0.99"),
    },
}


def seed(apps, schema_editor):
    PriceBook = apps.get_model("billing", "PriceBook")
    Price = apps.get_model("billing", "Price")
    if PriceBook.objects.filter(version=1).exists():
        return
    book = PriceBook.objects.create(
        version=1, effective_from=dt.date(2000, 1, 1), note="List prices at launch"
    )
    for model, fields in DEFAULT_PRICES.items():
        Price.objects.create(price_book=book, model=model, **fields)


def unseed(apps, schema_editor):
    apps.get_model("billing", "PriceBook").objects.filter(version=1).delete()


class Migration(migrations.Migration):
    dependencies = [("billing", "0001_initial")]

    operations = [migrations.RunPython(seed, unseed)]

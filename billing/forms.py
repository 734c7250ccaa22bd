from __future__ import annotations

import datetime as dt

from django import forms

from appliances.models import Appliance, ApplianceModel
from billing.models import SubscriptionKind
from billing.periods import parse_month


class MonthField(forms.CharField):
    """A month as YYYY-MM (the browser's <input type=month>), cleaned to its first day."""

    widget = forms.TextInput(attrs={"type": "month"})

    def clean(self, value):
        value = super().clean(value)
        if not value:
            return None
        try:
            return parse_month(value)
        except ValueError as exc:
            raise forms.ValidationError("Enter a month as YYYY-MM.") from exc


class DateInput(forms.DateInput):
    input_type = "date"


class SubscriptionForm(forms.Form):
    appliance = forms.ModelChoiceField(queryset=Appliance.objects.none())
    kind = forms.ChoiceField(choices=SubscriptionKind.choices)
    starts_on = forms.DateField(widget=DateInput, initial=dt.date.today)
    ends_on = forms.DateField(widget=DateInput, required=False)

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["appliance"].queryset = Appliance.objects.for_user(user).select_related(
            "customer"
        )
        self.fields["appliance"].label_from_instance = lambda a: (
            f"{a.customer.name} · {a.name} ({a.serial}, {a.model})"
        )

    def clean(self):
        data = super().clean()
        if data.get("ends_on") and data.get("starts_on") and data["ends_on"] < data["starts_on"]:
            raise forms.ValidationError("The end date is before the start date.")
        return data


class EndSubscriptionForm(forms.Form):
    ends_on = forms.DateField(widget=DateInput, label="Last billed day")


class RunMonthForm(forms.Form):
    month = MonthField()


PRICE_FIELDS = [
    ("purchase", "purchase ($, once)", forms.DecimalField, {"max_digits": 10, "decimal_places": 2}),
    (
        "rental_monthly",
        "rental ($/month)",
        forms.DecimalField,
        {"max_digits": 10, "decimal_places": 2},
    ),
    (
        "monitoring_monthly",
        "monitoring ($/month)",
        forms.DecimalField,
        {"max_digits": 10, "decimal_places": 2},
    ),
    ("included_gb", "off-site included (GB)", forms.IntegerField, {}),
    (
        "overage_per_gb",
        "over that ($/GB/month)",
        forms.DecimalField,
        {"max_digits": 10, "decimal_places": 4},
    ),
]


class PriceBookForm(forms.Form):
    """A new price book version: a start month and every model's prices."""

    effective_from = MonthField(label="In force from (month)")
    note = forms.CharField(max_length=200, required=False)

    def __init__(self, *args, current: dict, **kwargs):
        super().__init__(*args, **kwargs)
        for model in ApplianceModel.values:
            for name, label, field_class, options in PRICE_FIELDS:
                price = current.get(model)
                self.fields[f"{model}_{name}"] = field_class(
                    label=f"{model} {label}",
                    min_value=0,
                    initial=getattr(price, name, None),
                    **options,
                )

    def prices(self) -> dict[str, dict]:
        return {
            model: {name: self.cleaned_data[f"{model}_{name}"] for name, *_ in PRICE_FIELDS}
            for model in ApplianceModel.values
        }

    def clean_effective_from(self):
        value = self.cleaned_data["effective_from"]
        if value is None:
            raise forms.ValidationError("Choose the month the prices start.")
        return value

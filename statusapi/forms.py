from __future__ import annotations

import datetime as dt

from django import forms

from portal.models import Customer
from statusapi.models import Access

LIFETIMES = [(30, "30 days"), (90, "90 days"), (365, "1 year"), (730, "2 years")]


class ApiKeyForm(forms.Form):
    """A new Status API key: who it is for, what it may see and do, and for how long."""

    name = forms.CharField(max_length=100, help_text="e.g. ConnectWise PSA, NinjaOne RMM")
    customer = forms.ModelChoiceField(
        queryset=Customer.objects.none(),
        required=False,
        empty_label="All customers (the whole MSP)",
        help_text="A customer key reads that customer's servers and alerts only.",
    )
    access = forms.ChoiceField(choices=Access.choices, initial=Access.READ_ONLY)
    lifetime_days = forms.TypedChoiceField(
        choices=LIFETIMES, coerce=int, initial=90, label="Expires after"
    )

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["customer"].queryset = Customer.objects.for_user(user).order_by("name")

    def expires_at(self, now: dt.datetime) -> dt.datetime:
        return now + dt.timedelta(days=self.cleaned_data["lifetime_days"])

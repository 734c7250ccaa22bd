from __future__ import annotations

from django import forms

from portal.models import Customer


class _TargetForm(forms.Form):
    customer = forms.ModelChoiceField(
        queryset=Customer.objects.none(), required=False, empty_label="All customers",
        help_text="Only this customer's notices; leave empty for every customer's.",
    )  # fmt: skip
    primary = forms.BooleanField(required=False, initial=True, label="Primary channel")
    escalation = forms.BooleanField(
        required=False, label="Escalation channel",
        help_text="Critical alerts nobody acknowledged in time, and their reminders.",
    )  # fmt: skip

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["customer"].queryset = Customer.objects.for_user(user).order_by("name")

    def clean(self):
        data = super().clean()
        if not (data.get("primary") or data.get("escalation")):
            raise forms.ValidationError("Choose the primary channel, the escalation one, or both.")
        return data


class RecipientForm(_TargetForm):
    address = forms.EmailField(max_length=254)
    field_order = ["address", "customer", "primary", "escalation"]


class EndpointForm(_TargetForm):
    name = forms.CharField(max_length=100, help_text="e.g. PSA tickets, on-call pager")
    url = forms.URLField(
        max_length=500, assume_scheme="https", help_text="Receives a signed POST per notice."
    )
    field_order = ["name", "url", "customer", "primary", "escalation"]

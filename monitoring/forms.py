from __future__ import annotations

import datetime as dt

from django import forms

LOCAL = "%Y-%m-%dT%H:%M"


class MaintenanceForm(forms.Form):
    """When a maintenance window runs (the portal's time zone, UTC by default) and why."""

    starts_at = forms.DateTimeField(
        input_formats=[LOCAL], widget=forms.DateTimeInput(attrs={"type": "datetime-local"},
                                                          format=LOCAL),
    )  # fmt: skip
    ends_at = forms.DateTimeField(
        input_formats=[LOCAL], widget=forms.DateTimeInput(attrs={"type": "datetime-local"},
                                                          format=LOCAL),
    )  # fmt: skip
    reason = forms.CharField(max_length=200, help_text="e.g. firmware upgrade, office move")

    def __init__(self, *args, now: dt.datetime, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["starts_at"].initial = now.replace(second=0, microsecond=0)
        self.fields["ends_at"].initial = self.fields["starts_at"].initial + dt.timedelta(hours=2)

    def clean(self):
        data = super().clean()
        starts, ends = data.get("starts_at"), data.get("ends_at")
        if starts and ends and ends <= starts:
            self.add_error("ends_at", "The window must end after it starts.")
        return data

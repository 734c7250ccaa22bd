from django import forms

from appliances.confinement import validate_volume_source
from appliances.models import Appliance, ProtectedServer, RetentionPolicy, Schedule
from portal.models import Site

WEEKDAYS = [(0, "Mon"), (1, "Tue"), (2, "Wed"), (3, "Thu"), (4, "Fri"), (5, "Sat"), (6, "Sun")]


class ApplianceForm(forms.ModelForm):
    class Meta:
        model = Appliance
        fields = [
            "serial",
            "name",
            "model",
            "site",
            "ssh_host",
            "ssh_port",
            "ssh_user",
            "purchased_on",
        ]
        widgets = {"purchased_on": forms.DateInput(attrs={"type": "date"})}

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["site"].queryset = Site.objects.for_user(user).select_related("customer")


class ServerForm(forms.ModelForm):
    volume_name = forms.RegexField(
        regex=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$",
        initial="C",
        help_text="The volume's name, e.g. C or root",
    )
    volume_source = forms.RegexField(
        regex=r"^/[^\0]*$",
        validators=[validate_volume_source],
        help_text="The block device or image on the appliance, e.g. /dev/sdb "
        "(images only under the appliance's configured source roots)",
    )

    class Meta:
        model = ProtectedServer
        fields = ["name", "hostname", "os", "mac_address", "cpus", "memory_mib"]


class ScheduleForm(forms.ModelForm):
    weekdays = forms.TypedMultipleChoiceField(
        choices=WEEKDAYS, coerce=int, widget=forms.CheckboxSelectMultiple
    )

    class Meta:
        model = Schedule
        fields = ["interval_minutes", "weekdays", "start_hour", "end_hour", "enabled"]

    def clean(self):
        data = super().clean()
        interval, start, end = (
            data.get("interval_minutes"),
            data.get("start_hour"),
            data.get("end_hour"),
        )
        if interval is not None and interval < 15:
            self.add_error("interval_minutes", "Backups run at most every 15 minutes.")
        if start is not None and end is not None:
            if not (0 <= start < end <= 24):
                self.add_error("end_hour", "Hours must satisfy 0 <= start < end <= 24.")
            elif interval and -(-(end - start) * 60 // interval) > 96:
                self.add_error("interval_minutes", "At most 96 backups a day.")
        return data


class RetentionForm(forms.ModelForm):
    class Meta:
        model = RetentionPolicy
        fields = ["intraday", "daily", "weekly", "monthly", "yearly"]


class PinHostKeyForm(forms.Form):
    fingerprint = forms.CharField(max_length=100, widget=forms.HiddenInput)

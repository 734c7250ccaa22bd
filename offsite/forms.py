from __future__ import annotations

from django import forms
from django.core.validators import MaxValueValidator

from offsite import checks
from offsite.models import ApplianceOffsite, OffsiteRetention, Vault


class VaultForm(forms.ModelForm):
    capacity_gb = forms.IntegerField(
        label="Capacity (GB)",
        min_value=0,
        max_value=10**9,
        help_text="1 GB = 2^30 bytes, as billing counts",
    )

    class Meta:
        model = Vault
        fields = ["name", "data_centre", "endpoint", "host_key", "second_vault"]
        widgets = {"host_key": forms.TextInput(attrs={"size": 80})}
        help_texts = {
            "endpoint": "ssh://bdr-vault@vault1.example.net/srv/bdr-vault/vault or "
            "s3://bucket/prefix",
            "host_key": "The vault host's SSH host key, e.g. the contents of "
            "/etc/ssh/ssh_host_ed25519_key.pub (SSH vaults only). Every appliance pins it.",
            "second_vault": "The vault this one replicates to (bdr-agent vault replicate).",
        }

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        others = Vault.objects.all()
        if self.instance.pk:
            others = others.exclude(pk=self.instance.pk)
            self.fields["capacity_gb"].initial = self.instance.capacity_bytes // 2**30
        self.fields["second_vault"].queryset = others

    def clean_endpoint(self):
        return checks.clean_endpoint(self.cleaned_data["endpoint"])

    def clean(self):
        data = super().clean()
        if data.get("endpoint"):
            try:
                data["host_key"] = checks.clean_vault_host_key(
                    data.get("host_key", ""), data["endpoint"]
                )
            except forms.ValidationError as exc:
                self.add_error("host_key", exc)
        return data


class AssignVaultForm(forms.ModelForm):
    class Meta:
        model = ApplianceOffsite
        fields = ["vault"]
        help_texts = {"vault": "Where this appliance sends its recovery points."}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["vault"].queryset = Vault.objects.select_related("second_vault")
        self.fields["vault"].empty_label = "(none: no off-site copy)"


class ThrottleForm(forms.ModelForm):
    class Meta:
        model = ApplianceOffsite
        fields = ["windows"]
        labels = {"windows": "Throttle windows"}
        widgets = {"windows": forms.TextInput(attrs={"size": 60})}
        help_texts = {
            "windows": "e.g. mon-fri 08:00-18:00 512kbit; * * 20mbit (first match wins; "
            "empty: no limit)"
        }

    def clean_windows(self):
        return checks.clean_windows(self.cleaned_data["windows"])


class OffsiteRetentionForm(forms.ModelForm):
    class Meta:
        model = OffsiteRetention
        fields = list(OffsiteRetention.TIERS)
        help_texts = {"yearly": "e.g. 7 for a seven-year archive, whatever the appliance keeps"}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for name in self.Meta.fields:
            self.fields[name].max_value = 1000
            self.fields[name].widget.attrs["max"] = 1000
            self.fields[name].validators.append(MaxValueValidator(1000))

"""Forms of the restore pages (technicians' put-back, export and bare-metal restore)."""

from __future__ import annotations

from django import forms

from appliances.confinement import clean_host_key, validate_appliance_folder, validate_target

FORMAT_CHOICES = [
    ("qcow2", "qcow2 (QEMU/KVM, Proxmox)"),
    ("vmdk", "VMDK (VMware)"),
    ("vhdx", "VHDX (Hyper-V)"),
    ("raw", "raw disk image"),
]


class PutBackForm(forms.Form):
    folder = forms.CharField(
        max_length=500,
        initial="/srv/restores",
        help_text="A folder under one of the appliance's export roots (default /srv/restores); "
        "created if missing.",
    )
    overwrite = forms.BooleanField(required=False, label="Replace files that already exist")

    def clean_folder(self):
        return validate_appliance_folder(self.cleaned_data["folder"].strip())


class ExportForm(forms.Form):
    format = forms.ChoiceField(choices=FORMAT_CHOICES)
    deliver = forms.ChoiceField(
        choices=[("folder", "Into a folder on the appliance"), ("download", "As a download")],
        initial="folder",
        widget=forms.RadioSelect,
    )
    folder = forms.CharField(
        max_length=500,
        initial="/srv/restores",
        required=False,
        help_text="Under one of the appliance's export roots (default /srv/restores).",
    )

    def clean_folder(self):
        folder = self.cleaned_data["folder"].strip()
        return validate_appliance_folder(folder) if folder else folder

    def clean(self):
        data = super().clean()
        if data.get("deliver") == "folder" and not data.get("folder"):
            self.add_error("folder", "Name the folder on the appliance.")
        return data


class BareMetalForm(forms.Form):
    target = forms.CharField(
        validators=[validate_target],
        max_length=200,
        help_text="user@host of the new machine, booted into the restore environment.",
    )
    port = forms.IntegerField(min_value=1, max_value=65535, initial=22)
    host_key = forms.CharField(
        max_length=2000,
        strip=False,
        help_text="The target's SSH host key: one line 'ssh-ed25519 AAAA…', no options.",
    )
    device = forms.CharField(max_length=300, initial="/dev/sda")

    def clean_host_key(self):
        return clean_host_key(self.cleaned_data["host_key"])


class RestoreGrantForm(forms.Form):
    """The servers a customer user may restore from: only that customer's servers are offered,
    so an id of any other server is not a valid choice."""

    servers = forms.ModelMultipleChoiceField(
        queryset=None,
        required=False,
        widget=forms.CheckboxSelectMultiple,
        label="May restore from",
        error_messages={"invalid_choice": "%(value)s is not one of this customer's servers."},
    )

    def __init__(self, *args, servers, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["servers"].queryset = servers
        self.fields["servers"].label_from_instance = lambda s: f"{s.name} ({s.appliance.name})"

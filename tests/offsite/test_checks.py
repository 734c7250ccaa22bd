"""What the portal accepts as a vault endpoint, host key and throttle windows (the agent's
own parsers behind form-sized errors). Tables written out by hand."""

import pytest
from django.core.exceptions import ValidationError

from offsite import checks

HOST_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"


@pytest.mark.parametrize(
    "endpoint",
    [
        "ssh://bdr-vault@vault1.example.net/srv/bdr-vault/vault",
        "ssh://bdr-vault@vault1.example.net:2222/srv/vault",
        "ssh://bdr@[2001:db8::1]:22/vault",
        "s3://bdr-offsite/appliances",
        "s3://bdr-offsite",
    ],
)
def test_vault_endpoints_the_agent_takes_are_accepted(endpoint):
    assert checks.clean_endpoint(f"  {endpoint} ") == endpoint


@pytest.mark.parametrize(
    "endpoint, says",
    [
        ("", "no target given"),
        ("ftp://vault/x", "a directory, ssh:// or s3://"),
        ("ssh://vault1.example.net/srv", "ssh://user@host[:port]/DIR"),
        ("ssh://bdr@vault1:70000/srv", "ssh://user@host[:port]/DIR"),
        ("ssh://bdr@vault1/srv/../etc", "ssh://user@host[:port]/DIR"),
        ("ssh://bdr@-oProxyCommand=x/srv", "ssh://user@host[:port]/DIR"),
        ("s3://Bad_Bucket/x", "s3://bucket/prefix"),
        ("relative/dir", "absolute vault directory"),
    ],
)
def test_bad_endpoints_are_one_clear_line(endpoint, says):
    with pytest.raises(ValidationError) as caught:
        checks.clean_endpoint(endpoint)
    (message,) = caught.value.messages
    assert says in message and "\n" not in message and "Traceback" not in message


def test_a_local_vault_directory_is_for_the_demo_only(settings, tmp_path):
    assert checks.clean_endpoint(str(tmp_path)) == str(tmp_path)
    settings.BDR_ALLOW_LOCAL_TRANSPORT = False
    with pytest.raises(ValidationError, match=r"ssh://user@host\[:port\]/DIR or s3://"):
        checks.clean_endpoint(str(tmp_path))


def test_an_ssh_vault_needs_its_host_key_and_an_s3_one_none():
    with pytest.raises(ValidationError, match="needs its host key"):
        checks.clean_vault_host_key("", "ssh://bdr@vault1/srv")
    assert checks.clean_vault_host_key("", "s3://bucket/p") == ""
    assert checks.clean_vault_host_key(f"{HOST_KEY} root@vault1", "ssh://b@v/s") == HOST_KEY
    with pytest.raises(ValidationError, match="Paste one host key"):
        checks.clean_vault_host_key(f'command="sh" {HOST_KEY}', "ssh://b@v/s")


@pytest.mark.parametrize(
    "text, saved",
    [
        ("", ""),
        ("mon-fri 08:00-18:00 512kbit; * * 20mbit", "mon-fri 08:00-18:00 512kbit; * * 20mbit"),
        ("mon-fri  08:00-18:00 512kbit ;;* * 20mbit; ", "mon-fri 08:00-18:00 512kbit; * * 20mbit"),
        ("sun 22:00-06:00 4M", "sun 22:00-06:00 4M"),
        ("sat,sun * off", "sat,sun * off"),
        ("* * 0", "* * 0"),
    ],
)
def test_throttle_windows_are_saved_normalised(text, saved):
    assert checks.clean_windows(text) == saved


@pytest.mark.parametrize(
    "text, says",
    [
        ("mon-fri 08:00-18:00", "DAYS HOURS RATE"),
        ("monday * 4M", "bad days"),
        ("mon 8-18 4M", "bad hours"),
        ("mon 08:00-25:00 4M", "bad hours"),
        ("mon 08:00-08:00 4M", "bad hours"),
        ("* * fast", "bad rate"),
        ("* * 5 kbps", "DAYS HOURS RATE"),
    ],
)
def test_bad_throttle_windows_name_the_bad_part(text, says):
    with pytest.raises(ValidationError) as caught:
        checks.clean_windows(text)
    (message,) = caught.value.messages
    assert says in message and "\n" not in message


@pytest.mark.parametrize(
    "bytes_per_second, shown",
    [
        (None, "no limit"),
        (0, "0 (paused)"),
        (64_000, "512 kbit/s (62.5 KiB/s)"),
        (4 << 20, "33.6 Mbit/s (4 MiB/s)"),
        (2_500_000, "20 Mbit/s (2.4 MiB/s)"),
        (100, "800 bit/s (100 B/s)"),
    ],
)
def test_rates_are_shown_in_bits_and_in_bytes(bytes_per_second, shown):
    from offsite.templatetags.offsite_format import rate

    assert rate(bytes_per_second) == shown

"""RELIABILITY 16b: a hostile vault cannot steer the sender.

The vault host below is real sshd whose forced command is a vault that lies (see
tests/support/lying_vault.py) and keeps every byte it is sent. Whatever it answers, what
left the appliance is only sealed files of the store, byte for byte, of the points the
appliance chose: never the key, never plaintext, never a blob it was not asked to hold.
"""

from __future__ import annotations

import pytest

from agent.offsite.replicate import vault_files
from tests.agent.vault_world import (
    CANARY,
    canary_volume,
    cli_json,
    lying_command,
    points_over_days,
    store_blobs,
    vault_host,
)


@pytest.fixture
def source(tmp_path, store):
    volume = canary_volume(tmp_path / "disk0.img", 1 << 20, seed=5)
    return store, points_over_days(store, volume, 2)


def run_against_liar(tmp_path, store, mode: str):
    logdir = tmp_path / f"liar-{mode}"
    vault_files(store.root)  # the appliance's SSH key, so the host can authorize it
    host = vault_host(
        tmp_path / f"sshd-{mode}",
        tmp_path / "unused",
        store.root,
        command=lying_command(logdir, mode),
    )
    try:
        target = f"ssh://{host.user}@127.0.0.1:{host.port}/srv/vault"
        result = cli_json(
            "--store", str(store.root), "replicate", target, "--host-key", host.host_key
        )
    finally:
        host.stop()
    return result, logdir


def sent_payloads(logdir) -> list[bytes]:
    return [p.read_bytes() for p in sorted(logdir.glob("*.put"))]


def assert_only_sealed_store_files(store, key_file, payloads):
    allowed = store_blobs(store)
    key = key_file.read_bytes()
    for payload in payloads:
        assert payload in allowed
        assert CANARY not in payload and key not in payload


def test_a_vault_that_lacks_everything_gets_each_blob_of_the_points_and_nothing_else(
    tmp_path, source, key_file
):
    store, _ = source
    (code, _, err), logdir = run_against_liar(tmp_path, store, "lack-everything")
    assert code == 1 and err.startswith("bdr-agent: the vault did not commit srv1/disk0/")
    payloads = sent_payloads(logdir)
    assert payloads  # it was sent the first point's blobs (twice: the commit "missed" them)
    assert_only_sealed_store_files(store, key_file, payloads)
    assert len(payloads) <= 2 * len(set(payloads))


def test_a_vault_asking_for_blobs_it_was_not_offered_gets_nothing(tmp_path, source, key_file):
    store, _ = source
    (code, _, err), logdir = run_against_liar(tmp_path, store, "lack-strangers")
    assert code == 1 and "not asked about" in err
    assert sent_payloads(logdir) == []


def test_a_vault_that_answers_garbage_ends_the_run_with_one_line(tmp_path, source):
    store, _ = source
    (code, _, err), logdir = run_against_liar(tmp_path, store, "garbage")
    assert code == 1 and err.startswith("bdr-agent:") and len(err.splitlines()) == 1
    assert sent_payloads(logdir) == []

"""The vault's S3 backend against moto[server] (started here), Object Lock included
(RELIABILITY 16d: a locked blob cannot be deleted or replaced through the S3 API)."""

from __future__ import annotations

import boto3
import pytest
from botocore.exceptions import ClientError

from agent.store.datastore import Store
from tests.agent.conftest import digest, run_cli
from tests.agent.vault_world import CANARY, canary_volume, cli_json, points_over_days
from tests.support.moto_s3 import start_moto


@pytest.fixture(scope="module")
def endpoint(tmp_path_factory):
    proc, url = start_moto(tmp_path_factory.mktemp("moto") / "moto.log")
    yield url
    proc.terminate()
    proc.wait(timeout=10)


@pytest.fixture
def s3(endpoint, monkeypatch, request):
    """A client, the environment every bdr-agent process reads its S3 settings from, and a
    fresh bucket with Object Lock (the bucket's name is the test's)."""
    for name, value in {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    client = boto3.client("s3")
    bucket = request.node.name.replace("_", "-")[:55].strip("-").lower()
    client.create_bucket(Bucket=bucket, ObjectLockEnabledForBucket=True)
    return client, bucket


@pytest.fixture
def source(tmp_path, store):
    volume = canary_volume(tmp_path / "disk0.img", 2 << 20, seed=31)
    return store, points_over_days(store, volume, 3)


def every_version(client, bucket: str) -> list[tuple[str, str, bytes]]:
    out = []
    for page in client.get_paginator("list_object_versions").paginate(Bucket=bucket):
        for version in page.get("Versions", []):
            body = client.get_object(
                Bucket=bucket, Key=version["Key"], VersionId=version["VersionId"]
            )["Body"].read()
            out.append((version["Key"], version["VersionId"], body))
    return out


def blob_keys(client, bucket: str) -> list[str]:
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix="vault/")
    return [o["Key"] for page in pages for o in page.get("Contents", []) if "/blobs/" in o["Key"]]


def test_a_vault_in_s3_holds_locked_sealed_blobs_and_never_the_key(s3, source, tmp_path, key_file):
    client, bucket = s3
    store, ids = source
    vault_dir = tmp_path / "vault"
    code, out, err = cli_json(
        "vault", "init", str(vault_dir), "--s3", f"s3://{bucket}/vault", "--name", "dc-s3"
    )
    assert code == 0, err
    assert out["object_lock_days"] == 14  # the trash days, since the bucket has Object Lock
    code, result, err = cli_json("--store", str(store.root), "replicate", str(vault_dir))
    assert code == 0, err
    assert result["points_sent"] == 3 and result["vault"] == "dc-s3"
    assert cli_json("vault", "verify", str(vault_dir))[0] == 0
    keys = blob_keys(client, bucket)
    head = client.head_object(Bucket=bucket, Key=keys[0])
    assert head["ObjectLockMode"] == "COMPLIANCE"
    everything = b"".join(body for _, _, body in every_version(client, bucket))
    everything += b"".join(p.read_bytes() for p in vault_dir.rglob("*") if p.is_file())
    key = key_file.read_bytes()
    for secret in (key, key.hex().encode(), CANARY, CANARY[:24]):
        assert secret not in everything


def test_a_locked_blob_can_be_neither_deleted_nor_replaced(s3, source, tmp_path):
    """16d, through the S3 API itself: the lock is enforced, not just accepted."""
    client, bucket = s3
    store, _ = source
    vault_dir = tmp_path / "vault"
    cli_json("vault", "init", str(vault_dir), "--s3", f"s3://{bucket}/vault")
    assert cli_json("--store", str(store.root), "replicate", str(vault_dir))[0] == 0
    key = blob_keys(client, bucket)[0]
    (version,) = [v for k, v, _ in every_version(client, bucket) if k == key]
    original = client.get_object(Bucket=bucket, Key=key)["Body"].read()
    with pytest.raises(ClientError, match="AccessDenied"):
        client.delete_object(Bucket=bucket, Key=key, VersionId=version)
    client.put_object(Bucket=bucket, Key=key, Body=b"ransomware was here")  # a new version...
    kept = client.get_object(Bucket=bucket, Key=key, VersionId=version)["Body"].read()
    assert kept == original  # ...the locked one is untouched
    # The vault notices the replaced latest version (it does not match the digest) and the
    # appliance's next replication stores the blob again.
    code, report, _ = cli_json("vault", "verify", str(vault_dir))
    assert code == 3 and report["damaged_blobs"][0]["blob"] == key.rsplit("/", 1)[1]
    code, again, err = cli_json("--store", str(store.root), "replicate", str(vault_dir))
    assert code == 0 and again["blobs_sent"] == 1, err
    assert cli_json("vault", "verify", str(vault_dir))[0] == 0


def test_straight_to_a_bucket_and_back_the_disaster_drill(s3, source, tmp_path):
    client, bucket = s3
    store, ids = source
    assert cli_json("vault", "init", str(tmp_path / "cfg"), "--s3", f"s3://{bucket}/vault")[0] == 0
    target = f"s3://{bucket}/vault"
    code, out, err = cli_json("--store", str(store.root), "replicate", target)
    assert code == 0 and out["points_sent"] == 3, err
    expected = {}
    for i, pid in enumerate(ids):
        run_cli("--store", str(store.root), "restore", pid, str(tmp_path / f"a{i}.img"))
        expected[pid] = digest(tmp_path / f"a{i}.img")
    new = tmp_path / "seeded"
    code, seeded, err = cli_json(
        "--store", str(new), "seed", "--from", target, "--key-file", store.config["key_file"]
    )
    assert code == 0 and seeded["points_seeded"] == 3, err
    for i, pid in enumerate(ids):
        assert (
            run_cli("--store", str(new), "restore", pid, str(tmp_path / f"b{i}.img")).returncode
            == 0
        )
        assert digest(tmp_path / f"b{i}.img") == expected[pid]
    assert [p.id for p in Store.open(new).list_points()] == ids


def test_retention_waits_for_the_lock_before_deleting(s3, source, tmp_path):
    client, bucket = s3
    store, ids = source
    vault_dir = tmp_path / "vault"
    cli_json("vault", "init", str(vault_dir), "--s3", f"s3://{bucket}/vault", "--lock-days", "30")
    from agent.service.appliance_config import save_settings

    save_settings(
        store.root,
        {
            "offsite_policies": {
                "srv1": {"intraday": 0, "daily": 1, "weekly": 0, "monthly": 0, "yearly": 0}
            }
        },
    )
    assert cli_json("--store", str(store.root), "replicate", str(vault_dir))[0] == 0
    code, first, _ = cli_json("vault", "retention", str(vault_dir), "--now", "2025-03-03T12:00Z")
    assert code == 0 and len(first["appliances"][0]["trashed"]) == 2
    code, later, _ = cli_json("vault", "retention", str(vault_dir), "--now", "2025-03-20T12:00Z")
    app = later["appliances"][0]
    assert code == 0 and app["blobs_locked"] > 0  # 17 days on: past the trash, not the lock
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix="vault/")
    keys = [o["Key"] for page in pages for o in page.get("Contents", [])]
    assert any("/trash/" in k for k in keys)  # the batch stays for a later purge

"""The Azure adapters from Python, against Azurite (started here on
127.0.0.1, in memory, stopped after): a repository in an Azurite container
restored to page blobs, byte-identical; a rerun sends only the footers;
errors keep their codes and hold no secret."""

import pathlib
import socket
import subprocess
import time
from typing import Any

import pytest

import vmrestore

ROOT = pathlib.Path(__file__).resolve().parents[2]
AZURITE = ROOT / "bindings-node" / "node_modules" / ".bin" / "azurite-blob"
ACCOUNT = "devstoreaccount1"
KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


@pytest.fixture(scope="module")
def azurite(tmp_path_factory):
    assert AZURITE.exists(), f"{AZURITE} is missing: run npm install in bindings-node"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cwd = tmp_path_factory.mktemp("azurite")
    proc = subprocess.Popen(
        [str(AZURITE), "--blobHost", "127.0.0.1", "--blobPort", str(port), "--inMemoryPersistence",
         "--skipApiVersionCheck", "--silent", "--disableTelemetry"],
        cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(600):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}/{ACCOUNT}"
    finally:
        proc.kill()
        proc.wait()


def test_repository_in_azurite_to_page_blobs(azurite, demo):
    d, restores = demo
    web01 = next(r for r in restores if r["name"] == "web01")
    sink = vmrestore.PageBlobSink(f"{azurite}/restores", account=ACCOUNT, key=KEY)
    # The repository's container is made by uploading through a sink first
    # (object_store does not create containers).
    repo = vmrestore.ObjectStoreRepository(endpoint=azurite, account=ACCOUNT, key=KEY, container="restores",
                                           prefix="backups")
    plan = vmrestore.plan(web01["restore_point"], web01["request"], profiles=["azure-backup"])
    # The container exists once the sink wrote into it; write the backup after.
    warm = vmrestore.RestoreExecutor(vmrestore.SimCloud(), vmrestore.Repository(d / "repository"),
                                     blob_sink=sink).run_sync(plan)
    assert warm.succeeded, warm.error
    assert repo.upload_from(vmrestore.Repository(d / "repository"), web01["restore_point"]["id"]) > 0
    assert repo.list() == [web01["restore_point"]["id"]]
    assert KEY not in repr(repo) and KEY not in repr(sink)

    sink2 = vmrestore.PageBlobSink(f"{azurite}/restores", account=ACCOUNT, key=KEY)
    report = vmrestore.RestoreExecutor(vmrestore.SimCloud(), repo, blob_sink=sink2).run_sync(plan)
    assert report.succeeded, report.error
    for disk in plan.target["disks"]:
        data = sink2.read_disk(disk["name"])
        assert data is not None
        size = disk["size_bytes"]
        src = (d / "images" / f"web01-{disk['source_disk']}.raw").read_bytes()
        assert data[:size] == src + b"\0" * (size - len(src))
        assert data[size:size + 8] == b"conectix"
        stats = sink2.stats(disk["name"])
        assert stats is not None and stats["bytes_put"] == 512, stats  # the footer: the data was there already


def test_errors_keep_their_codes_and_hold_no_secret(azurite, demo):
    d, restores = demo
    bad = vmrestore.ObjectStoreRepository(endpoint=azurite, account=ACCOUNT, key="c2VjcmV0LXNlbnRpbmVs",
                                          container="nowhere")
    with pytest.raises(vmrestore.RepositoryError) as e:
        bad.list()
    assert e.value.code == "E_REPOSITORY"
    assert "c2VjcmV0LXNlbnRpbmVs" not in str(e.value)
    with pytest.raises(vmrestore.InvalidInputError):
        vmrestore.PageBlobSink(f"{azurite}/x", account=ACCOUNT)
    with pytest.raises(TypeError):
        vmrestore.RestoreExecutor(object(), vmrestore.Repository(d / "repository"))
    cloud = vmrestore.ArmCloud("22222222-2222-2222-2222-222222222222", token="tok-sentinel-77",
                               endpoint="http://127.0.0.1:9")
    assert "tok-sentinel-77" not in repr(cloud)
    with pytest.raises(vmrestore.CloudError) as e2:
        cloud.catalog()
    assert "tok-sentinel-77" not in str(e2.value)


def test_arm_credentials_are_a_token_or_a_named_azure_identity_credential() -> None:
    sub = "22222222-2222-2222-2222-222222222222"
    # A named credential builds (tokens are fetched when a call needs one).
    vmrestore.ArmCloud(sub, credential="azure-cli", endpoint="http://127.0.0.1:9")
    vmrestore.ArmCloud(sub, credential="managed-identity", managed_identity_client_id="abc")
    cases: list[tuple[dict[str, Any], str]] = [
        ({"token": "tok-sentinel-78", "credential": "azure-cli"}, "not both"),
        ({"credential": "az"}, "unknown credential 'az'"),
        ({}, "give a token or a credential"),
    ]
    for kwargs, expect in cases:
        with pytest.raises(vmrestore.InvalidInputError) as e:
            vmrestore.ArmCloud(sub, **kwargs)
        assert e.value.code == "E_INVALID"
        assert expect in str(e.value) and "credential" in str(e.value)
        assert "tok-sentinel-78" not in str(e.value)

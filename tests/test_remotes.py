"""A fanned-out sweep's point through an S3 DVC remote: moto's S3 server on localhost (offline) stands
in for S3 or MinIO, `dvc-s3` talks to it. The parent publishes the shared stages, a point runs from a
fresh clone of the bare git remote, and the parent pulls the experiment back (lsdm.orchestration.fanout,
without Prefect: tests/test_fanout.py runs the same through a server and workers)."""

from __future__ import annotations

import contextlib
import json
import socket
import time

import pytest
from support.processes import run, start_group, stop_group, tail
from support.repos import make_repo, tiny_params

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]  # the shared stages, then a point, through S3

S3_ENV = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}


@pytest.fixture
def s3(tmp_path, monkeypatch):
    """An S3 endpoint with the bucket `lsdm`; the AWS variables in this process (and so in every
    dvc/git it starts) point the clients at it."""
    import boto3

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    for k, v in S3_ENV.items():
        monkeypatch.setenv(k, v)
    log = tmp_path / "moto.log"
    proc = start_group(
        ["moto_server", "-H", "127.0.0.1", "-p", str(port)], tmp_path, dict(__import__("os").environ), log
    )
    url = f"http://127.0.0.1:{port}"
    try:
        client = boto3.client("s3", endpoint_url=url)
        for _ in range(60):
            with contextlib.suppress(Exception):
                client.create_bucket(Bucket="lsdm")
                break
            assert proc.poll() is None, tail(log)
            time.sleep(0.5)
        yield url, client
    finally:
        stop_group(proc)


def test_a_point_runs_through_an_s3_remote(s3, tmp_path):
    from lsdm.orchestration import fanout

    url, client = s3
    origin = tmp_path / "origin.git"
    run(["git", "init", "-q", "--bare", "-b", "main", str(origin)], tmp_path)
    parent = make_repo(tmp_path / "parent", tiny_params())
    for cmd in (
        ["git", "remote", "add", "origin", str(origin)],
        ["dvc", "remote", "add", "-d", "s3", "s3://lsdm/store"],
        ["dvc", "remote", "modify", "s3", "endpointurl", url],
        ["git", "commit", "-qam", "remotes"],
        ["git", "push", "-q", "origin", "main"],
    ):
        run(cmd, parent)
    fanout.check_dvc_remote(parent)

    commit, status = fanout.publish_shared(parent, {}, "s3t", "origin")
    assert status["fit_latent"] == "ran" and status["eval_net"] == "ran"
    stored = client.list_objects_v2(Bucket="lsdm", Prefix="store/").get("KeyCount", 0)
    assert stored >= 5  # images, latent pool, autoencoder, latents, evaluation net ... now in the bucket

    point = fanout.Point("s3t-n2-s1", {"split.n_paired_per_class": 2, "split.seed": 1})
    result = fanout.run_point(str(origin), commit, point, tmp_path / "workspaces")
    assert result["ran_shared"] == [] and result["stages"]["fit_matcher"] == "ran", result["stages"]
    assert client.list_objects_v2(Bucket="lsdm", Prefix="store/")["KeyCount"] > stored  # the point's outputs too

    fanout.pull_experiments(parent, [point.name])
    shown = json.loads(run(["dvc", "exp", "show", "--json", "--rev", commit], parent).stdout)
    names = {rev["name"] for row in shown for exp in row.get("experiments") or [] for rev in exp["revs"]}
    assert point.name in names

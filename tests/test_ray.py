"""The Ray executor against a real local Ray instance (2 CPUs, started here): the same
records as the sequential local run, failures and budget cancellations included."""

from __future__ import annotations

import pytest

from test_parallel import assert_same_records, run_suite_cli, sequential_records

ray = pytest.importorskip("ray")


@pytest.fixture(scope="module")
def ray_address():
    context = ray.init(num_cpus=2, include_dashboard=False, object_store_memory=100 * 2**20,
                       log_to_driver=False)
    try:
        yield context.address_info["gcs_address"]
    finally:
        ray.shutdown()


@pytest.fixture(scope="module")
def ray_run(tmp_path_factory, ray_address):
    root = tmp_path_factory.mktemp("ray")
    records, result = run_suite_cli(root, "out", "--executor", "ray", "--address", ray_address)
    return root, records, result


def test_ray_gives_the_sequential_records(tmp_path_factory, ray_run):
    want = sequential_records(tmp_path_factory)
    _, got, result = ray_run
    assert result.returncode == 1, result.stderr[-3000:]
    assert "5 runs planned: 0 already done, 5 executed (3 ok, 2 failed)" in result.stdout
    assert_same_records(got, want)
    sleeper = next(r for r in got.values() if r["spec"]["strategy"]["id"] == "sleeps")
    assert "killed" in sleeper["error"]["message"]  # cancelled by the driver, not stopped by itself


def test_ray_resumes_like_the_local_executor(ray_run, ray_address):
    root, first, _ = ray_run
    again, result = run_suite_cli(root, "out", "--executor", "ray", "--address", ray_address, "--no-retry")
    assert result.returncode == 1
    assert "5 runs planned: 3 already done, 0 executed" in result.stdout
    assert again == first


def test_address_without_ray_is_a_usage_error(cli, write_suite, tmp_path):
    from test_parallel import PLUGIN_ENV, SUITE

    result = cli("run", str(write_suite(SUITE)), "--out", str(tmp_path / "out"), "--address", "127.0.0.1:1",
                 env=PLUGIN_ENV)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == "tlbench: error: --address: only used with --executor ray"


def test_a_node_without_the_suite_cache_dir_uses_its_own(tmp_path, monkeypatch):
    from tlbench.run.executors.ray import _node_cache_dir

    shared = tmp_path / "shared"
    assert _node_cache_dir(str(shared)) == str(shared) and shared.is_dir()
    blocked = tmp_path / "file"
    blocked.write_text("not a directory")
    monkeypatch.setenv("TLBENCH_CACHE_DIR", str(tmp_path / "node-cache"))
    assert _node_cache_dir(str(blocked / "cache")) == str(tmp_path / "node-cache")

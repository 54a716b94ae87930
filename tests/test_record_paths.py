"""Portable paths: what `portable` rewrites and into which form, what `absolute_paths`
flags and what it leaves alone, and that the store writes portable, sealed records
without touching what their run ids hash."""

from __future__ import annotations

import copy
import json

import pytest

from tlbench.results.paths import absolute_paths, cache_roots, local_path, portable
from tlbench.results.records import INTEGRITY, integrity_problem, new_record, validate_record
from tlbench.results.store import RecordStore


@pytest.fixture
def machine(tmp_path, monkeypatch):
    """A home, and a tlbench cache outside it (as TLBENCH_CACHE_DIR sets one)."""
    home, cache = tmp_path / "home" / "alice", tmp_path / "scratch" / "tlbench-cache"
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("TLBENCH_CACHE_DIR", str(cache))
    for name in ("XDG_CACHE_HOME", "HF_HOME", "HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "HF_DATASETS_CACHE",
                 "TORCH_HOME"):
        monkeypatch.delenv(name, raising=False)
    return home, cache


def test_paths_under_the_caches_and_home_name_their_root(machine, tmp_path, monkeypatch):
    home, cache = machine
    value = {
        "weights": f"{cache}/pretrain/ab12.safetensors",
        "hub": f"{home}/.cache/huggingface/hub/models--timm--resnet18/snapshots/x/model.safetensors",
        "torch": f"{home}/.cache/torch/hub/checkpoints/r.pth",
        "xdg": f"{home}/.cache/other/thing",
        "data": [f"{home}/data/train.csv", ("dir:" + f"{home}/images",)],
        "message": f"weights not found at {home}/w.pth; tried {cache}/x",
        "home": str(home),
        "elsewhere": "/srv/data/x.csv",
        "lookalike": f"{home}-old/x",
    }
    before = copy.deepcopy(value)
    out = portable(value)
    assert value == before  # a copy; the input is left as it was
    assert out["weights"] == "<tlbench-cache>/pretrain/ab12.safetensors"
    assert out["hub"] == "<hf-home>/hub/models--timm--resnet18/snapshots/x/model.safetensors"
    assert out["torch"] == "<torch-home>/hub/checkpoints/r.pth"
    assert out["xdg"] == "<xdg-cache>/other/thing"
    assert portable(f"{home}/.cache/tlbench/pretrain/x") == "<tlbench-cache>/pretrain/x"  # the default cache too
    assert out["data"] == ["~/data/train.csv", ("dir:~/images",)]
    assert out["message"] == "weights not found at ~/w.pth; tried <tlbench-cache>/x"
    assert out["home"] == "~"
    assert out["elsewhere"] == "/srv/data/x.csv" and out["lookalike"] == f"{home}-old/x"  # not under a root
    assert [location for location, _ in absolute_paths(out)] == ["elsewhere", "lookalike"]

    # the cache's form does not depend on the home: the same on a machine with another home
    monkeypatch.setenv("HOME", str(tmp_path / "home" / "bob"))
    assert portable(value)["weights"] == out["weights"]
    assert portable(value)["hub"] == value["hub"]  # alice's home is no root of bob's: left for validate


def test_environment_roots_and_nesting(machine, tmp_path, monkeypatch):
    home, _ = machine
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf" / "hub-elsewhere"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(home / "xdg"))
    out = portable([str(tmp_path / "hf" / "hub-elsewhere" / "m"), str(tmp_path / "hf" / "datasets" / "d"),
                    str(home / "xdg" / "torch" / "hub"), str(home / "xdg" / "y")])
    assert out == ["<hf-hub-cache>/m", "<hf-home>/datasets/d", "<torch-home>/hub", "<xdg-cache>/y"]
    roots = [root for root, _ in cache_roots()]
    assert roots == sorted(roots, key=len, reverse=True)  # the most specific root is tried first
    # a suite's own cache directory
    suite_cache = tmp_path / "suite-cache"
    assert portable(f"{suite_cache}/features/f.npy", cache_dirs=[suite_cache]) == "<tlbench-cache>/features/f.npy"
    assert local_path("<tlbench-cache>/features/f.npy", [suite_cache]) == f"{suite_cache}/features/f.npy"


def test_local_path_reads_the_portable_forms_back(machine):
    home, cache = machine
    for path in (f"{cache}/pretrain/w.safetensors", f"{home}/.cache/huggingface/hub/x", f"{home}/data/a.csv"):
        assert local_path(portable(path)) == path
    assert local_path("timm/resnet18.a1_in1k") == "timm/resnet18.a1_in1k"


def test_locations_of_what_is_left_in_a_record(machine):
    record = {"details": {"source": {"weights": "/home/bob/.cache/tlbench/pretrain/x.safetensors"},
                          "strategy": {"history": [{"note": "ok"}, {"note": "saved /mnt/ckpt/e1.pt"}]}},
              "error": {"traceback": 'File "/usr/lib/python3/x.py", line 1\nFile "/usr/lib/python3/y.py"'},
              "by_role": {"/abs/key/here": 1}}
    assert absolute_paths(record) == [
        ("details.source.weights", "/home/bob/.cache/tlbench/pretrain/x.safetensors"),
        ("details.strategy.history[1].note", "/mnt/ckpt/e1.pt"),
        ("error.traceback", "/usr/lib/python3/x.py"), ("error.traceback", "/usr/lib/python3/y.py"),
        ("by_role./abs/key/here (key)", "/abs/key/here")]
    assert absolute_paths("/a/b") == [("", "/a/b")]


@pytest.mark.parametrize("text", ["/home/alice/x", "/x/y", "dir:/data/images", "~carol/weights.pth",
                                  "C:\\Users\\dave\\w.pth", "D:/data/x", "\\\\server\\share\\x",
                                  "file:///srv/x/y", "see /tmp/run/log.txt for details"])
def test_absolute_paths_are_flagged(text):
    assert len(absolute_paths({"v": text})) == 1


@pytest.mark.parametrize("text", ["cuda:0", "cpu", "train+val", "1/5", "2025/01/01", "timm/resnet18.a1_in1k",
                                  "hf-hub:timm/resnet18", "https://huggingface.co/timm/x/y", "s3://bucket/a/b",
                                  "backbone/no_decay", "target:val:labels", "val_accuracy", "/x", "a / b",
                                  "~/data/x.csv", "<tlbench-cache>/pretrain/x.safetensors", "<hf-home>/hub/m/x",
                                  "Linux-6.1-x86_64-with-glibc2.36", "n/a", ""])
def test_what_is_not_an_absolute_path(text):
    assert absolute_paths({"v": text}) == []


def _record(cache):
    from tlbench.hashing import config_hash

    identity = {"source": {"plugin": "timm", "version": "1", "params": {"tag": f"{cache}/odd-but-hashed"}},
                "target": {"plugin": "digits", "version": "1", "content_hash": "abc"},
                "strategy": {"plugin": "linear-probe", "version": "1"}, "seed": 0}
    spec = {"source": {"id": "s", "plugin": "timm", "version": "1", "params": {"file": f"{cache}/w.safetensors"}},
            "target": {"id": "t", "plugin": "digits", "version": "1", "params": {}, "content_hash": "abc"},
            "strategy": {"id": "lp", "plugin": "linear-probe", "version": "1", "params": {}},
            "seed": 0, "init": "pretrained", "baseline": False, "identity": identity}
    return new_record(spec, config_hash(identity, 20), "ok", metrics={"test_accuracy": 0.5},
                      details={"source": {"weights": f"{cache}/w.safetensors"}}, provenance={"host": "h"})


def test_the_store_writes_portable_sealed_records(machine, tmp_path):
    _, cache = machine
    record = _record(cache)
    store = RecordStore(tmp_path / "runs")
    path = store.write(record)
    written = json.loads(path.read_text())
    assert written == record  # the caller's record is what was stored
    assert written["details"]["source"]["weights"] == "<tlbench-cache>/w.safetensors"
    assert written["spec"]["source"]["params"]["file"] == "<tlbench-cache>/w.safetensors"
    # what the run id hashes is left as it is, so the record still proves its identity
    assert written["spec"]["identity"]["source"]["params"]["tag"] == f"{cache}/odd-but-hashed"
    assert validate_record(written) == []
    assert set(written[INTEGRITY]) == {"sha256"} and integrity_problem(written) is None
    assert store.load_all()[record["run_id"]] == written


def test_a_sealed_record_is_copied_as_it_is(machine, tmp_path):
    """`tlbench merge` writes records that others sealed: an edit stays evident."""
    _, cache = machine
    record = _record(cache)
    RecordStore(tmp_path / "a").write(record)
    edited = json.loads(json.dumps(record))
    edited["metrics"]["test_accuracy"] = 0.9
    assert integrity_problem(edited).startswith("integrity digest does not match")
    path = RecordStore(tmp_path / "b").write(edited)
    assert integrity_problem(json.loads(path.read_text())).startswith("integrity digest does not match")
    unsealed = json.loads(json.dumps(record))
    del unsealed[INTEGRITY]
    assert integrity_problem(unsealed) == "no integrity digest"
    path = RecordStore(tmp_path / "c").write(unsealed)
    assert json.loads(path.read_text()) == record  # sealed again, to the same digest


def test_the_cache_tlbench_uses_is_a_root(machine, monkeypatch):
    from tlbench.plan.suite import default_cache_dir

    assert portable(f"{default_cache_dir()}/features/f.npy") == "<tlbench-cache>/features/f.npy"
    monkeypatch.delenv("TLBENCH_CACHE_DIR")
    assert portable(f"{default_cache_dir()}/features/f.npy") == "<tlbench-cache>/features/f.npy"


def test_a_suites_own_cache_is_recorded_relative_to_it(tmp_path, monkeypatch):
    """A suite whose cache_dir is neither the default cache nor under the home: the
    pretrained weights' path in its records still names no folder of this machine."""
    import json

    from tlbench.cli import main

    monkeypatch.delenv("TLBENCH_CACHE_DIR", raising=False)
    suite = tmp_path / "suite.toml"
    suite.write_text(
        '[suite]\nname = "own-cache"\nseeds = [0]\ndevice = "cpu"\ncache_dir = "own-cache"\n'
        'output = "results"\n\n'
        '[[sources]]\nid = "digits"\nplugin = "pretrain"\nmodel = "test_resnet"\ninput_size = 16\n'
        'target = "digits"\ntarget_params = { half = "even", classes = [0, 1], shots = 5, val_shots = 2 }\n'
        'epochs = 1\n\n'
        '[[targets]]\nid = "d"\nplugin = "digits"\nclasses = [2, 3]\nhalf = "odd"\nshots = 2\nval_shots = 2\n\n'
        '[[strategies]]\nid = "lp"\nplugin = "linear-probe"\n', encoding="utf-8")
    assert main(["run", str(suite), "--jobs", "1"]) == 0
    records = [json.loads(p.read_text()) for p in (tmp_path / "results" / "runs").glob("*.json")]
    weights = [r["details"]["source"]["weights"] for r in records if not r["spec"].get("baseline")]
    assert weights and all(w.startswith("<tlbench-cache>/pretrain/") for w in weights), weights
    assert (tmp_path / "own-cache" / "pretrain").is_dir()


def test_other_users_homes_and_dict_keys_are_made_portable_too():
    """Records written on another machine or account, published here."""
    assert portable("/home/bob/.cache/tlbench/pretrain/w.safetensors") == "<tlbench-cache>/pretrain/w.safetensors"
    assert portable("/Users/carol/.cache/huggingface/hub/m") == "<hf-home>/hub/m"
    assert portable("copied from /home/dave/results/x and /home/dave") == "copied from ~/results/x and ~"
    assert portable("/homework/notes.txt") == "/homework/notes.txt"  # not a home
    assert portable({"/home/bob/data/a.png": 1}) == {"~/data/a.png": 1}

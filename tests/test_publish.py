"""`tlbench publish`: a static site of immutable releases, through the real command line.

Real small runs (a pretrained source and a linear probe on digits, then a fine-tuning
strategy added) give two result directories; hand-made records (`RecordSet`) give the
cases no quick run makes: version drift, hostile ids, suites large enough to shard.
"""

from __future__ import annotations

import json
import re
import shutil
import zipfile
from pathlib import Path

import pytest
from test_report_aggregate import RecordSet, fixed_records

from tlbench.cli import main
from tlbench.site import shards
from tlbench.site.bundle import bundle_zip
from tlbench.site.names import slug

SUITE = """
[suite]
name = "publish-test"
seeds = [0]
device = "cpu"

[[sources]]
id = "pre"
plugin = "pretrain"
model = "test_resnet"
input_size = 32
target = "digits"
target_params = { classes = [0, 1, 2], shots = 10, val_shots = 3 }
epochs = 1

[[targets]]
id = "d"
plugin = "digits"
classes = [5, 6, 7]
shots = 4
val_shots = 2

[[strategies]]
id = "lp"
plugin = "linear-probe"
{more}
[baseline]
plugin = "full-finetune"
epochs = 1
batch_size = 8
"""

FINETUNE = """
[[strategies]]
id = "ft"
plugin = "full-finetune"
epochs = 1
batch_size = 8
"""

SAFE_NAME = re.compile(r"[a-z0-9][a-z0-9.-]*")


@pytest.fixture(scope="module")
def runs(tmp_path_factory, one_torch_thread):
    """Result directory `first` (linear probe) and `second` (the same runs plus fine-tuning),
    made by `tlbench run` with the cache under a home of the test's own."""
    root = tmp_path_factory.mktemp("publish")
    home = root / "home"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HOME", str(home))
        patch.setenv("TLBENCH_CACHE_DIR", str(home / ".cache" / "tlbench"))
        first, second = home / "results" / "first", home / "results" / "second"
        (root / "first.toml").write_text(SUITE.replace("{more}", ""), encoding="utf-8")
        (root / "second.toml").write_text(SUITE.replace("{more}", FINETUNE), encoding="utf-8")
        assert main(["run", str(root / "first.toml"), "--out", str(first), "--jobs", "1"]) == 0
        shutil.copytree(first / "runs", second / "runs")
        assert main(["run", str(root / "second.toml"), "--out", str(second), "--jobs", "1"]) == 0
        # a record written before paths were portable: the weights under the user's home
        record_path = next(second / "runs" / p.name for p in sorted((first / "runs").glob("*.json"))
                           if json.loads(p.read_text())["spec"]["strategy"]["id"] == "lp")
        record = json.loads(record_path.read_text())
        record["details"]["source"]["weights"] = f"{home}/.cache/tlbench/pretrain/old.safetensors"
        record["details"]["note"] = f"copied from {home}/results/elsewhere"
        record.pop("integrity", None)  # as tlbench 0.1 wrote them: without a digest
        record_path.write_text(json.dumps(record), encoding="utf-8")
        yield {"root": root, "home": home, "first": first, "second": second, "patch": patch}


@pytest.fixture(scope="module")
def site(runs, capsys_module):
    """The site after publishing `first`, then `second`, then `second` again."""
    out = runs["root"] / "site"
    steps = {}
    for name in ("first", "second", "again"):
        directory = runs["second" if name == "again" else name]
        code = main(["publish", str(directory), "--out", str(out), "--title", "digits suite"])
        steps[name] = (code, capsys_module())
        if name == "first":
            steps["first_bytes"] = files_of(out / slug("digits suite"))
    return out, steps


@pytest.fixture(scope="module")
def capsys_module():
    """What the last publish printed (module-scoped tests cannot use capsys)."""
    import contextlib
    import io

    def publish_output():
        return capture.getvalue().splitlines()[-1] if capture.getvalue() else ""

    capture = io.StringIO()
    with contextlib.redirect_stdout(capture):
        yield publish_output


def files_of(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def release_dirs(out: Path, title: str) -> list[Path]:
    return sorted(p for p in (out / slug(title)).iterdir() if p.name.startswith("r"))


def publish(*args: str) -> int:
    return main(["publish", *args])


def test_a_release_holds_the_leaderboard_cells_and_bundle(site):
    out, steps = site
    assert steps["first"][0] == 0 and "release r0001-" in steps["first"][1]
    first = release_dirs(out, "digits suite")[0]
    for name in ("index.html", "leaderboard.html", "leaderboard.md", "results.csv", "results.parquet",
                 "summary.json", "records.jsonl", "bundle.zip", "release.json", "changes.html"):
        assert (first / name).is_file(), name
    manifest = json.loads((first / "release.json").read_text())
    lines = (first / "records.jsonl").read_text().splitlines()
    assert len(lines) == len(manifest["records"]) == 2  # the probe and its from-scratch baseline
    summary = json.loads((first / "summary.json").read_text())
    assert len(list((first / "cells").glob("*.html"))) == len(summary["cells"]) == len(manifest["cells"])
    with zipfile.ZipFile(first / "bundle.zip") as archive:
        assert archive.namelist() == ["records.jsonl", "results.parquet", "summary.json"]
        assert archive.read("records.jsonl") == (first / "records.jsonl").read_bytes()
        assert {info.date_time for info in archive.infolist()} == {(1980, 1, 1, 0, 0, 0)}
    assert bundle_zip(first) == (first / "bundle.zip").read_bytes()  # rebuilt: the same bytes
    latest = (out / slug("digits suite") / "latest" / "index.html").read_text()
    assert f"../{release_dirs(out, 'digits suite')[-1].name}/index.html" in latest


def test_a_new_release_keeps_the_old_one_and_says_what_changed(site):
    out, steps = site
    assert steps["second"][0] == 0 and "release r0002-" in steps["second"][1]
    first, second = release_dirs(out, "digits suite")
    assert files_of(out / slug("digits suite") / first.name) == {
        name.split("/", 1)[1]: data for name, data in steps["first_bytes"].items() if name.startswith(first.name)}
    manifest = json.loads((second / "release.json").read_text())
    changes = manifest["changes"]
    assert changes["previous"] == first.name
    assert len(changes["records_added"]) == 1 and changes["records_removed"] == []
    assert len(changes["records_changed"]) == 1  # the record whose details were edited
    assert len(changes["cells_added"]) == 1 and "ft" in changes["cells_added"][0]
    index = (out / "index.html").read_text()
    assert index.index(second.name) < index.index(first.name)  # newest first
    assert "records +1 −0 ~1" in index and "cells +1 −0" in index
    assert "record added" in (second / "changes.html").read_text()


def test_the_same_records_make_no_new_release(site):
    out, steps = site
    code, printed = steps["again"]
    assert code == 0 and printed.startswith("nothing new to publish") and "no release made" in printed
    assert len(release_dirs(out, "digits suite")) == 2
    assert not [p for p in (out / slug("digits suite")).iterdir() if p.name.startswith(".")]


def test_a_cell_page_shows_each_runs_provenance(site):
    out, _ = site
    second = release_dirs(out, "digits suite")[-1]
    records = [json.loads(line) for line in (second / "records.jsonl").read_text().splitlines()]
    probe = next(r for r in records if r["spec"]["strategy"]["id"] == "lp")
    front = (second / "index.html").read_text()
    page_name = next(name for name in re.findall(r'href="(cells/[^"]+)"', front)
                     if probe["run_id"] in (second / name).read_text())
    page = (second / page_name).read_text()
    for expected in (probe["run_id"], probe["provenance"]["git_revision"], probe["spec"]["target"]["content_hash"],
                     probe["details"]["target"]["revision"], probe["provenance"]["versions"]["torch"],
                     "resolved hyper-parameters", "status", probe["provenance"]["host"]):
        assert str(expected) in page, expected
    ft = next(r for r in records if r["spec"]["strategy"]["id"] == "ft")
    resolved = ft["details"]["strategy"]["resolved"]
    ft_page = next((second / n).read_text() for n in re.findall(r'href="(cells/[^"]+)"', front)
                   if ft["run_id"] in (second / n).read_text())
    assert resolved and all(key in ft_page for key in resolved)


def test_no_file_names_the_home_directory(site, runs):
    out, _ = site
    home = str(runs["home"])
    for path in out.rglob("*"):
        if path.is_file() and path.suffix in (".html", ".json", ".jsonl", ".md", ".csv"):
            assert home not in path.read_text(encoding="utf-8"), path
    records = (release_dirs(out, "digits suite")[-1] / "records.jsonl").read_text()
    assert "<tlbench-cache>/pretrain/old.safetensors" in records


def test_plugins_json_lists_every_plugin_version_records_name(site):
    out, _ = site
    plugins = json.loads((out / "plugins.json").read_text())
    assert plugins == {"digits": ["1"], "full-finetune": ["1"], "linear-probe": [plugins["linear-probe"][0]],
                       "pretrain": [plugins["pretrain"][0]]}


def test_bad_input_is_one_line_and_exit_2(runs, tmp_path, capsys):
    assert publish(str(tmp_path / "missing"), "--out", str(tmp_path / "site")) == 2
    assert "no such result directory" in capsys.readouterr().err
    broken = tmp_path / "broken"
    shutil.copytree(runs["first"] / "runs", broken / "runs")
    (broken / "runs" / ("a" * 20 + ".json")).write_text("{", encoding="utf-8")
    assert publish(str(broken), "--out", str(tmp_path / "site")) == 2
    err = capsys.readouterr().err
    assert "cannot be used" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "site").exists() or not any((tmp_path / "site").iterdir())
    (tmp_path / "empty").mkdir()
    assert publish(str(tmp_path / "empty"), "--out", str(tmp_path / "site2")) == 2
    assert "no run records" in capsys.readouterr().err
    assert publish(str(runs["first"]), "--out", str(tmp_path / "site3"), "--title", " ") == 2


def test_a_second_publish_to_a_site_being_written_is_refused(runs, tmp_path, capsys):
    fcntl = pytest.importorskip("fcntl")
    site = tmp_path / "site"
    site.mkdir()
    with open(site / ".publish.lock", "a+b") as held:  # another publish holds the site
        fcntl.flock(held, fcntl.LOCK_EX)
        assert publish(str(runs["first"]), "--out", str(site)) == 2
        err = capsys.readouterr().err
        assert "another `tlbench publish` is writing to this site" in err and len(err.strip().splitlines()) == 1
        assert [p.name for p in site.iterdir()] == [".publish.lock"]
    assert publish(str(runs["first"]), "--out", str(site)) == 0


def test_edited_records_and_selections_on_test_labels_are_not_published(runs, tmp_path, capsys):
    from tlbench.results.records import seal

    def copy_with(name: str, edit) -> Path:
        directory = tmp_path / name
        shutil.copytree(runs["first"] / "runs", directory / "runs")
        path = next(p for p in sorted((directory / "runs").glob("*.json"))
                    if not json.loads(p.read_text())["spec"].get("baseline"))
        record = json.loads(path.read_text())
        path.write_text(json.dumps(edit(record)), encoding="utf-8")
        return directory

    def tamper(record):
        record["metrics"]["test_accuracy"] = 1.0
        return record

    def test_selection(record):
        record["details"]["selection"] = {"rule": "test", "reads": ["target:test:labels"]}
        return seal(record)

    def tmp_weights(record):
        record["details"]["source"]["weights"] = "/srv/models/w.safetensors"
        return seal(record)

    assert publish(str(copy_with("edited", tamper)), "--out", str(tmp_path / "site")) == 2
    err = capsys.readouterr().err
    assert "edited after it was written" in err and len(err.strip().splitlines()) == 1
    assert publish(str(copy_with("tested", test_selection)), "--out", str(tmp_path / "site")) == 2
    assert "selection read test labels" in capsys.readouterr().err
    assert not (tmp_path / "site").exists() or not any(p.is_dir() for p in (tmp_path / "site").iterdir())
    assert publish(str(copy_with("srv", tmp_weights)), "--out", str(tmp_path / "site")) == 0
    err = capsys.readouterr().err
    assert "name an absolute path outside the home and the caches" in err and "/srv/models/w.safetensors" in err


def test_records_that_disagree_on_a_plugin_version_stay_apart(tmp_path, capsys):
    old, new = RecordSet("lab-a"), RecordSet("lab-b")
    for seed in range(3):
        for records, version, score in ((old, "1", 0.8), (new, "2", 0.6)):
            records.baseline("t1", seed, 0.5)
            records.run("good", "lp", "t1", seed, score + seed / 100, strategy_version=version)
    dirs = [old.write(tmp_path / "old"), new.write(tmp_path / "new")]
    assert publish(*map(str, dirs), "--out", str(tmp_path / "site"), "--title", "drift") == 0
    release = release_dirs(tmp_path / "site", "drift")[0]
    front = (release / "index.html").read_text()
    kept = front[front.index('id="kept-apart"'):front.index("</section>", front.index('id="kept-apart"'))]
    assert "never averaged" in kept and "strategy v1" in kept and "strategy v2" in kept
    labels = json.loads((release / "release.json").read_text())["cells"].values()
    assert {label for label in labels if "· lp" in label} == {"t1 · good · lp (strategy v1)",
                                                              "t1 · good · lp (strategy v2)"}
    summary = json.loads((release / "summary.json").read_text())
    means = sorted(c["test_mean"] for c in summary["cells"] if c["strategy"] == "lp")
    assert means == pytest.approx([0.61, 0.81])  # each version its own mean, never pooled


HOSTILE = {"source": '<script>window.__pwned=1</script>"\'', "strategy": "../../../etc/passwd",
           "target": "t1 ünïcødé </script><img src=x onerror=alert(1)>"}


def test_hostile_ids_stay_inert(tmp_path, capsys):
    records = fixed_records()
    for seed in range(3):
        records.baseline(HOSTILE["target"] + "1", seed, 0.5)
        records.run(HOSTILE["source"], HOSTILE["strategy"], HOSTILE["target"] + "1", seed, 0.7)
    title = '"><script>alert(1)</script> ../../x'
    assert publish(str(records.write(tmp_path / "in")), "--out", str(tmp_path / "site"), "--title", title) == 0
    site = tmp_path / "site"
    for path in site.rglob("*"):
        assert path.resolve().is_relative_to(site.resolve())
        assert SAFE_NAME.fullmatch(path.name) or path.name == ".publish.lock", path.name
        if path.suffix == ".html":
            text = path.read_text(encoding="utf-8")
            assert "<script>window" not in text and "<img src=x" not in text and "<script>alert" not in text
            assert text.count("<script") <= 1, path
    json.loads((site / "plugins.json").read_text())
    front = (release_dirs(site, title)[0] / "index.html").read_text()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in front


def test_large_listings_are_split_into_linked_pages(tmp_path, capsys, monkeypatch):
    records = RecordSet()
    for target in range(4):
        for seed in range(2):
            records.baseline(f"t{target}", seed, 0.5)
            for source in range(5):
                records.run(f"s{source}", "lp", f"t{target}", seed, 0.6)
    monkeypatch.setattr(shards, "ROWS_PER_PAGE", 7)
    assert publish(str(records.write(tmp_path / "in")), "--out", str(tmp_path / "site"), "--title", "big") == 0
    release = release_dirs(tmp_path / "site", "big")[0]
    cells = len(json.loads((release / "release.json").read_text())["cells"])  # 4 targets × (5 + baseline)
    pages = ["index.html"] + [f"cells-{n}.html" for n in range(2, -(-cells // 7) + 1)]
    assert cells == 24 and [p.name for p in sorted(release.glob("cells-*.html"))] == pages[1:]
    for number, name in enumerate(pages):
        text = (release / name).read_text()
        assert text.count('<tr><td data-sort=') <= 7
        if number + 1 < len(pages):
            assert f'href="{pages[number + 1]}" rel="next"' in text
        if number:
            assert f'href="{pages[number - 1]}" rel="prev"' in text
    changes = sorted(release.glob("changes*.html"))  # 48 records and 24 cells added
    assert len(changes) == -(-(len(records.records) + cells) // 7)
    assert shards.chunks(list(range(2500)), 1000)[-1] == list(range(2000, 2500))

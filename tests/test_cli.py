"""The `lorp` command end to end on a tiny model: prune writes a reloadable checkpoint with its record and card,
inspect prints the block structure, and bad input is refused as the pipeline refuses it."""

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from lorp.cli import DEFAULTS, main
from lorp.io import read_json
from lorp.model.load import load_model
from lorp.model.prune import max_logit_diff

pytestmark = pytest.mark.model  # builds or runs a model: not in make test-fast

SMALL = ["--samples", "4", "--seqlen", "32", "--batch-size", "2"]


def umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_prune_writes_checkpoint_record_and_card_and_inspect_reads_them(tiny_checkpoint, tmp_path, capsys,
                                                                        monkeypatch):
    out = tmp_path / "pruned"
    assert main(["prune", str(tiny_checkpoint), "--method", "sleb", "--budget", "0.34", "--loss-samples", "2",
                 "--out", str(out), *SMALL]) == 0
    record = read_json(out / "pruning.json")
    assert record["method"] == "sleb" and record["budget"] == 2 and record["budget_asked"] == 0.34  # 0.34 x 6
    assert len(record["removed"]) == 2 and record["removed"] == sorted(record["importance"]["sleb_order"])
    assert len(record["similarity"]) == 6 and record["rls"]["k"] == record["clusters"]["k"]
    assert {"torch", "transformers"} <= record["versions"].keys()
    card = (out / "README.md").read_text()
    assert card.startswith("---\nbase_model:") and ", ".join(map(str, record["removed"])) in card
    pruned, original = load_model(out), load_model(tiny_checkpoint)
    assert pruned.config.num_hidden_layers == 4
    ids = torch.randint(0, original.config.vocab_size, (1, 16), generator=torch.Generator().manual_seed(1))
    assert max_logit_diff(pruned, original, record["removed"], ids) <= 1e-5
    assert "pruning.json, README.md" in capsys.readouterr().out
    assert {f.name: f.stat().st_mode & 0o777 for f in out.iterdir()}["model.safetensors"] == 0o666 & ~umask()

    # inspect of the written checkpoint prints its record: the original numbering, and no model is loaded
    def no_load(*args, **kwargs):
        raise AssertionError("inspect of a pruned checkpoint loaded a model")

    monkeypatch.setattr("lorp.model.fetch.load_source", no_load)
    assert main(["inspect", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "N = 6 blocks" in printed and f"removed blocks {record['removed']} of the original 6" in printed
    assert f"K = {record['rls']['k']}" in printed and "sleb, budget 2" in printed


@pytest.mark.parametrize("how", ["linear", "lora"])
def test_prune_with_recovery_writes_the_recovered_model(tiny_checkpoint, tmp_path, how, monkeypatch):
    """--recover: the plan's name says it, pruning.json records the fit or the training, and the written model is
    the recovered one (linear: equal to the dense model with the fit in place and the blocks bypassed). LoRA runs
    params.yaml's recovery.lora_* defaults, shortened here to 3 steps of 32 tokens."""
    short = dataclasses.replace(DEFAULTS.recovery, lora_steps=3, lora_seqlen=32)
    monkeypatch.setattr("lorp.cli.DEFAULTS", dataclasses.replace(DEFAULTS, recovery=short))
    out = tmp_path / how
    assert main(["prune", str(tiny_checkpoint), "--method", "shortgpt", "--budget", "2", "--recover", how,
                 "--out", str(out), *SMALL]) == 0
    record = read_json(out / "pruning.json")
    assert record["name"] == f"shortgpt-2+{how}" and record["recovery"]["recovery"] == how
    pruned, original = load_model(out), load_model(tiny_checkpoint)
    ids = torch.randint(0, original.config.vocab_size, (1, 16), generator=torch.Generator().manual_seed(1))
    plain = max_logit_diff(pruned, original, record["removed"], ids)
    assert plain > 1e-3  # recovery changed the model: it is not the plain pruned one
    if how == "linear":
        assert [r["fold"] for r in record["recovery"]["runs"]] == ["full"] * len(record["recovery"]["runs"])
        assert record["max_abs_logit_diff_vs_skip"] <= 1e-4
    else:
        assert record["recovery"]["lora"]["steps"] == 3 and record["recovery"]["lora"]["tokens"] == 3 * 2 * 32


def test_inspect_prints_structure_and_saves_heatmap(tiny_checkpoint, tmp_path, capsys):
    png = tmp_path / "s.png"
    assert main(["inspect", str(tiny_checkpoint), "--k", "2", "--png", str(png), *SMALL]) == 0
    text = capsys.readouterr().out
    assert "N = 6 blocks" in text and "K = 2 (forced)" in text and "cluster 1" in text
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("args, message", [
    (["--budget", "5"], "--budget [5]: the model has 6 blocks, 4 of them prunable"),
    (["--budget", "1.5"], "budget: 1.5 is neither a block count >= 1"),
    (["--budget", "2", "--method", "shortgtp"], "unknown value 'shortgtp' (did you mean 'shortgpt'?)"),
    (["--budget", "2", "--seqlen", "512"], "--seqlen=512 is longer than the model's max_position_embeddings (128)"),
    (["--budget", "2", "--calibration", "c5"], "calibration.corpus: unknown value 'c5'"),
])
def test_bad_input_is_refused_before_calibration(tiny_checkpoint, tmp_path, capsys, args, message):
    out = tmp_path / "x"
    argv = ["prune", str(tiny_checkpoint), "--out", str(out), *SMALL, *args]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert "lorp prune: error:" in err and message in err and "Traceback" not in err
    assert not out.exists()


def test_existing_output_is_never_overwritten(tiny_checkpoint, tmp_path, capsys):
    (tmp_path / "taken").mkdir()
    assert main(["prune", str(tiny_checkpoint), "--budget", "1", "--out", str(tmp_path / "taken"), *SMALL]) == 1
    assert "exists: choose a new folder" in capsys.readouterr().err


LOAD_ATTEMPT = "is neither pypi:<name>, an existing folder, nor a hub id"  # what loading a missing folder says


def refusal(capsys, argv: list[str]) -> str:
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err.startswith("lorp prune: error:") and "Traceback" not in err
    return err


def test_a_missing_model_folder_is_refused_when_it_loads(tmp_path, capsys):
    """The control for the test below: arguments that pass reach the model, and a missing folder says so."""
    err = refusal(capsys, ["prune", str(tmp_path / "no-model"), "--budget", "1", "--out", str(tmp_path / "x"),
                           "--data", "hub", *SMALL])
    assert LOAD_ATTEMPT in err and "no-model" in err


@pytest.mark.parametrize("args, message", [
    (["--method", "nosuch", "--budget", "1"], "--method: unknown value 'nosuch' (valid: lorp, lorp_iter, lorp_kcal"),
    (["--budget", "40.5"], "--budget: 40.5 is neither a block count >= 1"),
    (["--budget", "0"], "--budget: 0 is neither a block count >= 1"),
    (["--budget", "1", "--data", "/no/such"], "--data: the dataset mirror '/no/such' (/no/such) does not exist"),
])
def test_bad_arguments_are_refused_before_the_model_loads(tmp_path, capsys, args, message):
    out = tmp_path / "x"
    err = refusal(capsys, ["prune", str(tmp_path / "no-model"), "--out", str(out), *SMALL, *args])
    assert message in err and LOAD_ATTEMPT not in err
    assert not out.exists()


@pytest.mark.parametrize("source", ["pypi:smollm2-135m-instruct", "tiny"])
def test_a_budget_beyond_the_depth_is_refused_before_the_model_loads(source, tiny_checkpoint, tmp_path, capsys,
                                                                     monkeypatch):
    """The depth comes from the PyPI model's spec or the folder's config: no de-quantising before the refusal."""
    def no_load(*args, **kwargs):
        raise AssertionError("the model was loaded before the budget was checked")

    monkeypatch.setattr("lorp.model.fetch.load_source", no_load)
    model = str(tiny_checkpoint) if source == "tiny" else source
    err = refusal(capsys, ["prune", model, "--budget", "40", "--out", str(tmp_path / "x"), *SMALL])
    assert err.startswith("lorp prune: error: --budget [40]: the model has ") and "use budgets below" in err


def test_an_existing_out_is_refused_before_the_model_loads(tmp_path, capsys):
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "keep.txt").write_text("mine")
    err = refusal(capsys, ["prune", str(tmp_path / "no-model"), "--budget", "1", "--out", str(tmp_path / "taken"),
                           *SMALL])
    assert f"--out {tmp_path / 'taken'} exists: choose a new folder" in err and LOAD_ATTEMPT not in err
    assert [p.name for p in (tmp_path / "taken").iterdir()] == ["keep.txt"]


@pytest.mark.parametrize("command", [[], ["prune"], ["inspect"], ["cost"], ["scoring-speedup"],
                                     ["zeroshot-speedup"]])
def test_installed_command_has_help(command):
    exe = Path(sys.executable).parent / "lorp"
    out = subprocess.run([str(exe), *command, "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "usage: lorp" in out.stdout


def test_help_time_record_covers_every_subcommand(tmp_path):
    """make bench's help figure times `lorp --help` and every subcommand the parser has (not a timing test: the
    limit is checked by reading the record, reports/bench/cli_help.json)."""
    from lorp.evaluate import help_time

    help_time.main(["--out", str(tmp_path / "help.json"), "--repeats", "1"])
    record = json.loads((tmp_path / "help.json").read_text())
    assert set(record["seconds"]) == {"lorp", "lorp cost", "lorp inspect", "lorp prune", "lorp scoring-speedup",
                                      "lorp zeroshot-speedup"}
    assert record["limit_s"] == 2.0 and all(s > 0 for s in record["seconds"].values())
    assert record["within_limit"] == all(s < 2.0 for s in record["seconds"].values())

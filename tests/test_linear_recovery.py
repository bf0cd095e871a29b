"""Linear recovery: exact where the removed run is linear, the fused checkpoint equal to the in-memory recovered
model on every test architecture, and clear refusals where the fold point is unknown."""

import gc
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import ARCHS, tiny_model, tiny_tokenizer
from torch import nn
from transformers import AutoModelForCausalLM

from lorp.evaluate.perplexity import plan_perplexities
from lorp.model.blocks import locate_blocks, skip_blocks
from lorp.model.forward import perplexity
from lorp.model.load import load_model
from lorp.model.patches import first_changed_block, patched, pruned_patch
from lorp.recover.checkpoints import recovered_model
from lorp.recover.linear import RecoveryError, fit, folded, recover, removed_runs
from lorp.recover.lora import heal
from lorp.recover.plans import load_recovered, recover_all

pytestmark = pytest.mark.model


def ids(vocab: int, n: int = 8, seqlen: int = 16, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(3, vocab, size=(n, seqlen))


def test_removed_runs():
    assert removed_runs([]) == []
    assert removed_runs([5, 3, 4, 9, 0]) == [(0, 1), (3, 6), (9, 10)]


def test_fit_recovers_a_known_map():
    g = torch.Generator().manual_seed(0)
    m = torch.randn(500, 6, generator=g, dtype=torch.float64)
    t = torch.randn(6, 6, generator=g, dtype=torch.float64)
    assert torch.allclose(fit(m, m @ t, "full"), t, atol=1e-9)
    d = torch.randn(6, generator=g, dtype=torch.float64)
    assert torch.allclose(fit(m, m * d, "diagonal"), d, atol=1e-9)


@torch.no_grad()
def linear_run_model():
    """A tiny Llama whose block 3 is exactly linear on what block 2 writes: the residual before block 2's MLP lives
    in dims 0-15, the MLP branch in dims 16-31, and block 3 adds x A^T with A acting on dims 16-31 only. Removing
    block 3 is then undone exactly by T = I + A^T folded into block 2's down_proj."""
    model = tiny_model("llama", num_hidden_layers=5)
    _, blocks = locate_blocks(model)
    half = 16
    model.model.embed_tokens.weight[:, half:] = 0
    for b in (0, 1):
        blocks[b].self_attn.o_proj.weight.zero_()
        blocks[b].mlp.down_proj.weight.zero_()
    blocks[2].self_attn.o_proj.weight[half:] = 0
    blocks[2].mlp.down_proj.weight[:half] = 0
    blocks[3].self_attn.o_proj.weight.zero_()
    blocks[3].post_attention_layernorm = nn.Identity()
    linear = nn.Linear(32, 32, bias=False)
    linear.weight.zero_()
    linear.weight[half:, half:] = 0.5 * torch.randn(half, half, generator=torch.Generator().manual_seed(1))
    blocks[3].mlp = linear
    return model


@torch.no_grad()
def test_exactly_linear_run_is_restored_to_rounding():
    model = linear_run_model()
    x = torch.as_tensor(ids(model.config.vocab_size, n=2, seed=5))
    dense = model(input_ids=x).logits
    fits = recover(model, ids(model.config.vocab_size), {"p": [3]}, batch_size=4, progress=False)
    assert fits["p"]["runs"][0]["error_recovered"] < 1e-10 < fits["p"]["runs"][0]["error_unrecovered"]
    recovered = recovered_model(model, [3], fits["p"]["patch"])
    assert (recovered(input_ids=x).logits - dense).abs().max() < 1e-5
    pruned = recovered_model(model, [3], {})
    assert (pruned(input_ids=x).logits - dense).abs().max() > 1e-2  # the test could fail: pruning alone hurts


@pytest.mark.parametrize("arch", sorted(ARCHS))
@torch.no_grad()
def test_fused_checkpoint_equals_in_memory_recovery(arch, tmp_path):
    model = tiny_model(arch)
    removed = [1, 2, 4]  # two runs: the second is fitted on the model with the first already folded
    fits = recover(model, ids(model.config.vocab_size), {"p": removed}, batch_size=4, progress=False)
    patch = fits["p"]["patch"]
    assert [r["fold"] for r in fits["p"]["runs"]] == 2 * ["diagonal" if "gemma" in arch or "olmo" in arch else "full"]
    assert all(r["error_recovered"] <= r["error_unrecovered"] for r in fits["p"]["runs"])
    assert first_changed_block(model, removed, patch) == 0  # block 0 carries the first fold
    pruned = recovered_model(model, removed, patch)
    pruned.save_pretrained(tmp_path / "ckpt")
    loaded = AutoModelForCausalLM.from_pretrained(tmp_path / "ckpt").eval()
    x = torch.as_tensor(ids(model.config.vocab_size, n=2, seed=9))
    with patched(model, patch), skip_blocks(model, removed):
        want = model(input_ids=x).logits
    assert (loaded(input_ids=x).logits - want).abs().max() <= 1e-5
    read = pruned_patch(model, load_model(tmp_path / "ckpt"), kept=[0, 3, 5])
    dense = dict(model.named_parameters())
    changed = {k for k, v in patch.items() if not torch.equal(v, dense[k].detach())}  # GPT-2's zero bias stays zero
    assert read.keys() == changed and all(torch.allclose(read[k], patch[k]) for k in changed)


def test_a_block_without_a_known_fold_point_is_refused():
    model = tiny_model("llama")
    _, blocks = locate_blocks(model)
    blocks[0].mlp = nn.Sequential(nn.Linear(32, 32))
    with pytest.raises(RecoveryError, match="LlamaDecoderLayer has none of .*FOLD_POINTS"):
        recover(model, ids(model.config.vocab_size), {"p": [1]}, batch_size=4, progress=False)


def test_fold_refuses_a_module_it_cannot_fold():
    with pytest.raises(RecoveryError, match="cannot fold a linear map into a Embedding"):
        folded(nn.Embedding(4, 4), "full", torch.eye(4, dtype=torch.float64))


@torch.no_grad()
def test_recovered_plans_evaluate_as_their_checkpoints():
    """plan_perplexities with a recovered plan's patch (read back from the written model) gives the PPL of that
    model itself: for a linear fit (a few weights) and a LoRA-healed model (every block's projections)."""
    model = tiny_model("llama")
    removed, kept = [2, 3], [0, 1, 4, 5]
    calibration, evaluation = ids(model.config.vocab_size), ids(model.config.vocab_size, n=4, seed=3)
    linear = recovered_model(model, removed, recover(model, calibration, {"p": removed}, batch_size=4,
                                                     progress=False)["p"]["patch"])
    healed, _ = heal(recovered_model(model, removed, {}), calibration, rank=2, alpha=4.0, lr=1e-2, steps=3,
                     batch_size=2, seed=0, progress=False)
    patches = {"p+linear": pruned_patch(model, linear, kept), "p+lora": pruned_patch(model, healed, kept)}
    assert len(patches["p+lora"]) > len(patches["p+linear"]) > 0
    got = plan_perplexities(model, evaluation, {"p": removed, "p+linear": removed, "p+lora": removed},
                            batch_size=2, patches=patches)
    for name, pruned in (("p+linear", linear), ("p+lora", healed)):
        assert got[name] == pytest.approx(perplexity(pruned, evaluation, batch_size=2)["ppl"], rel=1e-5)
    assert got["p"] == pytest.approx(perplexity(recovered_model(model, removed, {}), evaluation, 2)["ppl"], rel=1e-5)
    assert len({round(v, 6) for v in got.values()}) == 3


@torch.no_grad()
def test_recovered_patches_do_not_keep_their_checkpoint_files_mapped(tmp_path):
    """load_recovered keeps copies: a loaded tensor is a view of the memory-mapped safetensors file, and keeping it
    kept every recovered checkpoint resident (evaluate's peak RSS grew with the number of recovered plans)."""
    model = tiny_model("llama")
    removed, kept = [2, 3], [0, 1, 4, 5]
    fit = recover(model, ids(model.config.vocab_size), {"p": removed}, batch_size=4, progress=False)["p"]["patch"]
    recovered_model(model, removed, fit).save_pretrained(tmp_path / "p+linear")
    (tmp_path / "index.json").write_text(json.dumps({"p+linear": {"removed": removed, "kept": kept}}))
    plans, patches = load_recovered(model, tmp_path, dtype="float32")
    gc.collect()
    assert plans == {"p+linear": removed} and patches["p+linear"]
    assert str(tmp_path) not in Path("/proc/self/maps").read_text()


def test_a_rerun_writes_byte_identical_checkpoint_folders(tmp_path, mirror):
    """recover_all's folders keep no seconds (recovery.json does): a rerun's checkpoints, pruning.json and index.json
    are byte-identical, so DVC reruns nothing downstream of an unchanged recovery (a fresh clone's `make`)."""
    model, tokenizer = tiny_model("llama"), tiny_tokenizer(mirror)
    plans = [{"name": "lorp-2", "method": "lorp", "budget": 2, "num_blocks": 6, "removed": [2, 3],
              "kept": [0, 1, 4, 5]}]
    settings = {"linear_ids": ids(model.config.vocab_size), "linear_batch_size": 4, "lora_names": ["lorp-2"],
                "lora_ids": ids(model.config.vocab_size, n=4, seed=5), "provenance": {"dtype": "float32"},
                "lora": {"rank": 2, "alpha": 4.0, "lr": 1e-2, "steps": 2, "batch_size": 2, "seed": 0}}
    index = recover_all(model, tokenizer, plans, tmp_path / "a", **settings)
    recover_all(model, tokenizer, plans, tmp_path / "b", **settings)

    def files(folder: Path) -> dict:
        return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}

    assert files(tmp_path / "a") == files(tmp_path / "b") and len(files(tmp_path / "a")) > 6
    assert index["lorp-2+lora"]["seconds"] > 0 and index["lorp-2+lora"]["lora"]["seconds"] > 0
    written = json.loads((tmp_path / "a" / "index.json").read_text())
    assert set(written) == {"lorp-2+linear", "lorp-2+lora"} and "seconds" not in written["lorp-2+lora"]["lora"]
    assert "seconds" not in json.loads((tmp_path / "a" / "lorp-2+linear" / "pruning.json").read_text())

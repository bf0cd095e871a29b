"""LoRA healing (lorp.recover.lora): the merged model computes what the adapters computed, training lowers the loss,
the result is a plain checkpoint of the same class, runs repeat with the seed, and bad settings are refused."""

import numpy as np
import pytest
import torch
import transformers
from conftest import tiny_model

from lorp.model.blocks import locate_blocks
from lorp.model.prune import remove_blocks
from lorp.recover.lora import LoraError, heal, merge, train_adapters

pytestmark = pytest.mark.model

ARCHS = ["llama", "qwen2", "gemma3", "gpt2"]
SETTINGS = {"rank": 4, "alpha": 8.0, "lr": 1e-2, "steps": 6, "batch_size": 2, "seed": 0, "progress": False}


def windows(n: int = 3, seqlen: int = 16, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(3, 320, size=(n, seqlen))


def pruned(arch: str):
    return remove_blocks(tiny_model(arch), [1, 2])


@torch.no_grad()
def logits(model, ids: np.ndarray) -> torch.Tensor:
    return model(input_ids=torch.as_tensor(ids), use_cache=False).logits


@pytest.mark.parametrize("arch", ARCHS)
def test_merged_model_computes_what_the_adapters_computed(arch):
    model = pruned(arch)
    probe = windows(2, 12, seed=1)
    before = logits(model, probe)
    peft_model, _ = train_adapters(model, windows(), **SETTINGS)
    path, _ = locate_blocks(model)
    adapted = [name for name, _ in peft_model.base_model.model.named_modules() if name.endswith("lora_A")]
    assert adapted and all(name.startswith(path + ".") for name in adapted)  # blocks only: no LM head, no embeddings
    unmerged = logits(peft_model, probe)
    assert (unmerged - before).abs().max() > 1e-4  # the adapters were trained, so the comparison means something
    assert torch.allclose(logits(merge(peft_model), probe), unmerged, atol=1e-5, rtol=0)


@pytest.mark.parametrize("arch", ["llama", "gemma3"])
def test_training_lowers_the_loss_on_a_repeated_batch(arch):
    _, record = heal(pruned(arch), windows(2), **{**SETTINGS, "steps": 12})
    assert record["loss_last"] < record["loss_first"]
    assert len(record["losses"]) == 12
    assert record["loss_first"] == pytest.approx(np.mean(record["losses"][:5]), abs=1e-3)
    assert record["tokens"] == 12 * 2 * 16 and record["seqlen"] == 16


@pytest.mark.parametrize("arch", ARCHS)
def test_healed_model_is_a_plain_checkpoint(arch, tmp_path):
    model = pruned(arch)
    cls = type(model)
    healed, record = heal(model, windows(), **SETTINGS)
    assert type(healed) is cls and healed is model
    assert not [name for name, _ in healed.named_parameters() if "lora_" in name]
    assert not healed.training and not any(p.requires_grad for p in healed.parameters())
    assert record["trainable_params"] > 0 and record["seconds"] >= 0
    healed.save_pretrained(tmp_path)
    reloaded = transformers.AutoModelForCausalLM.from_pretrained(tmp_path, dtype=torch.float32).eval()
    assert type(reloaded) is cls and reloaded.config.num_hidden_layers == 4
    probe = windows(2, 12, seed=1)
    assert torch.allclose(logits(reloaded, probe), logits(healed, probe), atol=1e-5, rtol=0)


def test_same_seed_repeats_the_run():
    first = heal(pruned("llama"), windows(5), **SETTINGS)[1]["losses"]
    again = heal(pruned("llama"), windows(5), **SETTINGS)[1]["losses"]
    other = heal(pruned("llama"), windows(5), **{**SETTINGS, "seed": 1})[1]["losses"]
    assert first == again
    assert first != other


@pytest.mark.parametrize(("key", "change"), [
    ("rank", {"rank": 0}), ("alpha", {"alpha": 0.0}), ("lr", {"lr": 0.0}), ("lr", {"lr": -1e-4}),
    ("steps", {"steps": 0}), ("batch_size", {"batch_size": 0}),
    ("ids", {"ids": np.arange(16)}), ("ids", {"ids": np.zeros((0, 16), dtype=np.int64)}),
    ("ids", {"ids": np.zeros((3, 1), dtype=np.int64)})])
def test_bad_settings_are_refused_before_the_model_is_touched(key, change):
    model = tiny_model("llama")
    keys = set(model.state_dict())
    args = {**SETTINGS, "ids": windows(), **change}
    with pytest.raises(LoraError, match=f"recovery.lora_{key}" if key != "ids" else r"\(ids\)"):
        heal(model, **args)
    assert type(model) is transformers.LlamaForCausalLM and set(model.state_dict()) == keys  # no adapter injected

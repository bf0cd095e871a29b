"""Pruned checkpoints compute exactly the original minus the removed blocks, on tiny random models."""

import copy

import pytest
import torch
from conftest import tiny_model, tiny_tokenizer
from lm_eval.api.instance import Instance
from lm_eval.models.huggingface import HFLM
from transformers import AutoModelForCausalLM

from lorp.model.blocks import locate_blocks, skip_blocks
from lorp.model.prune import PruneError, max_logit_diff, remove_blocks, save

pytestmark = pytest.mark.model  # builds or runs a model: not in make test-fast

REMOVED = [1, 3, 4]


@pytest.fixture(scope="module")
def tokenizer(mirror):
    return tiny_tokenizer(mirror)


def ids(n: int = 20, batch: int = 2) -> torch.Tensor:
    return torch.randint(3, 128, (batch, n), generator=torch.Generator().manual_seed(1))


def test_pruned_equals_skip_blocks_and_reloads(arch, tokenizer, tmp_path):
    original = tiny_model(arch)
    pruned = remove_blocks(copy.deepcopy(original), REMOVED)
    assert pruned.config.num_hidden_layers == 3
    if getattr(original.config, "layer_types", None):
        assert pruned.config.layer_types == [original.config.layer_types[i] for i in (0, 2, 5)]
    for new_index, block in enumerate(locate_blocks(pruned)[1]):
        assert {m.layer_idx for m in block.modules() if hasattr(m, "layer_idx")} <= {new_index}
    assert max_logit_diff(pruned, original, REMOVED, ids()) <= 1e-5

    save(pruned, tokenizer, tmp_path / "ckpt", {"removed": REMOVED})
    reloaded = AutoModelForCausalLM.from_pretrained(tmp_path / "ckpt", dtype=torch.float32).eval()
    assert reloaded.config.num_hidden_layers == 3
    with torch.no_grad(), skip_blocks(original, REMOVED):
        ref = original(input_ids=ids()).logits
        assert (reloaded(input_ids=ids()).logits - ref).abs().max() <= 1e-5

    prompt = ids(12, 1)
    with torch.no_grad():
        cached = reloaded.generate(prompt, max_new_tokens=10, do_sample=False, use_cache=True)
        uncached = reloaded.generate(prompt, max_new_tokens=10, do_sample=False, use_cache=False)
    assert cached.tolist() == uncached.tolist()

    lm = HFLM(pretrained=str(tmp_path / "ckpt"), batch_size=1, device="cpu")
    assert lm.model.config.num_hidden_layers == 3
    request = Instance(request_type="loglikelihood", doc={}, arguments=("The cat", " sat on the mat"), idx=0)
    [(loglik, _)] = lm.loglikelihood([request])
    assert loglik < 0


def test_naive_deletion_breaks_gemma3_and_ours_does_not():
    """Why config and layer_idx must follow the blocks: naive deletion breaks cached generation."""
    original = tiny_model("gemma3")
    naive = copy.deepcopy(original)
    naive.model.layers = torch.nn.ModuleList([naive.model.layers[i] for i in (0, 2, 5)])
    fixed = remove_blocks(copy.deepcopy(original), REMOVED)
    prompt = ids(8, 1)
    with torch.no_grad():
        reference = fixed.generate(prompt, max_new_tokens=8, do_sample=False, use_cache=False)
        assert fixed.generate(prompt, max_new_tokens=8, do_sample=False).tolist() == reference.tolist()
        try:
            naive_ok = naive.generate(prompt, max_new_tokens=8, do_sample=False).tolist() == reference.tolist()
        except RuntimeError:
            naive_ok = False
    assert not naive_ok


@pytest.mark.parametrize("removed, message", [([6], "in 0..5"), ([1, 1], "distinct"),
                                              (list(range(6)), "removes all")])
def test_bad_plans_are_refused(removed, message):
    with pytest.raises(PruneError, match=message):
        remove_blocks(tiny_model("llama"), removed)


def test_unknown_per_layer_field_is_refused():
    model = tiny_model("llama")
    model.config.head_sizes_per_layer = [8] * 6
    with pytest.raises(PruneError, match="config.head_sizes_per_layer"):
        remove_blocks(model, [2])

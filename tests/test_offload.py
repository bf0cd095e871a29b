"""`device: auto` with accelerate's hooks on the blocks: offloaded models give the plain model's numbers.

On a machine with no accelerator, device_map="auto" attaches hooks only when the model does not fit: a max_memory
smaller than the checkpoint makes accelerate keep the first modules on the CPU and offload the rest (late blocks,
final norm, head) to disk, their parameters on 'meta' until each hook loads them for its forward. Every stage that
loads with the params' device goes through those hooks, so S and A, the plans, plan perplexities and pruned
checkpoints must equal those of the same checkpoint loaded plainly.
"""

import math

import numpy as np
import pytest
import torch
from transformers import AutoModelForCausalLM

from lorp.data.calibration import sample
from lorp.evaluate.perplexity import eval_windows, plan_perplexities
from lorp.model.blocks import locate_blocks, skip_blocks
from lorp.model.forward import head_logits
from lorp.model.load import load_model, load_tokenizer
from lorp.model.prune import prune_all
from lorp.select.cluster import cluster
from lorp.select.plans import Inputs, plan
from lorp.select.rls import score
from lorp.select.similarity import block_input_similarity

pytestmark = pytest.mark.model  # builds or runs a model: not in make test-fast

BUDGET = 2  # blocks removed by each plan


def model_bytes(model) -> int:
    return sum(p.numel() * p.element_size() for p in model.parameters())


@pytest.fixture(scope="module")
def plain(tiny_checkpoint):
    model = load_model(tiny_checkpoint, dtype="float32", device="cpu")
    assert not hasattr(model, "hf_device_map")
    return model


@pytest.fixture(scope="module")
def offloaded(tiny_checkpoint, plain, tmp_path_factory):
    """load_model(device="auto") as written, with accelerate told the CPU holds only half of the model."""
    real = AutoModelForCausalLM.from_pretrained
    extra = {"max_memory": {"cpu": model_bytes(plain) // 2},
             "offload_folder": str(tmp_path_factory.mktemp("offload"))}

    def from_pretrained(*args, **kwargs):
        assert kwargs.get("device_map") == "auto"  # load_model's own device="auto" path
        return real(*args, **kwargs, **extra)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(AutoModelForCausalLM, "from_pretrained", from_pretrained)
        return load_model(tiny_checkpoint, dtype="float32", device="auto")


@pytest.fixture(scope="module")
def tokenizer(tiny_checkpoint):
    return load_tokenizer(tiny_checkpoint)


@pytest.fixture(scope="module")
def calibration(tokenizer, mirror):
    return sample(tokenizer, "wikitext2", n_samples=6, seqlen=32, seed=0, mirror=mirror)[0]


@pytest.fixture(scope="module")
def similarities(plain, offloaded, calibration):
    return {name: block_input_similarity(model, calibration, batch_size=4, progress=False)  # uneven last batch
            for name, model in (("plain", plain), ("offloaded", offloaded))}


def lorp_plan(s: np.ndarray) -> dict:
    labels = cluster(s, score(s, force_k=None)["k"])
    return plan("lorp", Inputs(s, labels), BUDGET)


def test_blocks_are_offloaded_behind_hooks(offloaded):
    placed = offloaded.hf_device_map
    _, blocks = locate_blocks(offloaded)
    where = [placed.get(f"model.layers.{i}", placed.get("model.layers")) for i in range(len(blocks))]
    assert "cpu" in where and "disk" in where, placed
    assert placed["lm_head"] == "disk", placed
    assert all(hasattr(b, "_hf_hook") for b in blocks)  # every block's forward goes through accelerate's hook
    on_disk = [b for b in blocks if all(p.device.type == "meta" for p in b.parameters())]
    assert on_disk and all(m._hf_hook.offload for b in on_disk for m in b.modules() if m._parameters)
    head = offloaded.get_output_embeddings()
    assert head._hf_hook.offload and head.weight.device.type == "meta"


def test_similarity_and_lorp_plan_match(similarities):
    plain, offloaded = similarities["plain"], similarities["offloaded"]
    np.testing.assert_allclose(offloaded.s, plain.s, rtol=0, atol=1e-5)
    np.testing.assert_allclose(offloaded.angular, plain.angular, rtol=0, atol=1e-5)
    want, got = lorp_plan(plain.s), lorp_plan(offloaded.s)
    assert (got["removed"], got["kept"]) == (want["removed"], want["kept"])
    assert got["name"] == want["name"]


def test_head_logits_of_offloaded_head(plain, offloaded, calibration):
    """What Runner's probe, token_nll and zero-shot scoring read: the head applied to final hidden states."""
    ids = torch.as_tensor(calibration[:2])
    with torch.no_grad():
        hidden = offloaded.base_model(input_ids=ids, use_cache=False).last_hidden_state
        want = plain(input_ids=ids, use_cache=False).logits
        got = head_logits(offloaded, hidden)
    assert got.device.type == "cpu"
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


def test_plan_perplexities_match(plain, offloaded, similarities, tokenizer, mirror):
    n = len(locate_blocks(plain)[1])
    plans = {"dense": [], "lorp": lorp_plan(similarities["plain"].s)["removed"],
             "first-last": [0, n - 1], "late": [n - 2, n - 1]}  # blocks on the CPU and on disk
    ids = eval_windows(tokenizer, "wikitext2", seqlen=32, max_windows=5, mirror=mirror)
    want = plan_perplexities(plain, ids, plans, batch_size=2)
    got = plan_perplexities(offloaded, ids, plans, batch_size=2)
    assert got.keys() == want.keys()
    for name in plans:
        assert math.isfinite(want[name])
        assert got[name] == pytest.approx(want[name], rel=1e-5), name


def test_pruned_checkpoints_match(plain, offloaded, tokenizer, calibration, tmp_path):
    """prune_all (the prune stage: deepcopy, remove_blocks, check vs skip_blocks, write) from either model."""
    n = len(locate_blocks(plain)[1])
    plans = [{"name": name, "method": "test", "budget": len(removed), "num_blocks": n, "removed": removed,
              "kept": [b for b in range(n) if b not in removed]}
             for name, removed in (("mixed", [1, n - 2]), ("late", [n - 2, n - 1]))]
    want = prune_all(plain, tokenizer, plans, tmp_path / "plain", provenance={})
    got = prune_all(offloaded, tokenizer, plans, tmp_path / "offloaded", provenance={})
    ids = torch.as_tensor(calibration[:2])
    for p in plans:
        assert got[p["name"]]["removed"] == want[p["name"]]["removed"] == p["removed"]
        from_plain = load_model(tmp_path / "plain" / p["name"])
        from_offloaded = load_model(tmp_path / "offloaded" / p["name"])
        assert from_offloaded.config.num_hidden_layers == n - len(p["removed"])
        with torch.no_grad(), skip_blocks(plain, p["removed"]):
            reference = plain(input_ids=ids, use_cache=False).logits
            a = from_plain(input_ids=ids, use_cache=False).logits
            b = from_offloaded(input_ids=ids, use_cache=False).logits
        torch.testing.assert_close(b, a, rtol=0, atol=1e-6)
        torch.testing.assert_close(b, reference, rtol=1e-5, atol=1e-5)

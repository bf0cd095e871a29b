"""The LoRP variants (lorp.select.variants) on tiny random Llamas: lorp_iter re-measures S exactly as a plain pass
without the chosen blocks would, equals LoRP at budget 1 and departs from it where a removal changes the redundancy of
the rest; lorp_kcal takes the K whose plan has the lowest calibration PPL; the selectors read the record and refuse
without it; the study re-selects both on its seed draws; the cost count is the work the code does."""

import dataclasses
import functools

import numpy as np
import pytest
import torch
from conftest import tiny_model, tiny_tokenizer
from torch.utils.flop_counter import FlopCounterMode

from lorp import study
from lorp.data import sources
from lorp.data.calibration import sample
from lorp.evaluate.cost import unit, variants_flops
from lorp.evaluate.flops import flops_per_token
from lorp.model.blocks import skip_blocks
from lorp.model.forward import PROBE_TOKENS, perplexity
from lorp.params.config import Params
from lorp.select.allocate import lorp
from lorp.select.baselines import BudgetError
from lorp.select.cluster import cluster
from lorp.select.methods import MissingInputError, selection_order
from lorp.select.plans import Inputs, plan
from lorp.select.rls import score
from lorp.select.similarity import block_input_similarity
from lorp.select.variants import VariantError, iterative, k_by_loss, remeasure, variants_record

pytestmark = pytest.mark.model  # builds or runs a model: not in make test-fast

N, BATCH = 8, 2
IDS = np.random.default_rng(0).integers(3, 320, size=(4, 16))
PROTECT = {"protect_first": True, "protect_last": True}


def record(model, s, ids=IDS, **changes) -> dict:
    """variants_record with the tests' defaults: both variants, budgets 1 and 2, K from RLS, K of 2..4 for kcal."""
    settings = {"methods": ["lorp_iter", "lorp_kcal"], "budgets": [1, 2], "ks": [2, 3, 4], "force_k": None,
                "random_state": 0, **PROTECT, "similarity_batch_size": BATCH, "loss_batch_size": BATCH} | changes
    return variants_record(model, ids, ids, s, **settings)


def similarity(model, ids=IDS) -> np.ndarray:
    return block_input_similarity(model, ids, BATCH, progress=False).s


def left(s: np.ndarray, chosen) -> np.ndarray:
    """S of the blocks not chosen, as if removing them changed no other block's input."""
    keep = [b for b in range(len(s)) if b not in chosen]
    return s[np.ix_(keep, keep)]


def without(model, chosen) -> np.ndarray:
    """S of the blocks not chosen, measured by a plain pass with the chosen ones skipped: the reference."""
    with skip_blocks(model, chosen):
        return left(similarity(model), chosen)


def scaled(model, factors: dict[int, float]):
    """The model with each named block's residual writes (attention output, MLP down projection) scaled: 0 makes
    the block an exact identity, a large factor makes its write dominate every later block's input."""
    with torch.no_grad():
        for b, factor in factors.items():
            layer = model.model.layers[b]
            layer.self_attn.o_proj.weight.mul_(factor)
            layer.mlp.down_proj.weight.mul_(factor)
    return model


@functools.cache
def writer_model():
    """Block 0 an identity, block 1 a dominant writer: with it, blocks 0-1 and 2-7 are two worlds apart; without
    it, block 2 enters with block 0's state and the depth is one gradient again. Removing block 1 changes every
    other block's redundancy."""
    return scaled(tiny_model("llama", num_hidden_layers=N), {0: 0.0, 1: 10.0})


def test_remeasured_similarity_is_a_plain_pass_without_the_chosen_blocks():
    """Every S_t resumes from the dense prefix yet equals block_input_similarity under skip_blocks; removing an
    identity block changes nothing (S_t is the rows and columns of S left). Each set is measured once."""
    model = scaled(tiny_model("llama", num_hidden_layers=N), {2: 0.0})
    s = similarity(model)
    measure, measured = remeasure(model, IDS, BATCH, depth=5)
    for chosen in ({3}, {5, 2}, {1, 6}, {4}):
        np.testing.assert_allclose(measure(frozenset(chosen)), without(model, chosen), atol=1e-6)
    np.testing.assert_allclose(measure(frozenset({2})), left(s, {2}), atol=1e-6)
    assert measure(frozenset({3})) is measure(frozenset({3}))
    assert measured == [[3], [2, 5], [1, 6], [4], [2]]
    with pytest.raises(VariantError, match="start after block 5"):
        measure(frozenset({6}))


@pytest.mark.parametrize("arch", ["llama", "qwen3", "gemma3", "gpt2"])
@pytest.mark.parametrize("protect", [(True, True), (False, True)])
def test_lorp_iter_is_lorp_at_budget_one(arch, protect):
    """One step on LoRP's own S, K and clusters: the same block, and no model pass beyond the given S."""
    model = tiny_model(arch, num_hidden_layers=N)
    s = similarity(model)
    rule = dict(zip(("protect_first", "protect_last"), protect, strict=True))
    got = record(model, s, methods=["lorp_iter"], budgets=[1], **rule)["lorp_iter"]
    rls = score(s, force_k=None)
    assert got["plans"]["1"]["removed"] == lorp(s, cluster(s, rls["k"]), 1, *protect)[0]
    assert got["plans"]["1"]["steps"][0]["k"] == rls["k"] and got["measured"] == []


def test_lorp_iter_departs_from_lorp_where_a_removal_changes_the_redundancy_of_the_rest():
    """K = 2. LoRP takes the writer (block 1, r = 1) and the most redundant block of 2-7. lorp_iter commits the
    writer first, re-measures, and finds block 2 now as redundant with block 0 as can be. Iterating on S without
    re-measuring is LoRP again: the difference is the re-measurement."""
    model = writer_model()
    s = similarity(model)
    got = record(model, s, methods=["lorp_iter"], budgets=[1, 2], force_k=2)["lorp_iter"]
    lorp_plans = {n: lorp(s, cluster(s, 2), n)[0] for n in (1, 2)}
    static = iterative(s, functools.partial(left, s), 2, force_k=2, random_state=0, **PROTECT)
    assert got["plans"]["1"]["removed"] == lorp_plans[1] == [1]
    assert [step["block"] for step in got["plans"]["2"]["steps"]] == [1, 3]
    assert lorp_plans[2] == static["removed"] == [1, 5] != got["plans"]["2"]["removed"]
    assert got["measured"] == [[1]] and got["prefix_blocks"] == 2
    assert np.abs(left(s, {1}) - without(model, {1})).max() > 0.3  # the redundancy the removal changed


def test_lorp_kcal_takes_the_k_of_lowest_calibration_ppl():
    model = tiny_model("llama", num_hidden_layers=N)
    s = similarity(model)
    got = record(model, s, methods=["lorp_kcal"], budgets=[2, 3], ks=[2, 3, 4, 9])["lorp_kcal"]
    assert got["rls_k"] == score(s, force_k=None)["k"] and (got["samples"], got["seqlen"]) == IDS.shape
    for n in (2, 3):
        chosen = got["plans"][str(n)]
        assert list(chosen["by_k"]) == ["2", "3", "4"]  # K = 9 exceeds the 8 blocks
        for k, row in chosen["by_k"].items():
            removed, scores = lorp(s, cluster(s, int(k)), n)
            assert row["order"] == [step["block"] for step in scores["steps"]] and sorted(row["order"]) == removed
            with skip_blocks(model, removed):
                assert row["ppl"] == pytest.approx(perplexity(model, IDS, BATCH)["ppl"], rel=1e-5)
        best = min(chosen["by_k"].values(), key=lambda row: row["ppl"])
        assert chosen["by_k"][str(chosen["k"])]["ppl"] == best["ppl"]
        assert chosen["removed"] == sorted(best["order"])
        assert [step["block"] for step in chosen["steps"]] == chosen["by_k"][str(chosen["k"])]["order"]


def test_lorp_kcal_ties_go_to_the_rls_k_else_the_smallest():
    s = similarity(tiny_model("llama", num_hidden_layers=N))
    flat = lambda orders: dict.fromkeys(map(frozenset, orders), 5.0)  # noqa: E731  every plan equally good
    rule = {"random_state": 0, **PROTECT}
    assert k_by_loss(s, [2], [2, 3, 4], flat, rls_k=3, **rule)["2"]["k"] == 3
    assert k_by_loss(s, [2], [4, 3], flat, rls_k=2, **rule)["2"]["k"] == 3
    with pytest.raises(VariantError, match=r"no K of study.ks \[9\] clusters 8 blocks: give K in 2..8"):
        k_by_loss(s, [2], [9], flat, rls_k=2, **rule)


def test_selectors_read_the_record_and_refuse_without_it():
    model = writer_model()
    s = similarity(model)
    given = record(model, s, force_k=2)
    inputs = Inputs(s, variants=given)
    for name in ("lorp_iter", "lorp_kcal"):
        p = plan(name, inputs, 2, label="p20")
        assert (p["name"], p["removed"]) == (f"{name}-p20", given[name]["plans"]["2"]["removed"])
        assert selection_order(p) == [step["block"] for step in given[name]["plans"]["2"]["steps"]]
        with pytest.raises(MissingInputError, match=f"'{name}' needs the variants record from select_variants"):
            plan(name, Inputs(s), 2)
        with pytest.raises(MissingInputError, match=r"plan for 3 blocks in the variants record .* has \['1', '2'\]"):
            plan(name, inputs, 3)
        with pytest.raises(BudgetError, match="budget 7 exceeds the 6 non-protected blocks"):
            plan(name, inputs, 7)
    with pytest.raises(MissingInputError, match=r"has \[\]: rerun select_variants with lorp_kcal"):
        plan("lorp_kcal", Inputs(s, variants={"lorp_iter": given["lorp_iter"]}), 2)
    assert record(model, s, methods=["lorp", "sleb"]) == {}


def counted(call) -> float:
    with FlopCounterMode(display=False) as counter:
        call()
    return counter.get_total_flops()


def test_the_cost_count_is_the_work_the_variants_do():
    """FlopCounterMode over variants_record = lorp.evaluate.cost.variants_flops with masked attention, less each
    Runner's 8-token probe (lorp_iter's and cumulative_ppl's)."""
    model = scaled(tiny_model("llama", num_hidden_layers=N, attn_implementation="eager"), {0: 0.0, 1: 10.0})
    ids = np.random.default_rng(1).integers(3, 320, size=(3, 12))
    s = similarity(model, ids)
    out = {}
    got = counted(lambda: out.update(record(model, s, ids, budgets=[2, 3], force_k=2)))
    probe = 2 * flops_per_token(model, PROBE_TOKENS, masked=True) * PROBE_TOKENS
    assert len(out["lorp_iter"]["measured"]) >= 2
    assert got - 2 * probe == variants_flops(unit(model, 12, masked=True), N, model.config.hidden_size, out)


def test_the_study_reselects_the_variants_on_its_seed_draws(mirror):
    """A seed draw re-selects lorp_iter and lorp_kcal with the model on its own windows and keeps their record."""
    with pytest.MonkeyPatch.context() as mp:
        docs = functools.cache(sources.calibration_docs)
        mp.setattr(sources, "calibration_docs",
                   lambda name, mirror: (docs(name, mirror)[0][:200], *docs(name, mirror)[1:]))
        tokenizer = tiny_tokenizer(mirror)
        model = tiny_model("llama", vocab_size=len(tokenizer))
        calibration = {"corpus": "wikitext2", "n_samples": 4, "seqlen": 16, "seed": 0}
        base = Params()
        params = dataclasses.replace(
            base, calibration=dataclasses.replace(base.calibration, **calibration),
            similarity=dataclasses.replace(base.similarity, batch_size=2),
            importance=dataclasses.replace(base.importance, samples=2, batch_size=2),
            evaluate=dataclasses.replace(base.evaluate, batch_size=2),
            study=dataclasses.replace(base.study, methods=["lorp_iter", "lorp_kcal"], seeds=[1], ks=[2, 3],
                                      n_samples=[], corpora=[]))
        budgets = {"p20": 1, "p34": 2}
        eval_sets = {"wikitext2": np.random.default_rng(0).integers(3, len(tokenizer), size=(2, 16))}

        def selected(seed: int) -> tuple[np.ndarray, dict, list[dict]]:
            ids, _ = sample(tokenizer, **{**calibration, "seed": seed}, mirror=mirror)
            s = similarity(model, ids)
            given = variants_record(model, ids, ids[:2], s, methods=["lorp_iter", "lorp_kcal"], budgets=[1, 2],
                                    ks=[2, 3], force_k=None, random_state=0, **PROTECT, similarity_batch_size=2,
                                    loss_batch_size=2)
            labels = cluster(s, score(s, force_k=None)["k"])
            inputs = Inputs(s, labels, variants=given)
            return s, given, [plan(m, inputs, n, label) for m in ("lorp", *given) for label, n in budgets.items()]

        s, _, plans = selected(0)
        ppl = {"ppl": {p["name"]: {"wikitext2": 1.0, "average": 1.0} for p in plans},
               "eval_windows": {"wikitext2": {"windows": 2, "seqlen": 16}}}
        headline = {"s": s, "rls": score(s, force_k=None), "labels": cluster(s, score(s, force_k=None)["k"]).tolist(),
                    "plans": plans, "ppl": ppl}
        result = study.run_study(model, tokenizer, model_key="tiny", headline=headline, eval_sets=eval_sets,
                                 budgets=budgets, params=params, mirror=mirror)
    _, given, seed_plans = selected(1)
    draw = result["draws"][1]
    timeless = lambda record: {m: {k: v for k, v in r.items() if k != "seconds"} for m, r in record.items()}  # noqa: E731
    assert draw["kind"] == "seed" and timeless(draw["variants"]) == timeless(given)
    assert draw["plans"] == {p["name"]: p["removed"] for p in seed_plans if p["method"] != "lorp"}

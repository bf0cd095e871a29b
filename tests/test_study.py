"""The study grid on a tiny random Llama: the default draw is the headline's, every distinct block set is scored once
(the headline's sets not at all), the K sweep at the RLS K reproduces the headline LoRP plans, bad grids are refused
before any calibration."""

import dataclasses
import functools

import numpy as np
import pytest
from conftest import tiny_model, tiny_tokenizer

from lorp import study
from lorp.data import sources
from lorp.data.calibration import sample
from lorp.errors import LorpError
from lorp.model.blocks import skip_blocks
from lorp.model.forward import perplexity
from lorp.params.config import Params
from lorp.select.cluster import cluster
from lorp.select.methods import plan_name
from lorp.select.plans import Inputs, plan
from lorp.select.rls import score
from lorp.select.similarity import block_input_similarity

pytestmark = pytest.mark.model  # builds or runs a model: not in make test-fast

CALIBRATION = {"corpus": "wikitext2", "n_samples": 4, "seqlen": 16, "seed": 0}
BUDGETS = {"p20": 1, "p34": 2}
HEADLINE_METHODS = ["lorp", "shortgpt", "streamline", "oneshot_ppl"]
PROTECT = {"protect_first": True, "protect_last": True}


def grid(changes: dict | None = None) -> Params:
    """The study's params: the default draw's calibration, the grid, small batches; changes {"section.key": value}."""
    base = Params()
    sections = {
        "calibration": dataclasses.replace(base.calibration, **CALIBRATION),
        "similarity": dataclasses.replace(base.similarity, batch_size=2),
        "rls": dataclasses.replace(base.rls, force_k=None),
        "cluster": dataclasses.replace(base.cluster, random_state=0),
        "allocate": dataclasses.replace(base.allocate, **PROTECT, seed=0),
        "importance": dataclasses.replace(base.importance, samples=2, batch_size=2),
        "evaluate": dataclasses.replace(base.evaluate, batch_size=2),
        "study": dataclasses.replace(base.study, methods=["lorp", "shortgpt", "oneshot_ppl"], seeds=[0, 1],
                                     ks=[2, 3, 4], n_samples=[3], corpora=["ptb", "wikitext2"]),
    }
    for key, value in (changes or {}).items():
        section, name = key.split(".")
        sections[section] = dataclasses.replace(sections[section], **{name: value})
    return dataclasses.replace(base, **sections)


GRID = grid()
CALLS: list[dict] = []  # the plans of each plan_perplexities call


def reference_plan_perplexities(model, ids, plans, *, batch_size, desc="plans"):
    """plan_perplexities' contract: each plan's PPL with its blocks bypassed, as the plain forward under skip_blocks
    computes it. Records each call's plans."""
    CALLS.append(dict(plans))
    ppl = {}
    for name, blocks in plans.items():
        with skip_blocks(model, blocks):
            ppl[name] = perplexity(model, ids, batch_size, desc=f"{desc} {name}")["ppl"]
    return ppl



@pytest.fixture(scope="module")
def setting(mirror):
    """A tiny model, its tokenizer, two evaluation sets, the headline the pipeline would hand over, and the PPL row
    of a block set computed directly.

    Calibration reads the first 200 documents of each corpus: tokenizing a whole corpus per draw would dominate.
    The headline's block importance is made up: only the plans it selects matter here.
    """
    with pytest.MonkeyPatch.context() as mp:
        docs = functools.cache(sources.calibration_docs)
        mp.setattr(sources, "calibration_docs",
                   lambda name, mirror: (docs(name, mirror)[0][:200], *docs(name, mirror)[1:]))
        mp.setattr("lorp.evaluate.perplexity.plan_perplexities", reference_plan_perplexities)
        tokenizer = tiny_tokenizer(mirror)
        model = tiny_model("llama", vocab_size=len(tokenizer))
        rng = np.random.default_rng(0)
        eval_sets = {ds: rng.integers(3, len(tokenizer), size=(2, 16)) for ds in ("wikitext2", "ptb")}
        ids, _ = sample(tokenizer, **CALIBRATION, mirror=mirror)
        sim = block_input_similarity(model, ids, batch_size=2, progress=False)
        rls = score(sim.s, force_k=None)
        labels = cluster(sim.s, rls["k"], random_state=0)
        importance = {"ablation_ppl": [None, 9.0, 7.0, 8.0, 6.0, None], "dense_ppl": 5.0}

        @functools.cache
        def ppl_of(blocks: frozenset[int]) -> dict:
            with skip_blocks(model, blocks):
                return study.ppl_row({ds: perplexity(model, ids, 2)["ppl"] for ds, ids in eval_sets.items()})

        inputs = Inputs(sim.s, labels, angular=sim.angular, importance=importance, **PROTECT)
        plans = [plan(m, inputs, count, label) for m in HEADLINE_METHODS for label, count in BUDGETS.items()]
        ppl = {"ppl": {p["name"]: ppl_of(frozenset(p["removed"])) | {"removed": p["budget"]} for p in plans},
               "eval_windows": {ds: {"windows": 2, "seqlen": 16} for ds in eval_sets}}
        headline = {"s": sim.s, "rls": rls, "labels": labels.tolist(), "plans": plans, "ppl": ppl}
        yield model, tokenizer, eval_sets, headline, ppl_of, mirror


def test_study_grid(setting):
    model, tokenizer, eval_sets, headline, ppl_of, mirror = setting
    CALLS.clear()
    result = study.run_study(model, tokenizer, model_key="tiny", headline=headline, eval_sets=eval_sets,
                             budgets=BUDGETS, params=GRID, mirror=mirror)

    assert set(result) == {"model", "num_blocks", "eval", "budgets", "draws", "seed_summary", "k_sweep", "evaluated",
                           "reused", "seconds"}
    assert result["eval"] == {"datasets": ["wikitext2", "ptb"], "windows": 2, "seqlen": 16}
    assert (result["model"], result["num_blocks"], result["budgets"]) == ("tiny", 6, BUDGETS)
    assert set(result["seconds"]) == {"calibration", "evaluation", "total"}
    draws = result["draws"]
    # seed 0 and corpus wikitext2 are the default draw's own values: skipped
    assert [(d["kind"], d["corpus"], d["n_samples"], d["seed"]) for d in draws] == [
        ("default", "wikitext2", 4, 0), ("seed", "wikitext2", 4, 1), ("size", "wikitext2", 3, 0),
        ("corpus", "ptb", 4, 0)]
    for d in draws:
        assert set(d) == {"kind", "corpus", "n_samples", "seed", "rls", "k", "labels", "plans", "jaccard", "ppl"}
        assert set(d["plans"]) == set(d["jaccard"]) == set(d["ppl"])
        for name, blocks in d["plans"].items():
            assert d["jaccard"][name] == study.jaccard(blocks, draws[0]["plans"][name])

    default, by_name = draws[0], {p["name"]: p for p in headline["plans"]}
    names = [plan_name(m, label) for m in GRID.study.methods for label in BUDGETS]
    assert (default["rls"], default["k"], default["labels"]) == (headline["rls"]["rls"], headline["rls"]["k"],
                                                                 headline["labels"])
    assert default["plans"] == {n: by_name[n]["removed"] for n in names}
    assert default["jaccard"] == dict.fromkeys(names, 1.0)
    assert default["ppl"] == {n: {k: v for k, v in headline["ppl"]["ppl"][n].items() if k != "removed"} for n in names}
    assert list(draws[1]["plans"]) == names and list(draws[2]["plans"]) == list(draws[3]["plans"]) == names[:2]

    # One call per dataset, the same distinct sets, none the headline scored; the rest reused.
    headline_sets = {frozenset(p["removed"]) for p in headline["plans"]}
    sets = {frozenset(b) for d in draws for b in d["plans"].values()} | {frozenset(e["blocks"])
                                                                         for e in result["k_sweep"]}
    new = sets - headline_sets
    assert result["evaluated"] == len(new) and result["reused"] == len(sets & headline_sets) >= 2
    assert len(CALLS) == (len(eval_sets) if new else 0)
    for call in CALLS:
        assert sorted(map(frozenset, call.values()), key=sorted) == sorted(new, key=sorted)
    for d in draws[1:]:
        for name, blocks in d["plans"].items():
            assert d["ppl"][name] == pytest.approx(ppl_of(frozenset(blocks)))

    sweep = result["k_sweep"]
    assert [(e["k"], e["label"]) for e in sweep] == [(k, label) for k in GRID.study.ks for label in BUDGETS]
    at_rls = [e for e in sweep if e["rls_k"]]
    assert [e["k"] for e in at_rls] == [headline["rls"]["k"]] * len(BUDGETS)
    for e in at_rls:
        assert e["blocks"] == by_name[plan_name("lorp", e["label"])]["removed"]
        assert e["ppl"] == default["ppl"][plan_name("lorp", e["label"])]
    for e in sweep:
        assert e["ppl"] == pytest.approx(ppl_of(frozenset(e["blocks"])))

    assert set(result["seed_summary"]) == set(names)
    assert all(row["n"] == 2 for row in result["seed_summary"].values())


@pytest.mark.parametrize("budgets, override, message", [
    (BUDGETS, {"study.ks": [2, 7]}, r"study.ks: K=7 exceeds the model's 6 blocks; use 2..6"),
    (BUDGETS, {"study.n_samples": [1]}, "at least 2 windows"),
    (BUDGETS, {"study.corpora": ["books"]}, "unknown corpus 'books'"),
    ({"p20": 4}, {}, "use budgets below 4"),
    (BUDGETS, {"study.methods": ["lorp", "sleb"]}, r"lack \['sleb-p20', 'sleb-p34'\]"),
    (BUDGETS, {"importance.samples": 5}, "importance.samples=5 exceeds the 4 calibration windows"),
    (BUDGETS, {"rls.force_k": 7}, "rls.force_k: K=7 exceeds"),
])
def test_impossible_grids_are_refused_before_calibration(setting, monkeypatch, budgets, override, message):
    model, tokenizer, eval_sets, headline, _, mirror = setting
    monkeypatch.setattr(study, "sample", lambda *a, **k: pytest.fail("calibrated before refusing"))
    with pytest.raises(LorpError, match=message):
        study.run_study(model, tokenizer, model_key="tiny", headline=headline, eval_sets=eval_sets,
                        budgets=budgets, params=grid(override), mirror=mirror)


def test_headline_measured_on_other_windows_is_refused(setting):
    model, tokenizer, eval_sets, headline, _, mirror = setting
    with pytest.raises(study.StudyError, match="cannot be reused"):
        study.run_study(model, tokenizer, model_key="tiny", headline=headline,
                        eval_sets={ds: ids[:1] for ds, ids in eval_sets.items()}, budgets=BUDGETS, params=GRID,
                        mirror=mirror)


def test_jaccard_and_seed_summary():
    assert study.jaccard([1, 2], [2, 3]) == pytest.approx(1 / 3)
    assert study.jaccard([4, 5], [5, 4]) == 1.0 and study.jaccard([1], [2]) == 0.0
    draws = [{"kind": "default", "plans": {"a": [1], "b": [2]}, "ppl": {"a": {"average": 10.0}, "b": {"average": 1.0}}},
             {"kind": "seed", "plans": {"a": [1]}, "ppl": {"a": {"average": 14.0}}},
             {"kind": "size", "plans": {"a": [3]}, "ppl": {"a": {"average": 99.0}}},
             {"kind": "seed", "plans": {"a": [2]}, "ppl": {"a": {"average": 12.0}}}]
    assert study.seed_summary(draws) == {"a": {"mean": 12.0, "std": 2.0, "n": 3, "values": [10.0, 14.0, 12.0]}}
    assert study.seed_summary(draws[:1]) == {}

"""Zero-shot evaluation through the real lm-eval harness, offline from the dataset mirror, on the tiny model."""

import copy
import json
import math

import numpy as np
import pytest
import yaml
from lm_eval.models.huggingface import HFLM
from lm_eval.tasks import TaskManager

from lorp.data.hub import HubUnreachable
from lorp.errors import LorpError
from lorp.evaluate import zeroshot
from lorp.evaluate.plan_lm import PlanLM
from lorp.evaluate.tasks import TASKS
from lorp.evaluate.zeroshot import ZeroShotError
from lorp.model.load import load_model, load_tokenizer
from lorp.model.patches import Run, first_changed_block
from lorp.model.prune import remove_blocks
from lorp.recover.checkpoints import recovered_model
from lorp.recover.linear import recover

pytestmark = pytest.mark.model  # builds or runs a model: not in make test-fast


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="module")
def tiny(tiny_checkpoint):
    return load_model(tiny_checkpoint), load_tokenizer(tiny_checkpoint)


def test_generated_configs_load_every_mirror_task(mirror, tmp_path):
    files, skipped = zeroshot.mirror_files(list(TASKS), mirror)
    assert set(skipped) == {"hellaswag"} and set(files) == set(TASKS) - {"hellaswag"}
    assert str(mirror) not in skipped["hellaswag"]  # recorded in committed results: no machine paths
    names = zeroshot.write_configs(files, tmp_path)
    arc = yaml.safe_load((tmp_path / "lorp_arc_easy.yaml").read_text())
    assert arc["dataset_kwargs"] == {"data_files": {"test": str(mirror / "ai2_arc-ARC-Easy" / "test.jsonl")}}
    assert arc["test_split"] == "test" and arc["validation_split"] is None and arc["training_split"] is None
    boolq = yaml.safe_load((tmp_path / "lorp_boolq.yaml").read_text())
    assert list(boolq["dataset_kwargs"]["data_files"]) == ["validation"] and boolq["validation_split"] == "validation"
    tasks = TaskManager(include_path=str(tmp_path), include_defaults=False).load(list(names.values()))["tasks"]
    for task, name in names.items():
        docs = tasks[name].eval_docs  # !function helpers (winogrande, copa, race) resolved from the installed folder
        assert len(docs) == sum(1 for _ in open(files[task])), task
        assert len(tasks[name].doc_to_choice(docs[0])) >= 2, task


def test_scores_a_few_examples_and_skips_hellaswag(mirror, tiny):
    out = zeroshot.evaluate(*tiny, tasks=["arc_easy", "boolq", "copa", "hellaswag"], limit=4, batch_size=4,
                             mirror=mirror)
    json.dumps(out)
    ran = {t: r for t, r in out["tasks"].items() if "value" in r}
    assert {t: r["metric"] for t, r in ran.items()} == {"arc_easy": "acc_norm", "boolq": "acc", "copa": "acc"}
    for r in ran.values():
        assert 0 <= r["value"] <= 1 and r["n"] == 4 and isinstance(r["stderr"], float) and r["stderr"] >= 0
    assert set(out["tasks"]["hellaswag"]) == {"skipped"} and "hellaswag" in out["tasks"]["hellaswag"]["skipped"]
    assert math.isclose(out["average"], sum(r["value"] for r in ran.values()) / 3)
    assert out["limit"] == 4 and out["lm_eval_version"] == "0.4.13" and out["data"] == str(mirror)


def test_pruned_model_scores(mirror, tiny_checkpoint):
    model = remove_blocks(load_model(tiny_checkpoint), [1, 4])
    out = zeroshot.evaluate(model, load_tokenizer(tiny_checkpoint), tasks=["winogrande"], limit=2, batch_size=4,
                             mirror=mirror)
    assert out["tasks"]["winogrande"]["n"] == 2 and 0 <= out["average"] <= 1


def test_plan_scores_equal_its_checkpoint(tiny):
    """PlanLM (blocks bypassed, resumed from the dense run's recorded inputs, head on the scored positions only) gives
    the log-likelihoods lm-eval's own HFLM gives on the pruned checkpoint, request by request."""
    model, tokenizer = tiny
    texts = [("The cat sat on", " the mat"), ("A", " b c d e f g"), ("One two three four five six", " seven"),
             ("One two three four five six", " seven eight"), ("Rain", " falls")]
    requests = [((c, x), tokenizer(c).input_ids, tokenizer(x).input_ids) for c, x in texts]
    lm = PlanLM(model, tokenizer, batch_size=2, starts=[1, 2], share_context=False)  # lm-eval's per-choice loop
    widths, heads = [], []
    real_positions = lm.scored_positions

    def spy(inps):
        scored = real_positions(inps)
        widths.append(inps.numel())
        heads.append(len(scored[1]))
        return scored

    lm.scored_positions = spy
    dense = lm._loglikelihood_tokens(requests)
    for removed in ([1, 4], [2], [0, 5]):
        lm.plan = Run(frozenset(removed), {}, min(removed))
        got = lm._loglikelihood_tokens(requests)
        want = HFLM(pretrained=remove_blocks(copy.deepcopy(model), removed), tokenizer=tokenizer,
                    batch_size=2)._loglikelihood_tokens(requests)
        assert [g[1] for g in got] == [w[1] for w in want]
        assert [g[0] for g in got] == pytest.approx([w[0] for w in want], rel=1e-5, abs=1e-5)
        assert got != dense
    assert sum(heads) < sum(widths)  # the head ran on fewer positions than lm-eval's inputs
    assert lm.states and all(set(v) == {1, 2} for v in lm.states.values())

    # A recovered plan: its patch in place, resumed at the first changed block (block 0 carries the first fold).
    fits = recover(model, np.random.default_rng(0).integers(3, 300, (4, 16)), {"p": [1, 4]}, batch_size=2,
                   progress=False)
    patch = fits["p"]["patch"]
    lm.plan = Run(frozenset([1, 4]), patch, first_changed_block(model, [1, 4], patch))
    assert lm.plan.start == 0
    got = lm._loglikelihood_tokens(requests)
    want = HFLM(pretrained=recovered_model(model, [1, 4], patch), tokenizer=tokenizer,
                batch_size=2)._loglikelihood_tokens(requests)
    assert [g[0] for g in got] == pytest.approx([w[0] for w in want], rel=1e-5, abs=1e-5)


def test_plan_with_unknown_blocks_is_refused_before_any_task(mirror, tiny):
    with pytest.raises(LorpError, match=r"plan blocks \[6, 9\] do not exist: the model has blocks 0\.\.5"):
        zeroshot.evaluate_plans(*tiny, {"dense": [], "bad": [1, 6, 9]}, tasks=["boolq"], limit=1, batch_size=1,
                                mirror=mirror)


def test_bos_forced_only_where_the_tokenizer_starts_with_it(mirror, tiny, tiny_checkpoint):
    from tokenizers import processors

    model, plain = tiny
    assert PlanLM(model, plain, batch_size=4).add_bos_token is None
    gemma_like = load_tokenizer(tiny_checkpoint)
    gemma_like.backend_tokenizer.post_processor = processors.TemplateProcessing(
        single="<s> $A", special_tokens=[("<s>", gemma_like.bos_token_id)])
    lm = PlanLM(model, gemma_like, batch_size=4)
    assert lm.add_bos_token is True and lm.tok_encode("a b")[0] == gemma_like.bos_token_id


# The errors below are raised before any model work: model and tokenizer are None.

def test_unknown_task_names_the_closest(mirror):
    with pytest.raises(ZeroShotError, match=r"unknown zero-shot task 'arc-easy' \(did you mean 'arc_easy'\?\).*piqa"):
        zeroshot.evaluate(None, None, tasks=["boolq", "arc-easy"], limit=1, batch_size=1, mirror=mirror)


def test_missing_mirror_file_is_named(mirror, tmp_path):
    (tmp_path / "super_glue-boolq").mkdir()
    (tmp_path / "super_glue-boolq" / "validation.jsonl").symlink_to(mirror / "super_glue-boolq" / "validation.jsonl")
    with pytest.raises(ZeroShotError, match=r"super_glue-copa/validation\.jsonl is missing"):
        zeroshot.evaluate(None, None, tasks=["boolq", "copa"], limit=1, batch_size=1, mirror=tmp_path)


@pytest.mark.parametrize("limit", [0, -3, 2.5, True])
def test_bad_limit(mirror, limit):
    with pytest.raises(ZeroShotError, match="zero-shot limit .* is invalid"):
        zeroshot.evaluate(None, None, tasks=["boolq"], limit=limit, batch_size=1, mirror=mirror)


def test_only_absent_tasks_runs_nothing(mirror):
    out = zeroshot.evaluate(None, None, tasks=["hellaswag"], limit=1, batch_size=1, mirror=mirror)
    assert set(out["tasks"]["hellaswag"]) == {"skipped"} and out["average"] is None


def test_without_mirror_needs_the_hub():
    with pytest.raises(HubUnreachable, match="zero-shot task boolq"):
        zeroshot.evaluate(None, None, tasks=["boolq"], limit=1, batch_size=1, mirror=None)

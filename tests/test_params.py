"""params.yaml is refused early, with the fix named."""

import copy
import dataclasses

import pytest
import yaml

from lorp.evaluate.tasks import DEFAULT_TASKS, TASKS
from lorp.params.config import (
    TASK_NAMES,
    Params,
    ParamsError,
    ZeroshotParams,
    check_seqlen,
    model_budgets,
    preflight,
    validate,
)

DEFAULT = yaml.safe_load(open("params.yaml"))


def with_(path: str, value):
    p = copy.deepcopy(DEFAULT)
    *parents, key = path.split(".")
    node = p
    for part in parents:
        node = node[part]
    node[key] = value
    return p


def test_default_params_are_valid_and_equal_the_dataclass_defaults():
    """params.yaml and the config dataclasses are one set of defaults: neither may drift from the other."""
    params = validate(copy.deepcopy(DEFAULT))
    assert params.allocate.budgets == [0.2, 0.27] and list(params.models) == ["smollm2", "gemma3"]
    assert params == Params()
    as_dict = params.to_dict()
    for model in as_dict["models"].values():  # an absent per-model budget list means allocate.budgets
        assert model.pop("budgets") is None
    assert as_dict == DEFAULT


@pytest.mark.parametrize("path, value, message", [
    ("allocate.methods", ["lorp", "shortgtp"], "unknown value 'shortgtp' (did you mean 'shortgpt'?)"),
    ("allocate.budgets", [0, 6], "allocate.budgets: 0 is neither a block count >= 1"),
    ("allocate.budgets", [1.5], "allocate.budgets: 1.5 is neither a block count >= 1"),
    ("allocate.budgets", [0.2, 0.201], "gives the plan name(s) "),
    ("allocate.budgets", [], "allocate.budgets is empty"),
    ("allocate.budgets", [6, True], "expected a list of int or float"),
    ("models.gemma3.budgets", [0], "models.gemma3.budgets: 0 is neither"),
    ("models.gemma3.dtype", "fp8", "unknown value 'fp8'"),
    ("models.gemma3.sorce", "x", "unknown key 'models.gemma3.sorce' (did you mean 'source'?)"),
    ("models", {}, "'models' must map at least one model key"),
    ("models", {"Big Model": {"source": "x"}}, "must be lower-case identifiers"),
    ("models", {"m": {"dtype": "float32"}}, "models.m.source is missing"),
    ("study.ks", [1], "study.ks: every value must be >= 2"),
    ("allocate.methods", [], "allocate.methods is empty: give at least one value of lorp"),
    ("calibration.corpus", "c5", "unknown value 'c5'"),
    ("rls.force_k", 1, "rls.force_k must be >= 2"),
    ("calibration.n_samples", "64", "expected int"),
    ("evaluate.max_windows", 0, "evaluate.max_windows must be >= 1, or null"),
    ("bench.warmup", -1, "bench.warmup must be >= 0"),
    ("allocate.protect_first", 1, "expected bool"),
    ("zeroshot.limit", "all", "expected int or null"),
])
def test_bad_values(path, value, message):
    with pytest.raises(ParamsError, match=message.replace("(", r"\(").replace(")", r"\)").replace("?", r"\?")):
        validate(with_(path, value))


def test_study_methods_must_be_allocated():
    p = with_("allocate.methods", ["lorp", "shortgpt"])
    unallocated = r"\['angular', 'lorp_iter', 'lorp_kcal', 'oneshot_ppl', 'streamline'\]"
    with pytest.raises(ParamsError, match=r"study.methods " + unallocated + " are not in "):
        validate(p)
    p["study"]["methods"] = ["lorp"]
    assert validate(p).study.methods == ["lorp"]


def test_typo_key_names_the_closest_valid_key():
    p = copy.deepcopy(DEFAULT)
    p["calibration"]["n_sample"] = p["calibration"].pop("n_samples")
    with pytest.raises(ParamsError, match="unknown key 'calibration.n_sample' \\(did you mean 'n_samples'\\?\\)"):
        validate(p)
    p = copy.deepcopy(DEFAULT)
    p["evalute"] = p.pop("evaluate")
    with pytest.raises(ParamsError, match="did you mean 'evaluate'"):
        validate(p)


def test_model_dependent_checks():
    p = validate(copy.deepcopy(DEFAULT))
    preflight(p, "smollm2", 30, 8192)
    assert model_budgets(p, "smollm2", 30) == {"p20": 6, "p27": 8}
    assert model_budgets(p, "gemma3", 18) == {"p20": 4, "p27": 5}  # 3.6 and 4.86, rounded half up
    with pytest.raises(ParamsError, match="28 of them prunable.*use budgets below 28"):
        preflight(validate(with_("allocate.budgets", [6, 28])), "smollm2", 30, 8192)
    with pytest.raises(ParamsError, match=r"models.gemma3.budgets \[0.9\]: the model has 18 blocks"):
        preflight(validate(with_("models.gemma3.budgets", [0.9])), "gemma3", 18, 8192)
    own = validate(with_("models.gemma3.budgets", [3]))
    assert model_budgets(own, "gemma3", 18) == {"3": 3} and model_budgets(own, "smollm2", 30)["p20"] == 6
    with pytest.raises(ParamsError, match="rls.force_k: K=31 exceeds the model's 30 blocks"):
        preflight(validate(with_("rls.force_k", 31)), "smollm2", 30, 8192)
    with pytest.raises(ParamsError, match="study.ks: K=6 exceeds the model's 5 blocks"):
        preflight(p, "smollm2", 5, 8192)
    with pytest.raises(ParamsError, match="model 'llama' is not in params.yaml models"):
        p.model("llama")
    with pytest.raises(ParamsError, match="calibration.seqlen=256 is longer than"):
        preflight(p, "smollm2", 30, 128)
    with pytest.raises(ParamsError, match="evaluate.seqlen=512 is longer than"):
        check_seqlen("evaluate.seqlen", 512, 256)


def test_paper_profile_overrides_are_valid_params():
    """`make paper` passes -S overrides to dvc exp run: each must name a real key and a valid value."""
    import re
    import subprocess

    from conftest import REPO

    cmd = subprocess.run(["make", "-n", "paper", "MODEL=hub:Qwen/Qwen3-8B", "BUDGETS=[7,9]"], cwd=REPO,
                         capture_output=True, text=True, check=True).stdout
    p = copy.deepcopy(DEFAULT)
    for key, value in re.findall(r"-S '([\w.]+)=([^']+)'", cmd):
        *parents, name = key.split(".")
        node = p
        for part in parents:
            node = node[part]
        assert name in node, key
        node[name] = yaml.safe_load(value)
    params = validate(p)
    assert p["calibration"]["seqlen"] == 2048 and p["evaluate"]["max_windows"] is None
    assert p["allocate"]["budgets"] == [7, 9] and p["models"] == {
        "paper": {"source": "hub:Qwen/Qwen3-8B", "dtype": "bfloat16", "device": "cuda"}}
    preflight(params, "paper", 36, 40960)  # Qwen3-8B's depth and context


def test_zeroshot_task_choices_come_from_the_task_table():
    choices = next(f.metadata["choices"] for f in dataclasses.fields(ZeroshotParams) if f.name == "tasks")
    assert TASK_NAMES == choices == tuple(TASKS)
    assert Params().zeroshot.tasks == list(DEFAULT_TASKS)
    assert validate(with_("zeroshot.tasks", list(TASKS))).zeroshot.tasks == list(TASKS)
    with pytest.raises(ParamsError, match=r"zeroshot.tasks: every value: unknown value 'arc_eazy' \(did you mean "
                                          r"'arc_easy'\?\)"):
        validate(with_("zeroshot.tasks", ["arc_eazy"]))

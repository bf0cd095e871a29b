"""`dvc repro` of a tiny configuration in a temporary copy of the project: all stages (conftest's tiny_repro, the
suite's one full run), then no-ops, then only the cells a change touches (a second model, as `dvc status` lists it; one
evaluate key, run)."""

import json
from pathlib import Path

import pytest
import yaml
from pipeline_helpers import TINY_KEY, copy_project, ran_stages, run

from lorp.io import read_json

pytestmark = pytest.mark.slow
PER_MODEL = {"fetch_model", "sample_calibration", "extract_similarities", "score_rls", "cluster", "score_blocks",
             "select_variants", "allocate", "marginal_cost", "prune", "recover", "evaluate", "zeroshot", "bench",
             "study", "summarize"}
METHODS = ["lorp", "lorp_iter", "lorp_kcal", "shortgpt", "streamline", "angular", "sleb", "oneshot_ppl", "last",
           "random"]


@pytest.fixture(scope="module")
def project(tmp_path_factory, tiny_repro) -> Path:
    """A copy of the reproduced tiny project, at the original's depth (its data.mirror is relative)."""
    return copy_project(tiny_repro[0], tmp_path_factory.mktemp("pipeline") / "project")


def cells(key: str) -> set[str]:
    return {f"{stage}@{key}" for stage in PER_MODEL}


def set_params(project: Path, edit) -> None:
    params = yaml.safe_load((project / "params.yaml").read_text())
    edit(params)
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def test_repro_runs_every_stage_then_only_what_changed(project, tiny_repro):
    first = tiny_repro[1]  # the log of the first `dvc repro`, whose results the copy holds
    assert ran_stages(first) == {"check_params", "locate_data", "report"} | cells(TINY_KEY)
    data, results = project / "data" / TINY_KEY, project / "reports" / "results" / TINY_KEY
    assert read_json(project / "data/sources.json")["kind"] == "mirror"  # from params.yaml: no LORP_DATA_DIR
    plans = read_json(data / "plans.json")
    assert [p["name"] for p in plans] == [f"{m}-{b}" for m in METHODS for b in ("p20", "p34")]
    assert [p["budget"] for p in plans[:2]] == [1, 2]
    importance = read_json(data / "importance/importance.json")
    assert importance["ablation_ppl"][0] is None and importance["ablation_ppl"][-1] is None  # protected
    assert all(v > 0 for v in importance["ablation_ppl"][1:-1]) and len(importance["sleb_order"]) == 2
    marginal = read_json(data / "importance/marginal.json")["plans"]
    assert all(sorted(marginal[p["name"]]["order"]) == p["removed"] for p in plans)
    recovery = read_json(results / "recovery.json")["plans"]
    healed = {name for name in recovery if name.endswith("+lora")}
    assert set(recovery) == {f"{p['name']}+linear" for p in plans} | healed and len(healed) == 2  # lorp + best
    assert "lorp-p34+lora" in healed and all(r["max_abs_logit_diff_vs_patched"] <= 1e-4 for r in recovery.values()
                                             if r["recovery"] == "linear")
    ppl = read_json(results / "ppl.json")
    assert set(ppl["ppl"]) == {"dense"} | {p["name"] for p in plans} | set(recovery)
    assert all(ppl["ppl"][m][d] > 1 for m in ppl["ppl"] for d in ("wikitext2", "ptb", "c4"))
    assert ppl["peak_rss_mib"] > 0 and ppl["device"] == "cpu" and {"torch", "transformers"} <= ppl["versions"].keys()
    index = read_json(project / "models" / TINY_KEY / "pruned/index.json")
    assert all(r["max_abs_logit_diff_vs_skip"] <= 1e-5 for r in index.values())
    zeroshot = read_json(results / "zeroshot.json")
    assert set(zeroshot["accuracy"]) == set(ppl["ppl"]) and zeroshot["limit"] == 2
    assert "hellaswag" in zeroshot["skipped"] and "hellaswag" not in zeroshot["accuracy"]["dense"]
    bench = read_json(results / "bench.json")["models"]
    assert set(bench) == set(ppl["ppl"]) - set(recovery) and bench["lorp-p34"]["ideal_speedup"] > 1
    assert all(lo <= b["prefill_speedup"] <= hi for b in bench.values() for lo, hi in [b["prefill_ci"]])
    study = read_json(results / "study.json")
    assert [d["kind"] for d in study["draws"]] == ["default", "seed", "size", "corpus"]
    assert set(study["seed_summary"]) == {f"{m}-{b}" for m in ("lorp", "shortgpt", "oneshot_ppl")
                                          for b in ("p20", "p34")}
    assert {row["k"] for row in study["k_sweep"]} == {2, 3}
    assert (project / "reports/report.html").stat().st_size > 50_000  # figures are embedded

    run(["lorp", "cost", TINY_KEY, "--out", "compute.json"], project)  # make bench's work count
    compute = read_json(project / "compute.json")
    work = compute["models"][TINY_KEY]["stages"]
    assert list(work) == ["extract_similarities", "score_blocks", "marginal_cost", "evaluate", "study",
                          "select_variants"]
    assert all(row["flops"] > 0 and row["seconds"] > 0 and row["floor_s"] > 0 for row in work.values())
    assert compute["models"][TINY_KEY]["matmul_gflops"] > 0
    assert compute["took_s"] == pytest.approx(sum(r["seconds"] for r in work.values()))

    shown = json.loads(run(["dvc", "metrics", "show", "--json"], project))[""]["data"]
    metrics = shown[f"reports/metrics/{TINY_KEY}.json"]["data"]
    assert metrics["lorp"]["p34"]["ppl"] == pytest.approx(ppl["ppl"]["lorp-p34"]["average"], rel=1e-3)
    assert metrics["lorp"]["p34"]["ppl_std"] == pytest.approx(study["seed_summary"]["lorp-p34"]["std"], abs=1e-3)
    assert metrics["dense"]["acc"] == pytest.approx(zeroshot["accuracy"]["dense"]["average"], abs=1e-4)
    assert metrics["selection"]["k"] == read_json(data / "rls/rls.json")["k"]

    # check_params and locate_data are always_changed (the preflight summary; the source lookup); nothing else
    assert ran_stages(run(["dvc", "repro"], project)) == {"check_params", "locate_data"}

    # A second model would rerun only its own cells (and the report); the first model's cells stay cached. This is
    # DVC's own change detection, `dvc status` (the stages a `dvc repro` would run, and why), so it needs no second
    # full run of the pipeline. (`dvc repro --dry` cannot tell: it fails on the new model's first stage whose
    # dependency, an upstream output, does not exist yet.)
    set_params(project, lambda p: p["models"].update(second=dict(p["models"][TINY_KEY])))
    lock = (project / "dvc.lock").read_bytes()
    status = json.loads(run(["dvc", "status", "--json"], project))
    assert set(status) == {"check_params", "locate_data", "report"} | cells("second"), sorted(status)
    assert status["report"] == [{"changed deps": {"params.yaml": {"models": "modified"}}}]  # only the new key
    assert (project / "dvc.lock").read_bytes() == lock and not (project / "data/second").exists()  # nothing ran
    set_params(project, lambda p: p["models"].pop("second"))
    assert set(json.loads(run(["dvc", "status", "--json"], project))) == {"check_params", "locate_data"}

    set_params(project, lambda p: p["evaluate"].update(max_windows=3))
    ran = ran_stages(run(["dvc", "repro"], project))
    assert ran == {"check_params", "locate_data", f"evaluate@{TINY_KEY}", f"study@{TINY_KEY}",
                   f"summarize@{TINY_KEY}", "report"}
    assert read_json(results / "ppl.json")["eval_windows"]["ptb"]["windows"] == 3

    # Back: the same evaluation, bit for bit (evaluate only: what study, summarize and the report make of it is
    # checked above, and DVC's run cache does not hold evaluate's run, so all four would run again for real).
    set_params(project, lambda p: p["evaluate"].update(max_windows=2))
    assert ran_stages(run(["dvc", "repro", f"evaluate@{TINY_KEY}"], project)) == {"check_params", "locate_data",
                                                                                 f"evaluate@{TINY_KEY}"}
    again = read_json(results / "ppl.json")
    assert again["ppl"] == ppl["ppl"]

"""`dvc repro` of a tiny configuration in a temporary copy of the project: all stages, then no-ops."""

import json
from pathlib import Path

import pytest
import yaml
from pipeline_helpers import make_project, ran_stages, run

from lorp.io import read_json

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def project(tmp_path_factory, tiny_checkpoint) -> Path:
    return make_project(tmp_path_factory.mktemp("project"), tiny_checkpoint)


def test_repro_runs_every_stage_then_only_what_changed(project):
    first = run(["dvc", "repro"], project)
    assert ran_stages(first) == {"fetch_model", "sample_calibration", "extract_similarities", "score_rls", "cluster",
                                 "score_blocks", "allocate", "marginal_cost", "prune", "evaluate", "zeroshot", "bench",
                                 "summarize", "report"}
    plans = read_json(project / "data/plans.json")
    methods = ["lorp", "shortgpt", "streamline", "angular", "sleb", "oneshot_ppl", "last", "random"]
    assert [p["name"] for p in plans] == [f"{m}-{b}" for m in methods for b in (1, 2)]
    importance = read_json(project / "data/importance/importance.json")
    assert importance["ablation_ppl"][0] is None and importance["ablation_ppl"][-1] is None  # protected
    assert all(v > 0 for v in importance["ablation_ppl"][1:-1]) and len(importance["sleb_order"]) == 2
    marginal = read_json(project / "data/importance/marginal.json")["plans"]
    assert set(marginal) == {p["name"] for p in plans}
    assert all(sorted(m["order"]) == p["removed"] for p, m in zip(plans, marginal.values(), strict=True))
    ppl = read_json(project / "reports/results/ppl.json")["ppl"]
    assert set(ppl) == {"dense"} | {p["name"] for p in plans}
    assert all(ppl[m][d] > 1 for m in ppl for d in ("wikitext2", "ptb", "c4"))
    assert (project / "reports/report.html").stat().st_size > 50_000  # figures are embedded
    zeroshot = read_json(project / "reports/results/zeroshot.json")
    assert set(zeroshot["accuracy"]) == set(ppl) and zeroshot["limit"] == 2
    assert "hellaswag" in zeroshot["skipped"] and "hellaswag" not in zeroshot["accuracy"]["dense"]
    bench = read_json(project / "reports/results/bench.json")["models"]
    assert set(bench) == set(ppl) and bench["lorp-2"]["ideal_speedup"] > 1
    speedup = read_json(project / "reports/results/bench.json")["importance_speedup"]
    assert speedup["oneshot_ppl"]["identical"] and speedup["sleb_round"]["identical"]
    index = read_json(project / "data/pruned/index.json")
    assert all(r["max_abs_logit_diff_vs_skip"] <= 1e-5 for r in index.values())
    shown = json.loads(run(["dvc", "metrics", "show", "--json"], project))[""]["data"]
    rows = {Path(path).stem: row["data"] for path, row in shown.items()}  # one metrics file (a table row) per model
    assert set(rows) == set(ppl) | {"selection"}
    assert rows["lorp-2"]["ppl"]["average"] == pytest.approx(ppl["lorp-2"]["average"], rel=1e-3)
    assert rows["dense"]["acc"]["copa"] == pytest.approx(zeroshot["accuracy"]["dense"]["copa"], abs=1e-4)
    assert rows["selection"]["k"] == read_json(project / "data/rls/rls.json")["k"]

    assert ran_stages(run(["dvc", "repro"], project)) == set()

    params = yaml.safe_load((project / "params.yaml").read_text())
    params["evaluate"]["max_windows"] = 3
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    assert ran_stages(run(["dvc", "repro"], project)) == {"evaluate", "summarize", "report"}
    assert read_json(project / "reports/results/ppl.json")["eval_windows"]["ptb"]["windows"] == 3

    params["evaluate"]["max_windows"] = 2  # back: a rerun of the same evaluation is bit-for-bit the same
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    ran = ran_stages(run(["dvc", "repro"], project))  # summarize may come from DVC's run cache: same inputs
    assert {"evaluate", "report"} <= ran <= {"evaluate", "summarize", "report"}
    again = read_json(project / "reports/results/ppl.json")
    assert again["ppl"] == ppl and again["device"] == "cpu" and {"torch", "transformers"} <= again["versions"].keys()

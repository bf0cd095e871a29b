"""The report's provenance on cases whose answer is known: a stage's time counted once where its plans share one
timing, and the revision clean while only stage outputs differ from it."""

import subprocess

from lorp.report import provenance


def git(root, *args: str) -> None:
    subprocess.run(["git", "-C", str(root), *args], check=True, capture_output=True)


def run_record(marginal_plans: int) -> dict:
    """One model's records as lorp.report.inputs.load gives them, with every timing the stage table reads."""
    return {"timing": {"seconds": 3.0}, "importance": {"seconds": {"sleb": 5.0, "oneshot_ppl": 2.0}},
            "variants": {"lorp_iter": {"seconds": 4.0}, "note": "not a variant"},
            "marginal": {"plans": {f"p{i}": {"seconds": 120.0} for i in range(marginal_plans)}},
            "recovery": {"seconds": 30.0}, "ppl": {"seconds": 40.0}, "zeroshot": {"seconds": 50.0},
            "study": {"seconds": {"total": 60.0}}}


def test_marginal_cost_counts_its_shared_timing_once():
    """marginal.json stores the whole stage's seconds on each of its plans: 16 plans of 120 s is a 120 s stage."""
    took = provenance.stage_seconds(run_record(16))
    assert took["marginal_cost"] == 120.0
    assert took == {"extract_similarities": 3.0, "score_blocks": 7.0, "select_variants": 4.0, "marginal_cost": 120.0,
                    "recover": 30.0, "evaluate": 40.0, "zeroshot": 50.0, "study": 60.0}


def test_revision_is_clean_while_only_stage_outputs_differ(tmp_path):
    assert provenance.revision(tmp_path) == "not a git checkout"
    git(tmp_path, "init", "-q")
    for path in ("lorp/select.py", "params.yaml", "dvc.lock", "data/m/plans.json", "reports/report.html"):
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text("first\n")
    git(tmp_path, "add", "-A")
    git(tmp_path, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "x")
    head = subprocess.run(["git", "-C", str(tmp_path), "rev-parse", "HEAD"], capture_output=True, text=True,
                          check=True).stdout.strip()
    for path in ("dvc.lock", "data/m/plans.json", "reports/report.html"):  # what dvc repro rewrites mid-run
        (tmp_path / path).write_text("second\n")
    (tmp_path / "lorp/new_module.py").write_text("untracked\n")
    assert provenance.revision(tmp_path) == f"{head} (code and params as committed)"
    (tmp_path / "params.yaml").write_text("second\n")
    (tmp_path / "lorp/select.py").write_text("second\n")
    assert provenance.revision(tmp_path) == f"{head} with uncommitted changes to lorp/select.py, params.yaml"

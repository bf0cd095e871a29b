"""`python -m lorp.report.compare` on a `dvc exp show --json` payload of DVC 3.67's shape (captured from a toy repo)."""

import json
import subprocess

import pandas as pd

from lorp.report import compare


def metrics(dense: float, lorp20: float | None = None, acc: float = 0.4) -> dict:
    """A revision's `metrics` entry: two models' reports/metrics/<model>.json, and a file compare ignores."""
    smol = {"dense": {"ppl": dense, "acc": 0.48}, "selection": {"rls": 0.65, "k": 4},
            "lorp": {"p20": {"ppl": lorp20 or 10 * dense, "acc": acc}, "p27": {"ppl": 20 * dense, "acc": acc}},
            "shortgpt": {"p20": {"ppl": 30 * dense, "acc": acc}}}
    gemma = {"dense": {"ppl": 2 * dense}, "selection": {"rls": None, "k": 2},
             "lorp": {"p20": {"ppl": 5 * dense}}}
    return {"reports/metrics/smollm2.json": {"data": smol}, "reports/metrics/gemma3.json": {"data": gemma},
            "reports/other.json": {"data": {"x": 1}}}


PARAMS = {"evaluate": {"max_windows": 8, "datasets": ["wikitext2", "ptb"]}, "rls": {"force_k": None}}


def params(**changes) -> dict:
    """params.yaml with "section.key" values changed."""
    out = json.loads(json.dumps(PARAMS))
    for key, value in changes.items():
        section, leaf = key.split(".")
        out[section][leaf] = value
    return out


def rev(sha: str, name: str | None, mets: dict, error: dict | None = None, pars: dict | None = None) -> dict:
    return {"rev": sha, "name": name, "error": error, "experiments": None,
            "data": {"rev": sha, "timestamp": "2026-11-25T15:48:30",
                     "params": {"params.yaml": {"data": pars or PARAMS}},
                     "metrics": mets, "deps": {}, "outs": {}, "meta": {}}}


def exp(sha: str, name: str, state: str | None, mets: dict, error: dict | None = None,
        pars: dict | None = None) -> dict:
    executor = state and {"state": state, "name": "dvc-task", "local": {"root": None, "log": None, "pid": None,
                                                                         "returncode": None, "task_id": sha}}
    return {"revs": [rev(sha, name, mets, error, pars)], "executor": executor, "name": name}


PAYLOAD = [
    rev("workspace", None, metrics(60.0)),
    {**rev("a" * 40, "main", metrics(60.0)),
     "experiments": [exp("b" * 40, "big-k", None, metrics(60.0, lorp20=500.0), pars=params(**{"rls.force_k": 6})),
                     exp("c" * 40, "sweep-1", "success", metrics(61.0),
                         pars=params(**{"evaluate.max_windows": 3, "evaluate.datasets": ["ptb"]})),
                     exp("d" * 40, "queued-1", "queued", {}),
                     # a failed experiment's commit carries the stale metrics of the workspace it was queued from
                     exp("e" * 40, "broken", "failed", metrics(99.0), {"msg": "Experiment run failed", "type": ""})]},
    rev("f" * 40, "budgets", metrics(62.0, lorp20=123456.7)),
    rev("9" * 40, "exploded", metrics(62.0, lorp20=439381936.0)),
    rev("0123456" + "0" * 33, None, {"reports/metrics": {"error": {"type": "FileNotFoundError", "msg": "x"}}}),
]


def test_one_row_per_revision_and_model_with_ppl_per_method_and_label():
    frame = compare.table(PAYLOAD)
    assert list(frame.index) == [("workspace", "smollm2"), ("workspace", "gemma3"), ("main", "smollm2"),
                                 ("main", "gemma3"), ("big-k", "smollm2"), ("big-k", "gemma3"),
                                 ("sweep-1", "smollm2"), ("sweep-1", "gemma3"), ("queued-1", "-"), ("broken", "-"),
                                 ("budgets", "smollm2"), ("budgets", "gemma3"), ("exploded", "smollm2"),
                                 ("exploded", "gemma3"), ("0123456", "-")]
    assert list(frame.columns) == [("status", ""), ("dense", ""), ("rls", ""), ("k", ""), ("lorp", "p20"),
                                   ("lorp", "p27"), ("shortgpt", "p20"), ("changed", "")]
    assert frame.loc[("big-k", "smollm2"), ("lorp", "p20")] == 500.0
    assert frame.loc[("sweep-1", "smollm2"), ("dense", "")] == 61.0
    assert frame.loc[("sweep-1", "smollm2"), ("status", "")] == "success"
    assert frame.loc[("big-k", "smollm2"), ("status", "")] == "success"  # `dvc exp run` in the workspace: no queue
    assert frame.loc[("big-k", "gemma3"), ("changed", "")] == "rls.force_k=6"
    assert frame.loc[("sweep-1", "smollm2"), ("changed", "")] == 'evaluate.datasets=["ptb"] evaluate.max_windows=3'
    assert frame.loc[("main", "smollm2"), ("changed", "")] == ""
    assert pd.isna(frame.loc[("main", "gemma3"), ("lorp", "p27")])  # a label one model lacks stays blank
    assert frame.loc[("main", "gemma3"), ("k", "")] == 2


def test_queued_and_failed_rows_are_listed_blank_with_their_status():
    frame = compare.table(PAYLOAD)
    for name, status in (("queued-1", "queued"), ("broken", "failed")):
        row = frame.loc[(name, "-")]
        assert row[("status", "")] == status and row.drop([("status", ""), ("changed", "")]).isna().all()


def test_metric_picks_another_leaf_for_dense_and_methods():
    frame = compare.table(PAYLOAD, "acc")
    assert frame.loc[("main", "smollm2"), ("lorp", "p27")] == 0.4
    assert frame.loc[("main", "smollm2"), ("dense", "")] == 0.48
    assert frame.loc[("main", "smollm2"), ("rls", "")] == 0.65  # rls and k whatever the metric


def test_render_is_compact_and_blank_where_missing():
    text = compare.render(compare.table(PAYLOAD))
    lines = text.splitlines()
    assert lines[0].split() == ["status", "dense", "rls", "k", "lorp", "shortgpt", "changed"]
    assert lines[1].split() == ["p20", "p27", "p20"]
    assert "123,457" in text and "4.39e8" in text and "439381936" not in text and "e+" not in text
    assert "nan" not in text.lower()
    assert lines[[i for i, line in enumerate(lines) if line.startswith("queued-1")][0]].split() == [
        "queued-1", "-", "queued"]
    assert max(len(line) for line in lines) <= 160


def test_render_wraps_a_wide_table_into_blocks_that_fit():
    methods = {f"method{i}": {"p20": {"ppl": 1e3 + i}, "p27": {"ppl": 2e3 + i}} for i in range(12)}
    wide = [rev("a" * 40, "main", {"reports/metrics/m.json": {"data": {"dense": {"ppl": 65.0}, **methods}}})]
    text = compare.render(compare.table(wide), width=80)
    assert max(len(line) for line in text.splitlines()) <= 80 and "method11" in text


def test_main_passes_other_arguments_to_dvc_exp_show(monkeypatch, capsys):
    seen = []

    def fake_run(cmd, **kwargs):
        seen.append(cmd)
        return subprocess.CompletedProcess(cmd, 0, json.dumps(PAYLOAD), "")

    monkeypatch.setattr(compare.subprocess, "run", fake_run)
    compare.main(["-A", "--metric", "acc", "-n", "3"])
    assert seen[0][-6:] == ["exp", "show", "--json", "-A", "-n", "3"]
    assert "sweep-1" in capsys.readouterr().out


def test_recovered_plans_are_columns_of_their_own():
    """metrics' recovery.<method>.<label>.<recovery> leaves become `method+recovery` x label columns, after the
    methods as pruned, for whichever leaf --metric names."""
    smol = {"dense": {"ppl": 60.0, "acc": 0.5}, "selection": {"rls": 0.65, "k": 4},
            "lorp": {"p27": {"ppl": 26234.0, "acc": 0.3}},
            "recovery": {"lorp": {"p27": {"linear": {"ppl": 407.1, "acc": 0.39},
                                          "lora": {"ppl": 215.1, "acc": 0.51}}}}}
    payload = [rev("workspace", None, {"reports/metrics/smollm2.json": {"data": smol}})]
    assert list(compare.table(payload).columns) == [
        ("status", ""), ("dense", ""), ("rls", ""), ("k", ""), ("lorp", "p27"), ("lorp+linear", "p27"),
        ("lorp+lora", "p27"), ("changed", "")]
    row = compare.table(payload, "acc").loc[("workspace", "smollm2")]
    assert (row[("lorp", "p27")], row[("lorp+linear", "p27")], row[("lorp+lora", "p27")]) == (0.3, 0.39, 0.51)

"""Linear replacement of each removed run, fitted on calibration activations and folded into weights the model already
has (ReplaceMe's closed form, ../shared/docs/recovery.md sec. 1): training-free, and the checkpoint keeps its
architecture, so it loads with `from_pretrained` and no custom code.

A removed run [s, e) feeds x_s = y + m (block s-1's residual before its MLP branch, plus the branch m) straight to
block e. Replacing m by m T, where T is the least-squares fit of M T = X_e - Y over calibration tokens (X_e: the dense
model's input to block e), folds exactly into the module that produces m:
- a linear projection (`down_proj` of Llama, Mistral, Qwen2/3, Phi-3; GPT-NeoX's `dense_4h_to_h`; GPT-2's Conv1D
  `c_proj`): W -> T^T W and b -> b T, for any d x d T;
- a norm after the projection (Gemma-2/3 and OLMo-2/3 normalise the MLP branch): only a diagonal T folds, into the
  norm's scale. That is what these architectures get, and the record says so.
Runs are fitted in depth order on the progressively recovered model (a later run's M and Y come from the model with
the earlier runs removed and folded; targets always from the dense model). A run starting at block 0 has no block
before it to fold into: it stays unrecovered, and the record says so.
"""

import time
from collections.abc import Mapping, Sequence

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm
from transformers.pytorch_utils import Conv1D

from lorp.errors import LorpError
from lorp.model.blocks import locate_blocks
from lorp.model.forward import PROBE_TOKENS, Runner, batches, check_indices
from lorp.model.patches import patched

# Where a block's MLP branch ends, in the order tried, and which T folds there. The first that exists wins (Gemma
# blocks have both a down_proj and the norm after it).
FOLD_POINTS = (("post_feedforward_layernorm", "diagonal"), ("mlp.down_proj", "full"),
               ("mlp.dense_4h_to_h", "full"), ("mlp.c_proj", "full"))
FOLD_TOLERANCE = 1e-4  # relative: a fold must reproduce module(x) T on a random input


class RecoveryError(LorpError, ValueError):
    pass


def removed_runs(removed: Sequence[int]) -> list[tuple[int, int]]:
    """The maximal runs [s, e) of consecutive removed blocks, in depth order."""
    runs: list[tuple[int, int]] = []
    for b in sorted(set(removed)):
        if runs and runs[-1][1] == b:
            runs[-1] = (runs[-1][0], b + 1)
        else:
            runs.append((b, b + 1))
    return runs


def fold_point(model, block: int) -> tuple[str, str]:
    """(parameter-owning module's full name, 'full' | 'diagonal') where block's MLP branch ends."""
    path, blocks = locate_blocks(model)
    for name, kind in FOLD_POINTS:
        try:
            blocks[block].get_submodule(name)
        except AttributeError:
            continue
        return f"{path}.{block}.{name}", kind
    raise RecoveryError(f"{type(blocks[block]).__name__} has none of {', '.join(n for n, _ in FOLD_POINTS)}: linear "
                        "recovery does not know where its MLP branch ends; add it to lorp.recover.linear.FOLD_POINTS "
                        "or heal this model with recovery lora")


def _norm_offset(module: nn.Module) -> float:
    """1.0 for a norm that scales by (1 + weight) (Gemma), 0.0 for one that scales by weight (OLMo-2)."""
    x = torch.randn(3, module.weight.shape[0], dtype=module.weight.dtype, device=module.weight.device)
    with patched(module, {"weight": torch.zeros_like(module.weight)}):
        return 0.0 if torch.count_nonzero(module(x)) == 0 else 1.0


def folded(module: nn.Module, kind: str, t: torch.Tensor) -> dict[str, torch.Tensor]:
    """New values of module's parameters (module-relative names) whose output is the old output times t (d x d
    for 'full', a d-vector for 'diagonal'), checked on a random input."""
    weight = module.weight.detach().double()
    if kind == "diagonal":
        offset = _norm_offset(module)
        new = {"weight": (offset + weight) * t - offset}
        width = weight.shape[0]
    elif isinstance(module, nn.Linear):  # weight: out x in, out = d
        new = {"weight": t.T @ weight}
        width = module.in_features
    elif isinstance(module, Conv1D):  # weight: in x out
        new = {"weight": weight @ t}
        width = weight.shape[0]
    else:
        raise RecoveryError(f"cannot fold a linear map into a {type(module).__name__}: lorp.recover.linear.folded "
                            "knows nn.Linear, transformers' Conv1D and norms with a scale")
    if kind == "full" and getattr(module, "bias", None) is not None:
        new["bias"] = module.bias.detach().double() @ t
    new = {k: v.to(module.weight.dtype) for k, v in new.items()}
    x = torch.randn(2, 3, width, dtype=module.weight.dtype, device=module.weight.device,
                    generator=torch.Generator(module.weight.device).manual_seed(0))
    want = module(x).double()
    want = want * t if kind == "diagonal" else want @ t
    with patched(module, new):
        got = module(x).double()
    if (got - want).norm() > FOLD_TOLERANCE * max(float(want.norm()), 1.0):
        raise RecoveryError(f"{type(module).__name__} does not compute output x T after folding T into its weights; "
                            "add its case to lorp.recover.linear.folded")
    return new


def fit(m: torch.Tensor, r: torch.Tensor, kind: str) -> torch.Tensor:
    """T minimising ||M T - R||^2 (float64): full d x d by least squares, or per dimension for 'diagonal'."""
    m, r = m.double(), r.double()
    if kind == "diagonal":
        power = (m * m).sum(0)
        return torch.where(power > 0, (m * r).sum(0) / power.clamp_min(1e-300), torch.ones_like(power))
    return torch.linalg.lstsq(m, r, driver="gelsd").solution  # SVD: the minimum-norm T where M is rank-deficient


def relative_error(m: torch.Tensor, r: torch.Tensor, t: torch.Tensor | None, kind: str) -> float:
    """||M T - R||^2 / ||R||^2 (T = None: the run left unrecovered, x_s fed to block e as it is)."""
    m, r = m.double(), r.double()
    pred = m if t is None else (m * t if kind == "diagonal" else m @ t)
    return float((pred - r).pow(2).sum() / r.pow(2).sum().clamp_min(1e-300))


@torch.no_grad()
def recover(model, ids: np.ndarray, plans: Mapping[str, Sequence[int]], *, batch_size: int,
            progress: bool = True) -> dict[str, dict]:
    """{plan: {"patch": {dense parameter name: folded value}, "runs": [...], "seconds": ...}} for every plan.

    One dense pass records the block inputs the fits need; each plan then runs one pass per removed run, resuming at
    the block being folded from the states of its previous pass and stopping after it (later blocks are bypassed).
    """
    _, blocks = locate_blocks(model)
    n = len(blocks)
    check_indices({b for removed in plans.values() for b in removed}, n, "plan")
    runs = {name: removed_runs(removed) for name, removed in plans.items()}
    if bad := [name for name, removed in plans.items() if len(set(removed)) >= n]:
        raise RecoveryError(f"plans {bad} remove every block: nothing is left to recover")
    windows = batches(model, ids, batch_size)
    runner = Runner(model, windows[0][:1, :PROBE_TOKENS])
    wanted = {e for rs in runs.values() for _, e in rs} | {max(rs[0][0] - 1, 0) for rs in runs.values() if rs}
    dense = dense_states(model, runner, windows, wanted)
    out = {}
    for name in tqdm(plans, desc="linear recovery", unit="plan", disable=not progress):
        start = time.perf_counter()
        out[name] = fit_plan(model, runner, windows, sorted(set(plans[name])), runs[name], dense)
        out[name]["seconds"] = round(time.perf_counter() - start, 3)
    return out


def dense_states(model, runner: Runner, windows: list[torch.Tensor], wanted: set[int]) -> dict[int, list]:
    """{block: its dense input per batch} for the wanted blocks; block n (past the last) is the last block's output."""
    _, blocks = locate_blocks(model)
    n = len(blocks)
    states: dict[int, list] = {b: [] for b in wanted}
    last: list[torch.Tensor] = []
    hook = blocks[-1].register_forward_hook(
        lambda module, args, output: last.append(output[0] if isinstance(output, tuple) else output))
    try:
        for batch in windows:
            _, captured = runner.run(batch, capture=True)
            for b in wanted:
                states[b].append(last[-1] if b == n else captured[b])
    finally:
        hook.remove()
    return states


def fit_plan(model, runner: Runner, windows: list[torch.Tensor], removed: list[int], runs: list[tuple[int, int]],
             dense: dict[int, list]) -> dict:
    """Fold each run of one plan in depth order on the progressively recovered model."""
    n = len(runner.blocks)
    patch: dict[str, torch.Tensor] = {}
    records = []
    resume = 0 if runs[0][0] == 0 else runs[0][0] - 1
    states = dense[resume]
    for s, e in runs:
        if s == 0:
            records.append({"start": s, "end": e, "fold": None, "why": "no block before it to fold into"})
            continue
        j = s - 1
        module_name, kind = fold_point(runner.model, j)
        module = runner.model.get_submodule(module_name)
        m_rows, r_rows, next_states = [], [], []
        branch: list[torch.Tensor] = []
        hook = module.register_forward_hook(lambda mod, args, output, into=branch: into.append(output))
        skipped = set(removed) | set(range(s, n))  # everything after block j passes its input through
        try:
            with patched(runner.model, patch):
                for i, batch in enumerate(windows):
                    _, captured = runner.run(batch, skipped, start=resume, state=states[i], capture=True)
                    m = branch.pop()
                    y = captured[s] - m  # block j's output is block s's input; y is the rest of the residual
                    m_rows.append(m.reshape(-1, m.shape[-1]).float())
                    r_rows.append((dense[e][i] - y).reshape(-1, m.shape[-1]).float())
                    next_states.append(captured[j])
        finally:
            hook.remove()
        m_all, r_all = torch.cat(m_rows), torch.cat(r_rows)
        t = fit(m_all, r_all, kind)
        prefix = module_name + "."
        patch |= {prefix + k: v for k, v in folded(module, kind, t).items()}
        records.append({"start": s, "end": e, "fold": kind, "module": module_name, "tokens": int(len(m_all)),
                        "error_unrecovered": relative_error(m_all, r_all, None, kind),
                        "error_recovered": relative_error(m_all, r_all, t, kind)})
        resume, states = j, next_states
    return {"patch": patch, "runs": records}

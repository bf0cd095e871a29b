"""How the report prints numbers, shared by its sentences and its tables so both show a value the same way:
precision the measurement supports, units spelled out, bytes in MiB/GiB."""

import math

MISSING = "–"


def ppl(value: float | None) -> str:
    """Perplexity with about four significant digits, one style at every size (grouped digits past 1000)."""
    if value is None or not math.isfinite(value):
        return MISSING
    return f"{value:,.0f}" if value >= 1000 else f"{value:.1f}" if value >= 100 else f"{value:.2f}"


def number(value: float | None, digits: int) -> str:
    return MISSING if value is None else f"{value:.{digits}f}"


def size(n_bytes: float, unit: str | None = None) -> str:
    """Bytes as MiB or GiB (unit: one of them for every cell of a table, else by the value)."""
    unit = unit or ("GiB" if n_bytes >= 2**30 else "MiB")
    return f"{n_bytes / 2**30:.2f} GiB" if unit == "GiB" else f"{n_bytes / 2**20:.1f} MiB"


def seconds(value: float) -> str:
    """A duration as s, min or h."""
    return f"{value:.1f} s" if value < 120 else f"{value / 60:.1f} min" if value < 7200 else f"{value / 3600:.2f} h"


def factor(value: float) -> str:
    """A multiplicative factor short enough for a heatmap cell: 0.61, 3.9, 70, 2e9."""
    if value < 0.01:
        return f"{value:.0e}".replace("e-0", "e-")  # 1e-4, not 0.00013: fits a heatmap cell
    return f"{value:.2g}" if value < 10 else f"{value:.0f}" if value < 1000 else f"{value:.0e}".replace("e+0", "e")


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    return "\n".join(["| " + " | ".join(header) + " |", "|" + "|".join(["---"] * len(header)) + "|"]
                     + ["| " + " | ".join(cells) + " |" for cells in rows])


def value_range(values: list[float], digits: int) -> str:
    """'low–high' of values as `number` writes them, one value when both read alike."""
    low, high = number(min(values), digits), number(max(values), digits)
    return low if low == high else f"{low}–{high}"

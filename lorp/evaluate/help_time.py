"""`make bench`'s figure for the `lorp` command's help: the seconds from start to exit of `lorp --help` and of each
subcommand's `--help`, median of a few runs, against a 2-second limit. The parser imports no heavy library, so a
slow help means one crept in; this measures it as a user meets it (a fresh process, the installed script)."""

import argparse
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

from lorp.io import write_json

LIMIT_S = 2.0


def subcommands() -> list[str]:
    """The `lorp` subcommands as the installed script's own usage line lists them ({prune,inspect,…}), so a new
    one is timed too."""
    usage = subprocess.run([str(_script()), "--help"], check=True, capture_output=True, text=True).stdout
    found = re.search(r"\{([\w,-]+)\}", usage)
    if found is None:
        raise RuntimeError(f"`lorp --help` lists no subcommands:\n{usage}")
    return sorted(found.group(1).split(","))


def _script() -> Path:
    return Path(sys.executable).parent / "lorp"


def help_seconds(command: list[str], repeats: int) -> float:
    """Median wall seconds of `lorp <command> --help` in a new process; a failing help is an error."""
    exe = _script()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run([str(exe), *command, "--help"], check=True, capture_output=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def measure(repeats: int) -> dict:
    seconds = {" ".join(["lorp", *command]): round(help_seconds(command, repeats), 3)
               for command in [[], *([name] for name in subcommands())]}
    return {"limit_s": LIMIT_S, "repeats": repeats, "seconds": seconds,
            "within_limit": all(s < LIMIT_S for s in seconds.values())}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m lorp.evaluate.help_time", description=__doc__)
    parser.add_argument("--out", type=Path, required=True, help="the JSON record to write")
    parser.add_argument("--repeats", type=int, default=5, help="runs per command (default %(default)s)")
    args = parser.parse_args(argv)
    record = measure(args.repeats)
    write_json(args.out, record)
    for command, seconds in record["seconds"].items():
        print(f"{command} --help: {seconds:.2f} s")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

"""Stage 0: which dataset source this run reads (the offline mirror, checked by its MANIFEST, or the Hub).

Every stage that reads a dataset depends on this record, so switching source reruns exactly those stages, and a
mirror is identified by its manifest's content, not its path: clones anywhere share the cache.
"""

import argparse

from lorp.data.sources import mirror_root, source_record
from lorp.io import write_json
from lorp.params.config import load
from lorp.stage import run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()

    record = source_record(mirror_root(load().data.mirror))
    write_json(args.out, record)
    print(record)


if __name__ == "__main__":
    run(main)

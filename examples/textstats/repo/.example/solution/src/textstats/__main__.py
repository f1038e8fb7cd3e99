"""Command line: python -m textstats FILE prints the report."""

import sys

from textstats.report import report


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m textstats FILE", file=sys.stderr)
        return 2
    with open(argv[0], encoding="utf-8") as fh:
        print(report(fh.read()))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

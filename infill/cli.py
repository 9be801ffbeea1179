"""The `infill` command."""

from __future__ import annotations

import argparse
import sys


def build_parser() -> argparse.ArgumentParser:
    from infill.train import cli as train_cli

    parser = argparse.ArgumentParser(prog="infill", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    train_cli.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())

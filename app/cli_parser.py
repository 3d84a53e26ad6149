"""The argparse pieces every seqsched command is built from: one-line errors that point at the
right `--help`, comma-or-space lists, `--version`."""

from __future__ import annotations

import argparse


# options a user brings from another command: where they belong
ELSEWHERE = {"--policies": "; simulate runs one --policy: compare and sweep take --policies"}


class Parser(argparse.ArgumentParser):
    """argparse with a one-line error (the usage is one `--help` away); an unknown option is
    reported by the (sub)command that parsed last, whose --help lists its options."""

    def parse_known_args(self, args=None, namespace=None):
        namespace, extra = super().parse_known_args(args, namespace)
        namespace.__dict__.setdefault("_parsed_by", self)   # the innermost command sets it first
        return namespace, extra

    def parse_args(self, args=None, namespace=None):
        namespace, extra = self.parse_known_args(args, namespace)
        parsed_by = namespace.__dict__.pop("_parsed_by")
        if extra:
            hint = next((h for flag, h in ELSEWHERE.items() if flag in extra), "")
            parsed_by.error(f"unrecognized arguments: {' '.join(extra)}{hint}")
        return namespace

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


class Version(argparse.Action):
    """`seqsched --version`: the installed package's version, looked up only when asked."""

    def __init__(self, option_strings, dest, **kw):
        super().__init__(option_strings, dest, nargs=0, help="print the version and exit")

    def __call__(self, parser, namespace, values, option_string=None):
        from importlib.metadata import PackageNotFoundError, version
        try:
            text = version("seqsched")
        except PackageNotFoundError:
            text = "(not installed; run `make install`)"
        print(f"seqsched {text}")
        parser.exit(0)


class SpecList(argparse.Action):
    """`--policies fcfs sjf` or `--policies fcfs,sjf` (as vLLM users type lists)."""

    def __call__(self, parser, namespace, values, option_string=None):
        setattr(namespace, self.dest, [v for x in values for v in x.split(",") if v])

"""The ``dispatcher`` command: a thin shell over the library.

Exit codes: 0 when the run completes (whatever the per-endpoint outcomes), 2 for a bad
config or usage (one line naming the file and key), 1 for an unexpected failure.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import orjson

from dispatcher.config import load_settings
from dispatcher.errors import DispatchError

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def _run(args: argparse.Namespace) -> int:
    from dispatcher.dispatch import run

    settings = load_settings(args.config)
    if args.segment_format:
        from dataclasses import replace

        settings = replace(settings, segment_format=args.segment_format)

    def started(run_id: str) -> None:
        print(f"RunId {run_id}", flush=True)

    summary = run(
        settings,
        segment=args.segment,
        out_dir=args.out,
        on_start=started,
        progress=not args.quiet,
    )
    print(orjson.dumps(summary.to_json(), option=orjson.OPT_INDENT_2).decode())
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="dispatcher", description=__doc__.splitlines()[0] if __doc__ else None)
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    run = sub.add_parser("run", help="run a campaign send over a segment")
    run.add_argument("config", help="campaign config (TOML)")
    run.add_argument("--segment", help="segment source (overrides [segment] source)")
    run.add_argument("--segment-format", choices=("jsonl", "csv"),
                     help="segment format (default: from the file extension)")
    run.add_argument("--out", default="out", help="output directory (default: out)")
    run.add_argument("--quiet", action="store_true", help="no progress line on stderr")
    run.set_defaults(func=_run)
    try:
        from dispatcher.lambda_host.command import register
    except ImportError:  # pragma: no cover - the local host is optional while building
        pass
    else:
        register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except DispatchError as exc:
        print(f"dispatcher: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("dispatcher: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

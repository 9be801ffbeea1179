"""The `infill` command: complete, demo, serve, batch, eval, bench, train, trace."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

EXAMPLE = Path(__file__).parent / "examples" / "stats.py"


class UsageError(Exception):
    """Bad arguments or input: printed as one line, exit status 2."""


def positive_int(text: str) -> int:
    """An integer of at least 1, for argparse (a clear message otherwise)."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"use an integer of at least 1, not {text!r}")
    return value


def add_model_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("models (default: the shipped models)")
    group.add_argument("--target", help="AR FIM model folder or cached HF repo id")
    group.add_argument("--diffusion", help="diffusion model folder or cached HF repo id")
    group.add_argument("--device", help="cpu, cuda or cuda:N (default: a GPU if there is one)")
    group.add_argument("--dtype", help="float32, bfloat16 or float16 (default: by device)")
    group.add_argument("--fim-format", help="override the detected AR prompt format")
    group.add_argument("--diffusion-family", help="override the detected family: infill, llada, dream")
    group.add_argument("--trust-remote-code", action="store_true",
                       help="allow a checkpoint's own modelling code (LLaDA, Dream)")
    group.add_argument("--diffusion-length", choices=("ar", "pad"), default="ar",
                       help="how the diffusion engine sizes a gap: the AR model's completion's "
                            "length (default), or an oversized gap shortened by pads")


def model_config(args):
    from infill.engines import ModelConfig

    return ModelConfig(target=args.target, diffusion=args.diffusion, device=args.device,
                       dtype=args.dtype, fim_format=args.fim_format,
                       diffusion_family=args.diffusion_family,
                       trust_remote_code=args.trust_remote_code,
                       diffusion_length=args.diffusion_length)


def add_request_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--engine", choices=("auto", "speculative", "diffusion"), default="auto")
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--temperature", type=float, default=0.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--multiline", choices=("auto", "yes", "no"), default="auto")


def read_source(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise UsageError(f"{path}: is a directory, not a file") from None
    except UnicodeDecodeError:
        raise UsageError(f"{path}: not UTF-8 text") from None


def split_at(text: str, line: int, col: int) -> tuple[str, str]:
    """(prefix, suffix) at a 1-based line and column (columns count characters)."""
    lines = text.split("\n")
    if not 1 <= line <= len(lines):
        raise UsageError(f"--line {line} is outside the file (1 to {len(lines)})")
    if not 1 <= col <= len(lines[line - 1]) + 1:
        raise UsageError(f"--col {col} is outside line {line} (1 to {len(lines[line - 1]) + 1})")
    offset = sum(len(l) + 1 for l in lines[: line - 1]) + col - 1
    return text[:offset], text[offset:]


def make_request(args, prefix: str, suffix: str, path: str | None, engine: str | None = None):
    from infill.request import InfillRequest

    multiline = {"auto": None, "yes": True, "no": False}[args.multiline]
    try:
        return InfillRequest(prefix=prefix, suffix=suffix, path=path,
                             engine=engine or args.engine, max_tokens=args.max_tokens,
                             temperature=args.temperature, top_p=getattr(args, "top_p", 1.0),
                             seed=args.seed, candidates=getattr(args, "candidates", 1),
                             multiline=multiline)
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def cmd_complete(args) -> int:
    from infill.engines import Engines

    prefix, suffix = split_at(read_source(args.file), args.line, args.col)
    request = make_request(args, prefix, suffix, str(args.file))
    completions = Engines(model_config(args)).complete(request)
    if args.json:  # the first completion's fields, and every candidate's when asked for several
        out = completions[0].to_json()
        if args.candidates > 1:
            out["candidates"] = [c.to_json() for c in completions]
        print(json.dumps(out))
        return 0
    for i, completion in enumerate(completions):
        if len(completions) > 1:
            print(f"--- candidate {i + 1} ---", file=sys.stderr)
        print(completion.text)
        print(f"[{completion.engine} {completion.model}: {completion.tokens} tokens, "
              f"{completion.forwards} forwards, {completion.ms:.0f} ms]", file=sys.stderr)
    return 0


# Cursor spots in the example file: (line, col, what the user is doing there).
DEMO_SPOTS = [(8, 9, "the next line of a method"),
              (12, 16, "inside a call, with code after the cursor"),
              (17, 5, "the body of a function")]


def cmd_demo(args) -> int:
    from rich.console import Console
    from rich.table import Table

    from infill.engines import Engines

    engines = Engines(model_config(args))
    text = read_source(args.file)
    table = Table(title=f"infill demo on {args.file.name} (shipped models unless configured)")
    for column in ("line:col", "engine", "completion", "tokens", "forwards", "ms", "guard"):
        table.add_column(column)
    spots = DEMO_SPOTS if args.file == EXAMPLE else [(args.line, args.col, "")]
    for line, col, _ in spots:
        prefix, suffix = split_at(text, line, col)
        for engine in ("speculative", "diffusion"):
            c = engines.complete(make_request(args, prefix, suffix, str(args.file), engine))[0]
            verdict = "truncated" if c.truncated else ("ok" if c.valid else "rejected")
            table.add_row(f"{line}:{col}", engine, repr(c.text), str(c.tokens), str(c.forwards),
                          f"{c.ms:.0f}", verdict)
    console = Console(width=160)
    console.print(table)
    console.print("An empty completion: the model proposed nothing, or the syntax guard cut what "
                  "would break the file. The shipped models are small and undertrained: MODELS.md.")
    return 0


def cmd_serve(args) -> int:
    from lsp_server.options import MODEL_FIELDS, ServerOptions
    from lsp_server.server import serve

    if args.tcp and not args.tcp.rpartition(":")[2].isdigit():
        raise UsageError(f"--tcp {args.tcp}: use HOST:PORT, e.g. 127.0.0.1:7777")
    # The command line's model options are the defaults; initializationOptions override them.
    # Read from args directly: ModelConfig's module imports torch, which the server loads in
    # the background, after answering `initialize`.
    defaults = ServerOptions(**{name: getattr(args, name) for name in MODEL_FIELDS
                                if hasattr(args, name)})
    return serve(tcp=args.tcp, defaults=defaults, log_file=args.log_file, verbose=args.verbose)


def cmd_batch(args) -> int:
    from infill import batch

    return batch.run(args, model_config(args))


def cmd_eval(args) -> int:
    from infill import evaluate

    return evaluate.run(args)


def add_serve_parser(sub) -> None:
    serve = sub.add_parser("serve", help="the language server (stdio unless --tcp)")
    serve.add_argument("--tcp", metavar="HOST:PORT", help="listen on TCP instead of stdio")
    serve.add_argument("--log-file", help="write the server's log here (default: stderr)")
    serve.add_argument("-v", "--verbose", action="store_true", help="log every message")
    add_model_options(serve)
    serve.set_defaults(run=cmd_serve)


def build_serve_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="infill")
    add_serve_parser(parser.add_subparsers(dest="command", required=True))
    return parser


def build_parser() -> argparse.ArgumentParser:
    from infill.train import cli as train_cli

    parser = argparse.ArgumentParser(prog="infill", description="Local fill-in-the-middle code completion.")
    sub = parser.add_subparsers(dest="command", required=True)

    complete = sub.add_parser("complete", help="fill the gap at a position of a file")
    complete.add_argument("file", type=Path)
    complete.add_argument("--line", type=int, required=True, help="1-based line")
    complete.add_argument("--col", type=int, required=True, help="1-based column (characters)")
    complete.add_argument("--json", action="store_true", help="print one JSON object")
    add_request_options(complete)
    complete.add_argument("--top-p", type=float, default=1.0)
    complete.add_argument("--candidates", type=int, default=1,
                          help="up to this many different completions (with --temperature > 0)")
    add_model_options(complete)
    complete.set_defaults(run=cmd_complete)

    demo = sub.add_parser("demo", help="complete a few spots of an example file with both engines")
    demo.add_argument("file", type=Path, nargs="?", default=EXAMPLE)
    demo.add_argument("--line", type=int, default=1)
    demo.add_argument("--col", type=int, default=1)
    add_request_options(demo)
    add_model_options(demo)
    demo.set_defaults(run=cmd_demo)

    bench = sub.add_parser("bench", help="benchmarks: print a table, write JSON")
    bench_sub = bench.add_subparsers(dest="bench_command", required=True)
    from infill.bench import diffusion as bench_diffusion
    from infill.bench import speculative as bench_speculative

    bench_speculative.add_parser(bench_sub)
    bench_diffusion.add_parser(bench_sub)
    from infill import batch as bench_batch

    bench_batch.add_bench_parser(bench_sub)

    add_serve_parser(sub)

    from infill import batch as batch_cli
    from infill import evaluate as eval_cli

    batch = sub.add_parser("batch", help="fill every task of a JSONL file (resumable, batched)")
    batch_cli.add_arguments(batch)
    add_request_options(batch)
    add_model_options(batch)
    batch.set_defaults(run=cmd_batch)

    evaluate = sub.add_parser("eval", help="score `infill batch` output: pass@k, exact match, ...")
    eval_cli.add_arguments(evaluate)
    evaluate.set_defaults(run=cmd_eval)

    train_cli.add_parser(sub)
    from infill.traces import cli as trace_cli

    trace_cli.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["serve"]:
        # An editor waits for the server's first answer: build only serve's parser, whose
        # imports leave torch to the background model loading (0.5 s instead of 2).
        args = build_serve_parser().parse_args(argv)
        errors: tuple[type[Exception], ...] = (UsageError,)
    elif argv[:1] == ["trace"]:
        # `infill trace` builds only its own parser: the other subcommands' modules import
        # torch (seconds), which a trace replay (the server loads the models) never needs.
        from infill.traces.cli import TraceUsageError, build_parser as build_trace_parser

        args = build_trace_parser().parse_args(argv)
        errors = (UsageError, TraceUsageError)
    else:
        from infill.models.loading import ModelError

        args = build_parser().parse_args(argv)
        errors = (UsageError, ModelError)
    try:
        return args.run(args)
    except errors as exc:
        print(f"infill: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("infill: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

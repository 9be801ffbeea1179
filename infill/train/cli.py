"""`infill train ...`: prep, ar, diffusion and heldout (the figures in MODELS.md)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from infill.cli import positive_int


def add_parser(subparsers) -> None:
    train = subparsers.add_parser("train", help="train the embedded default models (GPU)")
    sub = train.add_subparsers(dest="train_command", required=True)

    prep = sub.add_parser("prep", help="collect the corpus, split it, train the tokenizer")
    prep.add_argument("--out", type=Path, required=True)
    prep.add_argument("--roots", type=Path, nargs="*", help="default: this Python's stdlib and site-packages")
    prep.add_argument("--extra-root", type=Path, action="append", dest="extra_roots",
                      help="another folder of packages (e.g. from scripts/extra_corpus.sh); only "
                           "the packages the roots lack are taken. Repeatable")
    prep.add_argument("--vocab", type=int, default=8192)
    prep.add_argument("--tokenizer-chars", type=int, default=60_000_000)
    prep.add_argument("--tokenizer", type=Path, help="reuse this tokenizer instead of training one")
    prep.set_defaults(run=_prep)

    for kind, shapes in (("ar", ("target", "target_l", "draft", "tiny")), ("diffusion", ("diffusion", "tiny"))):
        p = sub.add_parser(kind, help=f"train an {kind} model for a time budget (resumable)")
        p.add_argument("--data", type=Path, required=True, help="folder written by `infill train prep`")
        p.add_argument("--out", type=Path, required=True)
        p.add_argument("--shape", choices=shapes, default=shapes[0])
        p.add_argument("--minutes", type=float, default=10.0)
        p.add_argument("--batch-size", type=int, default=64)
        p.add_argument("--seq-len", type=int, default=1024 if kind == "ar" else 512)
        p.add_argument("--lr", type=float, default=2e-3)
        p.add_argument("--warmup-steps", type=int, default=300)
        p.add_argument("--fim-rate", type=float, default=0.9)
        p.add_argument("--package-alpha", type=float, default=1.0,
                       help="draw packages in proportion to size**alpha (<1 favours small ones)")
        p.add_argument("--pack", action="store_true",
                       help="AR: several shorter examples per row (more gaps per token)")
        p.add_argument("--middle-weight", type=float, default=1.0,
                       help="AR: loss weight of the tokens of the gap")
        if kind == "ar":
            p.add_argument("--rename-rate", type=float, default=0.0,
                           help="share of examples whose own names are renamed to other "
                                "names of the corpus (infill.train.augment; 0: none)")
        if kind == "diffusion":
            p.add_argument("--surplus", choices=("uniform", "engine"), default="uniform",
                           help="pads after a gap's middle: uniform up to 128 tokens (the "
                                "first run's recipe), or up to the engine's gap size (24 / "
                                "64: the shipped model's second run)")
        p.add_argument("--stop-after", type=float,
                       help="minutes: stop this run early (checkpointed); the schedule still "
                            "follows --minutes, so a later --resume continues it")
        p.add_argument("--workers", type=int, default=4)
        p.add_argument("--seed", type=int, default=0)
        p.add_argument("--eval-every", type=float, default=60.0, help="seconds")
        p.add_argument("--resume", type=Path, help="a checkpoint folder to continue from")
        p.add_argument("--device")
        p.add_argument("--compile", action="store_true")
        p.add_argument("--max-steps", type=int)
        p.set_defaults(run=_train, kind=kind)

    export = sub.add_parser("export", help="checkpoints of a training run -> the shipped models")
    export.add_argument("work_dir", type=Path, help="folder with target/, draft/, diffusion/")
    export.add_argument("--out", type=Path, help="default: the package's models/default")
    export.add_argument("--only", nargs="+", choices=("target", "draft", "diffusion"),
                        help="export these roles and keep the others (default: all three)")
    export.add_argument("--int8", action="store_true",
                        help="store matrices as int8 with a scale per row: half the bytes")
    export.set_defaults(run=_export)

    table = sub.add_parser("next-tokens", help="count the likeliest next tokens of the corpus "
                                               "for the n-gram drafter's trees (CPU)")
    table.add_argument("--model", type=Path, help="the AR model whose tokenizer counts, and where "
                                                  "the table goes (default: the shipped target)")
    table.add_argument("--roots", type=Path, nargs="*",
                       help="default: this Python's stdlib and site-packages")
    table.add_argument("--files", type=positive_int, default=4000,
                       help="training files to count, drawn at random (seeded)")
    table.add_argument("--top", type=positive_int, default=4, help="next tokens kept per context")
    table.add_argument("--min-count", type=positive_int, default=None,
                       help="contexts seen fewer times are left out (default: "
                           "infill.train.next_tokens.MIN_COUNT)")
    table.set_defaults(run=_next_tokens)

    held = sub.add_parser("heldout", help="exact match on held-out single-line infill tasks")
    held.add_argument("--data", type=Path,
                      help="folder with heldout.jsonl (default: the held-out packages installed here)")
    held.add_argument("--tasks", type=int, default=500)
    held.add_argument("--packages", nargs="+", metavar="PACKAGE",
                      help="draw tasks from these held-out packages only (default: all of them)")
    held.add_argument("--engine", choices=("speculative", "diffusion", "both"), default="both")
    held.add_argument("--models", type=Path, help="model folder (default: the shipped models)")
    held.add_argument("--device")
    held.add_argument("--diffusion-length", choices=("ar", "pad"), default="ar",
                      help="how the diffusion engine sizes a gap (ModelConfig.diffusion_length)")
    held.add_argument("--workers", type=positive_int, default=1,
                      help="processes on the CPU, each with its own models and every N-th task")
    held.add_argument("--json", type=Path, help="write the results here")
    held.set_defaults(run=_heldout)


def _prep(args) -> int:
    from infill.train.prepare import prepare

    print(json.dumps(prepare(args.out, args.roots, args.vocab, args.tokenizer_chars,
                                     args.tokenizer, args.extra_roots), indent=2))
    return 0


def _next_tokens(args) -> int:
    from infill.models.loading import DEFAULT_MODELS
    from infill.train.next_tokens import MIN_COUNT, build

    print(json.dumps(build(args.model or DEFAULT_MODELS["target"], args.roots, args.files,
                           args.top, args.min_count or MIN_COUNT), indent=2))
    return 0


def _train(args) -> int:
    from infill.train.loop import TrainConfig, train

    cfg = TrainConfig(
        kind=args.kind, shape=args.shape, data_dir=str(args.data), out_dir=str(args.out),
        minutes=args.minutes, batch_size=args.batch_size, seq_len=args.seq_len, lr=args.lr,
        warmup_steps=args.warmup_steps, fim_rate=args.fim_rate, workers=args.workers,
        package_alpha=args.package_alpha, pack=args.pack, middle_weight=args.middle_weight,
        surplus=getattr(args, "surplus", "uniform"), stop_after=args.stop_after,
        rename_rate=getattr(args, "rename_rate", 0.0),
        seed=args.seed, eval_every_s=args.eval_every, device=args.device, compile=args.compile,
        resume=str(args.resume) if args.resume else None, max_steps=args.max_steps,
    )
    Path(cfg.out_dir).mkdir(parents=True, exist_ok=True)
    state = train(cfg)
    print(json.dumps({k: state[k] for k in ("step", "tokens", "elapsed_s")}))
    return 0


def _export(args) -> int:
    from infill.train.export import DEFAULT_DIR, export

    roles = tuple(args.only) if args.only else ("target", "draft", "diffusion")
    print(json.dumps(export(args.work_dir, args.out or DEFAULT_DIR, roles, args.int8), indent=2))
    return 0


def _heldout(args) -> int:
    from infill.train.heldout import run

    return run(args)

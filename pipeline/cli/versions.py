"""Operate the TF Serving model base path by hand: list versions, show a version's model
card, roll back, write TF Serving's deployment files (model config with version labels,
batching parameters, monitoring config). Reads ``[pipeline]`` from luigi.cfg (or --config).

    spam-ham-versions list                               # a table; --json for scripts
    spam-ham-versions show live                          # the live version's model card
    spam-ham-versions show 3 --json
    spam-ham-versions rollback 3 --reason "v4 blocks too much ham"
    spam-ham-versions model-config                       # serve the newest version
    spam-ham-versions model-config --stable 3 --canary 4
    spam-ham-versions diff live 4 --input incoming/day.csv  # what version 4 would change
    spam-ham-versions --config /etc/spam-ham/luigi.cfg list
"""
from __future__ import annotations

import argparse
import configparser
import json
import os
import sys
import textwrap
from pathlib import Path

from pipeline.cli import exit_codes_epilog
from pipeline.serving import model_base

EXIT_OK, EXIT_MODEL_BASE, EXIT_USAGE, EXIT_INPUT = 0, 1, 2, 3
EXIT_CODES = {
    EXIT_OK: "success",
    EXIT_MODEL_BASE: "the model base path is not in the state the command needs (no such "
                     "version, nothing published yet, a version with neither a model card "
                     "nor a provenance); the message on standard error says which",
    EXIT_USAGE: "usage error (unknown command or option, a VERSION that is not a number "
                "or 'live', a --config file that does not exist or cannot be read)",
    EXIT_INPUT: "diff: the --input file cannot be read as a batch input (missing, not "
                "UTF-8, no text column, ...); the message says what to fix",
}
LIST_COLUMNS = ("version", "live", "exported_at", "training_run", "export_id",
                "copy_of_version")
PROVENANCE_KEYS = ("export_id", "training_run", "exported_at", "copy_of_version")
SHORT_EXPORT_ID = 8


def _version_argument(text: str) -> int | str:
    if text == "live" or (text.isdigit() and int(text) > 0):
        return text if text == "live" else int(text)
    raise argparse.ArgumentTypeError(f"{text!r} is neither a version number nor 'live'")


def build_parser() -> argparse.ArgumentParser:
    epilog = exit_codes_epilog(EXIT_CODES)
    config_help = ("a luigi config file, read after luigi's usual ones (as LUIGI_CONFIG_PATH "
                   "is), so its [pipeline] outputs_root and model_name win")
    parser = argparse.ArgumentParser(prog="spam-ham-versions", description=__doc__,
                                     epilog=epilog,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, metavar="FILE", help=config_help)
    # Also accepted after the command; SUPPRESS keeps a subcommand from resetting it to None.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", type=Path, metavar="FILE", default=argparse.SUPPRESS,
                        help=config_help)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND",
                                     help="what to do (COMMAND --help says more)")

    def command(name: str, help_: str) -> argparse.ArgumentParser:
        return commands.add_parser(name, help=help_, description=textwrap.fill(help_, 80),
                                   epilog=epilog,
                                   parents=[common],
                                   formatter_class=argparse.RawDescriptionHelpFormatter)

    listing = command("list", "versions as a table: the live one, when each was exported, "
                              "from which training run and export, and which version a "
                              "rollback copied")
    listing.add_argument("--json", action="store_true",
                         help="print JSON instead ({model_base_path, versions: [{version, "
                              "live, export_id, training_run, exported_at, copy_of_version}]})")
    show = command("show", "print a version's model card (assets.extra/model_card.md); for "
                           "a version exported before model cards, its provenance")
    show.add_argument("version", type=_version_argument, metavar="VERSION",
                      help="a version number, or 'live' for the version TF Serving's default "
                           "policy serves (the newest)")
    show.add_argument("--json", action="store_true",
                      help="print the model card's JSON (assets.extra/model_card.json)")
    diff = command("diff", "score a file with versions A and B and show what B would "
                           "change: messages newly blocked and newly passed, the score "
                           "distributions' PSI, the largest flips; writes shadow.json and "
                           "shadow_flips.csv (review-queue columns, to label)")
    diff.add_argument("a", type=_version_argument, metavar="A",
                      help="the baseline: a version number or 'live'")
    diff.add_argument("b", type=_version_argument, metavar="B",
                      help="the version compared with it: a number or 'live'")
    diff.add_argument("--input", type=Path, required=True, metavar="FILE",
                      help="messages in any format BatchScore reads (CSV, TSV, JSON Lines, "
                           "Parquet, text), read in chunks")
    diff.add_argument("--output", type=Path, metavar="DIR",
                      help="where the summary and flips go (default: "
                           "<outputs_root>/diffs/<A>-vs-<B>-<input name>)")
    diff.add_argument("--batch-size", type=int, default=4096,
                      help="messages per signature call (default 4096, as BatchScore)")
    diff.add_argument("--chunk-rows", type=int, default=50_000,
                      help="rows read at a time (default 50000, as BatchScore)")
    diff.add_argument("--concurrent-batches", type=int, default=3,
                      help="batches in the signatures at a time (default 3, as BatchScore)")
    diff.add_argument("--json", action="store_true", help="print the summary's JSON")
    back = command("rollback", "republish VERSION as the newest version, so it is served")
    back.add_argument("version", type=int, metavar="VERSION",
                      help="the version to serve again (see list)")
    back.add_argument("--reason", default="", help="recorded in the audit log")
    labels = command("model-config", "write TF Serving's model config (newest version, or "
                                     "stable and canary labels), batching parameters and "
                                     "monitoring config")
    labels.add_argument("--stable", type=int, metavar="VERSION",
                        help="serve this version, labelled stable")
    labels.add_argument("--canary", type=int, metavar="VERSION",
                        help="and this one, labelled canary")
    labels.add_argument("--folder", type=Path,
                        help="where to write the files (default: <outputs_root>/serving, "
                             "next to the base path)")
    return parser


def _read_config(parser: argparse.ArgumentParser, path: Path | None) -> None:
    """Have luigi read ``path`` after its usual files, or stop with a usage error (2)."""
    if path is None:
        return
    import luigi.configuration
    from luigi.configuration.core import PARSERS

    if not path.is_file():
        parser.error(f"--config {path}: no such file")
    default = os.environ.get("LUIGI_CONFIG_PARSER", "cfg")
    if PARSERS.get(path.suffix[1:], PARSERS.get(default)) is not PARSERS.get(default):
        parser.error(f"--config {path}: luigi reads its settings with its {default!r} parser, "
                     f"not the one for {path.suffix} files (LUIGI_CONFIG_PARSER picks it)")
    try:
        luigi.configuration.add_config_path(str(path))
    except (configparser.Error, UnicodeDecodeError) as error:
        parser.error(f"--config {path}: not a luigi config file ({error})")


def _base_from_config() -> tuple[Path, str]:
    from pipeline.settings import PipelineSettings, serving_base

    return serving_base(), PipelineSettings().model_name


def _listing(base: Path) -> dict:
    live = model_base.live_version(base)
    rows = [{"version": v, "live": v == live,
             **{k: model_base.version_provenance(base, v).get(k) for k in PROVENANCE_KEYS}}
            for v in model_base.serving_versions(base)]
    return {"model_base_path": str(base), "versions": rows}


def _table(listing: dict) -> str:
    """``listing`` as aligned columns under the base path; '*' marks the live version."""
    lines = [f"model base path: {listing['model_base_path']}"]
    if not listing["versions"]:
        return "\n".join(lines + ["no versions yet (PromoteVersion publishes the first)"])
    cells = [list(LIST_COLUMNS)]
    for row in listing["versions"]:
        values = {**row, "live": "*" if row["live"] else "",
                  "export_id": (row["export_id"] or "")[:SHORT_EXPORT_ID] or None}
        cells.append(["-" if values[c] is None else str(values[c]) for c in LIST_COLUMNS])
    widths = [max(len(row[i]) for row in cells) for i in range(len(LIST_COLUMNS))]
    lines += ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip()
              for row in cells]
    return "\n".join(lines)


def _show(base: Path, version: int | str, as_json: bool) -> str:
    """The version's model card (Markdown, or its JSON), or a summary of its provenance."""
    version = model_base.published_version(base, version)
    folder = base / str(version)
    card = model_base.MODEL_CARD_JSON_FILE if as_json else model_base.MODEL_CARD_FILE
    if (folder / card).is_file():
        return (folder / card).read_text(encoding="utf-8").rstrip("\n")
    provenance = model_base.version_provenance(base, version)
    if not provenance:
        raise model_base.ServingError(
            f"version {version} under {base} has neither {card} nor "
            f"{model_base.PROVENANCE_FILE}: it was not published by this pipeline")
    older = not any((folder / name).is_file() for name in
                    (model_base.MODEL_CARD_FILE, model_base.MODEL_CARD_JSON_FILE))
    note = (f"version {version} has no model card ({card})"
            + (": it was exported before model cards existed" if older else "")
            + f"; its provenance ({model_base.PROVENANCE_FILE}) says:")
    summary = {key: provenance.get(key) for key in
               ("exported_at", "training_run", "export_id", "threshold")}
    if provenance.get("copy_of_version") is not None:
        summary["copy_of_version"] = provenance["copy_of_version"]
    test = (provenance.get("metrics") or {}).get("test") or {}
    if as_json:
        return json.dumps({"version": version, "model_card": None, "note": note,
                           "provenance": {**summary, "metrics": {"test": test}}}, indent=2)
    fields = {**summary, **{f"test {key}": value for key, value in test.items()}}
    width = max(map(len, fields)) + 2
    return "\n".join([note] + [f"  {key:<{width}}{_figure(value)}"
                               for key, value in fields.items()])


def _diff(base: Path, args: argparse.Namespace) -> str:
    """Versions A and B on ``args.input`` (``pipeline.scoring.shadow``): the summary."""
    from pipeline.process_output import stderr_sent_to
    from pipeline.scoring import batch_files, shadow
    from pipeline.scoring.spark_engine import input_stem
    from pipeline.serving import batching
    from pipeline.settings import outputs_root

    a, b = (model_base.published_version(base, v) for v in (args.a, args.b))
    if not args.input.is_file():
        raise batch_files.BatchInputError(f"--input {args.input} does not exist")
    folder = args.output or (outputs_root() / "diffs"
                             / f"{a}-vs-{b}-{input_stem(str(args.input))}")
    # TensorFlow's C++ start-up lines go to the log, as in a pipeline run
    with stderr_sent_to(outputs_root() / "logs" / "stderr.log"):
        if args.concurrent_batches > 1:  # as BatchScore: one TensorFlow thread per batch
            batching.one_tensorflow_thread_per_batch()
        from pipeline.serving.exported_model import ServingSignature

        summary = shadow.compare(
            batch_files.read_messages(args.input, args.chunk_rows),
            shadow.Side(f"version {a}", a, ServingSignature(base / str(a))),
            shadow.Side(f"version {b}", b, ServingSignature(base / str(b))),
            folder, args.batch_size, args.concurrent_batches,
            about={"input": str(args.input)})
    return json.dumps(summary, indent=2, ensure_ascii=False) if args.json else shadow.table(summary)


def _figure(value) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{key} {_figure(item)}" for key, item in value.items())
    return "-" if value is None else f"{value:.4f}" if isinstance(value, float) else str(value)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    _read_config(parser, args.config)

    base, model_name = _base_from_config()
    try:
        if args.command == "list":
            listing = _listing(base)
            print(json.dumps(listing, indent=2) if args.json else _table(listing))
        elif args.command == "show":
            print(_show(base, args.version, args.json))
        elif args.command == "diff":
            from pipeline.scoring.batch_files import BatchInputError

            try:
                print(_diff(base, args))
            except BatchInputError as error:
                print(f"error: {error}", file=sys.stderr)
                return EXIT_INPUT
        elif args.command == "rollback":
            version = model_base.rollback(base, args.version, args.reason)
            print(json.dumps({"rolled_back_to": args.version, "new_version": version,
                              "model_base_path": str(base)}))
        else:
            from pipeline.serving import deployment

            files = model_base.write_deployment_files(args.folder or base.parent, model_name,
                                                   base, args.stable, args.canary)
            command = deployment.server_command(files, labels=args.stable is not None)
            print(json.dumps({**{flag: str(path) for flag, path in files.items()},
                              "server_command": " ".join(command)}, indent=2))
    except model_base.ServingError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_MODEL_BASE
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())

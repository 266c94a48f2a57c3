"""Operate the TF Serving model base path by hand: list versions, roll back, write TF
Serving's deployment files (model config with version labels, batching parameters,
monitoring config). Reads ``[pipeline]`` from luigi.cfg.

    spam-ham-versions list
    spam-ham-versions rollback 3 --reason "v4 blocks too much ham"
    spam-ham-versions model-config                       # serve the newest version
    spam-ham-versions model-config --stable 3 --canary 4
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from pipeline.serving import model_base


def _base_from_config() -> tuple[Path, str]:
    from pipeline.settings import PipelineSettings, serving_base

    return serving_base(), PipelineSettings().model_name


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="spam-ham-versions", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("list", help="versions, the live one, and where each came from")
    back = commands.add_parser("rollback", help="republish VERSION as the newest version")
    back.add_argument("version", type=int)
    back.add_argument("--reason", default="", help="recorded in the audit log")
    labels = commands.add_parser(
        "model-config", help="write TF Serving's model config (newest version, or stable and "
                             "canary labels), batching parameters and monitoring config")
    labels.add_argument("--stable", type=int, help="serve this version, labelled stable")
    labels.add_argument("--canary", type=int, help="and this one, labelled canary")
    labels.add_argument("--folder", type=Path,
                        help="default: <outputs_root>/serving (next to the base path)")
    args = parser.parse_args(argv)

    base, model_name = _base_from_config()
    try:
        if args.command == "list":
            live = model_base.live_version(base)
            rows = [{"version": v, "live": v == live,
                     **{k: model_base.version_provenance(base, v).get(k) for k in
                        ("export_id", "training_run", "exported_at", "copy_of_version")}}
                    for v in model_base.serving_versions(base)]
            print(json.dumps({"model_base_path": str(base), "versions": rows}, indent=2))
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
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""A command-line client for the served model: raw text in, JSON out.

REST needs only ``requests``; gRPC uses ``tensorflow-serving-api``'s stubs. Neither needs
the vocabulary: the model takes raw text.

    spam-ham-client "WINNER!! claim your prize" "see you at 8?"
    spam-ham-client --api classify "Free entry to win"
    spam-ham-client --api status
    spam-ham-client --grpc localhost:8500 "WIN cash now"
"""
from __future__ import annotations

import argparse
import json
import sys

from pipeline.serving.client import ConnectionFailed, GrpcClient, RestClient, ServerError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="spam-ham-client", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("texts", nargs="*", help="messages to score")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--rest", default="http://localhost:8501", help="REST base URL")
    where.add_argument("--grpc", metavar="HOST:PORT", help="use gRPC at this address")
    parser.add_argument("--api", choices=["predict", "classify", "status", "metadata"],
                        default="predict")
    parser.add_argument("--model", default="spam_ham")
    pinned = parser.add_mutually_exclusive_group()
    pinned.add_argument("--version", type=int, help="ask this version")
    pinned.add_argument("--label", help="ask this version label (stable, canary)")
    parser.add_argument("--signature", help="signature name (default per API)")
    parser.add_argument("--timeout", type=float, default=10.0)
    args = parser.parse_args(argv)
    if args.api in ("predict", "classify") and not args.texts:
        parser.error(f"--api {args.api} needs at least one message")

    try:
        if args.grpc:
            if args.api not in ("predict", "classify"):
                parser.error("over gRPC this client offers --api predict and classify")
            client = GrpcClient(args.grpc, args.model, args.version, args.label, args.timeout)
        else:
            client = RestClient(args.rest, args.model, args.version, args.label, args.timeout)
        if args.api in ("predict", "classify"):
            call = getattr(client, args.api)
            result = call(args.texts, args.signature) if args.signature else call(args.texts)
        else:
            result = getattr(client, args.api)()
    except ConnectionFailed as error:
        print(json.dumps({"error": str(error), "kind": "connection"}), file=sys.stderr)
        return 2
    except ServerError as error:
        print(json.dumps({"error": str(error), "kind": "server"}), file=sys.stderr)
        return 1
    print(json.dumps(result, indent=2, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())

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
import urllib.parse

from pipeline.cli import exit_codes_epilog
from pipeline.serving.client import ConnectionFailed, GrpcClient, RestClient, ServerError

# Distinct from argparse's 2, so a script can tell a typo from a server that is down.
EXIT_OK, EXIT_USAGE, EXIT_CONNECTION, EXIT_SERVER = 0, 2, 3, 4
EXIT_CODES = {
    EXIT_OK: "success: the answer is printed as JSON on standard output",
    1: "an unexpected error (a Python traceback on standard error)",
    EXIT_USAGE: "usage error (bad option or value, no message for --api predict/classify, "
                "a --api that gRPC does not offer)",
    EXIT_CONNECTION: "could not connect: nothing answered at the address, or not within "
                     "--timeout (JSON with \"kind\": \"connection\" on standard error)",
    EXIT_SERVER: "the server answered with an error, e.g. an unknown model, version or "
                 "signature (JSON with \"kind\": \"server\" on standard error)",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="spam-ham-client", description=__doc__,
                                     epilog=exit_codes_epilog(EXIT_CODES),
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("texts", nargs="*", metavar="TEXT",
                        help="messages to score (needed by --api predict and classify)")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--rest", default="http://localhost:8501", metavar="URL",
                       help="TF Serving's REST base URL (default %(default)s)")
    where.add_argument("--grpc", metavar="HOST:PORT",
                       help="use TF Serving's gRPC API at this address instead of REST "
                            "(predict and classify only)")
    parser.add_argument("--api", choices=["predict", "classify", "status", "metadata"],
                        default="predict",
                        help="predict: spam probability and label per message; classify: "
                             "ham and spam scores; status: the versions the server has "
                             "loaded; metadata: the signatures (default %(default)s)")
    parser.add_argument("--model", default="spam_ham",
                        help="model name on the server, [pipeline] model_name "
                             "(default %(default)s)")
    pinned = parser.add_mutually_exclusive_group()
    pinned.add_argument("--version", type=int,
                        help="ask this version (default: the version the server serves by "
                             "default, the newest)")
    pinned.add_argument("--label", help="ask this version label (stable, canary; see "
                                        "spam-ham-versions model-config)")
    parser.add_argument("--signature",
                        help="signature name (default per API: serving_default for "
                             "predict, classify for classify)")
    parser.add_argument("--timeout", type=float, default=10.0, metavar="SECONDS",
                        help="seconds to wait for an answer (default %(default)s)")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.api in ("predict", "classify") and not args.texts:
        parser.error(f"--api {args.api} needs at least one message")
    if not args.grpc and not _is_http_url(args.rest):
        parser.error(f"--rest {args.rest!r} is not an http:// or https:// URL with a host "
                     f"(and a numeric port, if any)")

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
        return EXIT_CONNECTION
    except ServerError as error:
        print(json.dumps({"error": str(error), "kind": "server"}), file=sys.stderr)
        return EXIT_SERVER
    print(json.dumps(result, indent=2, ensure_ascii=False))
    return 0


def _is_http_url(url: str) -> bool:
    try:
        parts = urllib.parse.urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname)


if __name__ == "__main__":
    sys.exit(main())

"""``python -m kling_provider.testing``: serve the EvoLink simulator on a local port.

The first line on stdout is the base URL (use it as the connection's host and ``files_host``);
the port is bound before that line is printed, so a client may connect as soon as it reads it.
With no flags a task completes in about 3 s; ``--realistic`` gives 60-180 s like the vendor.
"""

from __future__ import annotations

import argparse
import socket
import sys
from collections.abc import Sequence

import uvicorn

from kling_provider.testing.app import DEFAULT_API_KEY, EvoLinkSimulator
from kling_provider.testing.clock import SimClock
from kling_provider.testing.validation import READINGS


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m kling_provider.testing",
        description="Serve a local simulator of EvoLink's video API (Kling 3.0) and file API.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind (default: 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8790, help="port (0 = any free port; default: 8790)")
    parser.add_argument("--realistic", action="store_true", help="vendor-like timing: 60-180 s per task, 25%% jitter")
    parser.add_argument("--speed", type=float, default=1.0, help="clock speed (2 = twice as fast; default: 1)")
    parser.add_argument(
        "--generation-seconds", type=float, default=3.0, help="task length without --realistic (default: 3)"
    )
    parser.add_argument("--error-shape", choices=("string", "integer"), default="string", help="error code style")
    keys = parser.add_mutually_exclusive_group()
    keys.add_argument("--api-key", action="append", help=f"accepted key, repeatable (default: {DEFAULT_API_KEY})")
    keys.add_argument("--accept-any-key", action="store_true", help="accept any non-empty bearer key")
    parser.add_argument("--rate-limit-rpm", type=int, default=None, help="requests per key per minute before 429")
    parser.add_argument("--link-lifetime", type=float, default=86400.0, help="result link lifetime, s (default 86400)")
    parser.add_argument("--credits", type=float, default=None, help="account balance (default: unlimited)")
    parser.add_argument("--seed", type=int, default=0, help="seed for jitter and ids")
    parser.add_argument(
        "--reading",
        choices=READINGS,
        default="product-page",
        help="where the product page and the OpenAPI document disagree (kling-v3-image-to-video's end frame "
        "alone, aspect_ratio): accept either's form (product-page, default) or the OpenAPI's only (openapi)",
    )
    parser.add_argument("--log-level", default="warning", help="uvicorn log level (default: warning)")
    return parser


def build_simulator(args: argparse.Namespace) -> EvoLinkSimulator:
    return EvoLinkSimulator(
        api_keys=args.api_key or (DEFAULT_API_KEY,),
        accept_any_key=args.accept_any_key,
        clock=SimClock(speed=args.speed),
        generation_seconds=None if args.realistic else args.generation_seconds,
        duration_jitter=0.25 if args.realistic else 0.0,
        error_shape=args.error_shape,
        rate_limit_rpm=args.rate_limit_rpm,
        link_lifetime=args.link_lifetime,
        credits=args.credits,
        seed=args.seed,
        reading=args.reading,
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    sim = build_simulator(args)
    family = socket.AF_INET6 if ":" in args.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((args.host, args.port))
    port = sock.getsockname()[1]
    host = f"[{args.host}]" if ":" in args.host else args.host
    print(f"http://{host}:{port}", flush=True)
    key_note = "any key" if args.accept_any_key else ", ".join(args.api_key or [DEFAULT_API_KEY])
    print(f"EvoLink simulator: accepting {key_note}; Ctrl-C to stop", file=sys.stderr, flush=True)
    config = uvicorn.Config(
        sim, log_level=args.log_level, access_log=False, lifespan="off", timeout_graceful_shutdown=1
    )
    uvicorn.Server(config).run(sockets=[sock])
    return 0


if __name__ == "__main__":
    sys.exit(main())

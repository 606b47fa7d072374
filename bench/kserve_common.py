"""What the KServe-style reference servers of the benchmark share: kserve's own
command line plus --model_dir and --quiet, and starting kserve.ModelServer."""

import argparse
import logging

import kserve


def make_parser(model_dir_help: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(parents=[kserve.model_server.parser])
    parser.add_argument("--model_dir", required=True, help=model_dir_help)
    parser.add_argument("--quiet", action="store_true",
                        help="Disable per-request log lines (access log, latency and timing)")
    return parser


def serve(model: kserve.Model, args) -> None:
    """Loads the model and runs a stock kserve.ModelServer with it (blocks)."""
    if args.quiet:
        for name in ("uvicorn.access", kserve.logging.KSERVE_TRACE_LOGGER_NAME):
            logging.getLogger(name).setLevel(logging.WARNING)
    model.load()
    kserve.ModelServer(enable_latency_logging=False if args.quiet else args.enable_latency_logging
                       ).start([model])

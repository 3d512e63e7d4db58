"""`python -m deploy.lab.simulator --config FILE`: run the traffic simulator in this process."""

from __future__ import annotations

import argparse
import json
import logging
import sys

import structlog

from .server import SimulatorConfig, serve


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m deploy.lab.simulator")
    parser.add_argument("--config", required=True, help="JSON file with a SimulatorConfig")
    args = parser.parse_args(argv)
    structlog.configure(
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        wrapper_class=structlog.make_filtering_bound_logger(logging.INFO),
    )
    with open(args.config) as f:
        config = SimulatorConfig.from_dict(json.load(f))
    serve(config)


if __name__ == "__main__":
    main()

"""Run the simulator of every registered provider in one process:
``python -m providers.simulator --host 127.0.0.1 --port 8591``.

One process only: tasks, images and fault rules live in this process's memory.
Environment: ``SIM_LATENCY_SECONDS`` (Bria, default 2.0), ``SIM_API_TOKEN`` (unset: any token
works) and each provider simulator's own variables (see docs/providers/).
"""

from __future__ import annotations

import argparse

import uvicorn

from providers.simulator.app import create_app


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m providers.simulator", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8591)
    parser.add_argument("--log-level", default="info")
    args = parser.parse_args(argv)
    uvicorn.run(create_app(), host=args.host, port=args.port, log_level=args.log_level, workers=1)


if __name__ == "__main__":
    main()

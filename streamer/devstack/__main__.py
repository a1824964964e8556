"""``python -m streamer.devstack {fetch|up|down|status}``: the stack without the full CLI.

``fetch`` pre-downloads the Kafka jars (setup scripts and CI caches use it).
"""

from __future__ import annotations

import argparse
import sys

from streamer.devstack import LocalKafka, StackError, stack_down, stack_status, stack_up
from streamer.settings import get_settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m streamer.devstack")
    parser.add_argument("command", choices=["fetch", "up", "down", "status"])
    args = parser.parse_args(argv)
    settings = get_settings()
    try:
        if args.command == "fetch":
            print(LocalKafka(settings).fetch_jars())
            return 0
        action = {"up": stack_up, "down": stack_down, "status": stack_status}[args.command]
        print(action(settings).model_dump_json(indent=2))
    except StackError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

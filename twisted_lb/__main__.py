"""
Command line of twisted_lb: C{python -m twisted_lb convert FILE} prints a
configuration file (Apache httpd or native) as native TOML.
"""

from __future__ import annotations

import argparse
import sys

from twisted_lb.config import ConfigError, read_config, to_toml


def _convert(args: argparse.Namespace) -> int:
    try:
        config, warnings = read_config(args.file)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for warning in warnings:
        print(f"warning: {args.file}: {warning}", file=sys.stderr)
    sys.stdout.write(to_toml(config))
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m twisted_lb",
        description="twisted_lb, a load-balancing reverse proxy for Tomcat clusters.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    convert = commands.add_parser(
        "convert",
        help="print a configuration (Apache httpd .conf or native .toml) as native TOML",
        description="Read FILE (Apache httpd directives or native TOML) and print it as native "
        "TOML. Warnings go to standard error; errors go there too, with exit status 2.",
    )
    convert.add_argument("file", metavar="FILE")
    convert.set_defaults(run=_convert)
    args = parser.parse_args(argv)
    return int(args.run(args))


if __name__ == "__main__":
    sys.exit(main())

"""
Command line of twisted_lb: C{python -m twisted_lb convert FILE} prints a
configuration file (Apache httpd or native) as native TOML;
C{python -m twisted_lb admin-password} prints a hash for C{admin.password}.
"""

from __future__ import annotations

import argparse
import sys

from twisted_lb.config import ConfigError, read_config, to_toml


def _convert(args: argparse.Namespace) -> int:
    try:
        config, warnings = read_config(args.file)
    except ConfigError as e:
        for warning in getattr(e, "warnings", ()):
            print(f"warning: {args.file}: {warning}", file=sys.stderr)
        for error in getattr(e, "errors", (e,)):
            print(f"error: {error}", file=sys.stderr)
        return 2
    for warning in warnings:
        print(f"warning: {args.file}: {warning}", file=sys.stderr)
    sys.stdout.write(to_toml(config, warnings))
    return 0


def _admin_password(args: argparse.Namespace) -> int:
    import getpass

    from twisted_lb.admin.passwords import hash_password

    if args.stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = getpass.getpass("admin password: ")
        if getpass.getpass("again: ") != password:
            print("error: the passwords differ", file=sys.stderr)
            return 2
    if not password:
        print("error: empty password", file=sys.stderr)
        return 2
    print(hash_password(password))
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m twisted_lb",
        description="twisted_lb, a load-balancing reverse proxy for Tomcat clusters.",
    )
    from twisted_lb.tap import version_line

    parser.add_argument("--version", action="version", version=version_line())
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    convert = commands.add_parser(
        "convert",
        help="print a configuration (Apache httpd .conf or native .toml) as native TOML",
        description="Read FILE (Apache httpd directives or native TOML) and print it as native "
        "TOML. Warnings go to standard error; errors go there too, with exit status 2.",
    )
    convert.add_argument("file", metavar="FILE")
    convert.set_defaults(run=_convert)
    password = commands.add_parser(
        "admin-password",
        help="print a password hash for the admin listener's admin.password",
        description="Ask for a password (twice) and print its PBKDF2 hash, to put in "
        "admin.password or in the file named by admin.password_file.",
    )
    password.add_argument("--stdin", action="store_true", help="read the password from standard input")
    password.set_defaults(run=_admin_password)
    args = parser.parse_args(argv)
    return int(args.run(args))


if __name__ == "__main__":
    sys.exit(main())

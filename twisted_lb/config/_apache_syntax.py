"""
The syntax of Apache httpd configuration files: lines, continuations,
comments, quoted arguments, sections and C{Include}.

This module knows nothing of what the directives mean; L{parse_file} returns
a tree of L{Node}s with file names and line numbers for messages.
"""

from __future__ import annotations

import glob
import os
import re
from collections.abc import Iterator

import attrs

from .model import ConfigError

__all__ = ["Node", "parse_file", "parse_text", "split_args"]

#: How deep Include may nest before we call it a loop.
MAX_INCLUDE_DEPTH = 16


@attrs.define
class Node:
    """
    One directive, or one section with its contents.

    @ivar name: the directive's name as written (C{<Proxy>} is C{"Proxy"}).
    @ivar children: the directives inside, or C{None} for a plain directive.
    """

    file: str
    line: int
    name: str
    args: list[str]
    children: list[Node] | None = None

    @property
    def key(self) -> str:
        """The name in lower case, for matching."""
        return self.name.lower()

    @property
    def where(self) -> str:
        """C{line N}, the key of a L{ConfigError}."""
        return f"line {self.line}"

    def error(self, problem: str) -> ConfigError:
        """An error about this directive."""
        return ConfigError(self.file, self.where, problem)

    @property
    def display(self) -> str:
        """The name as the user wrote it, with angle brackets for sections."""
        return f"<{self.name}>" if self.children is not None else self.name


def split_args(text: str, file: str, line: int) -> list[str]:
    """
    Split the arguments of a directive the way httpd's C{ap_getword_conf}
    does: words are separated by white space; a word that starts with C{"}
    or C{'} runs to the matching quote, and inside it C{\\"} (or C{\\'})
    and C{\\\\} stand for the character itself. As in httpd, a quote that
    is never closed runs to the end of the line, and a quote inside a word
    is an ordinary character.
    """
    words: list[str] = []
    i, n = 0, len(text)
    while True:
        while i < n and text[i].isspace():
            i += 1
        if i >= n:
            return words
        quote = text[i] if text[i] in "\"'" else None
        if quote:
            i += 1
            word = []
            while i < n and text[i] != quote:
                c = text[i]
                if c == "\\" and i + 1 < n and text[i + 1] in (quote, "\\"):
                    word.append(text[i + 1])
                    i += 2
                    continue
                word.append(c)
                i += 1
            i += 1
            words.append("".join(word))
        else:
            start = i
            while i < n and not text[i].isspace():
                i += 1
            words.append(text[start:i])


def _logical_lines(text: str) -> Iterator[tuple[int, str]]:
    """Join backslash continuations; yield (first line number, text)."""
    pending: list[str] = []
    first = 0
    for number, raw in enumerate(text.splitlines(), start=1):
        if not pending:
            first = number
        stripped = raw.rstrip()
        if stripped.endswith("\\"):
            pending.append(stripped[:-1])
            continue
        pending.append(raw)
        yield first, " ".join(p.strip() for p in pending)
        pending = []
    if pending:
        yield first, " ".join(p.strip() for p in pending)


#: Sections Apache lets a file leave open at its end (the conditional ones).
_CLOSED_AT_END = frozenset(
    {"ifmodule", "ifdefine", "ifversion", "iffile", "ifdirective", "ifsection"}
)

_VARIABLE = re.compile(r"\$\{([A-Za-z0-9_.:-]+)\}")


@attrs.define
class _Parser:
    """
    What parsing one configuration carries from file to file: the
    variables of C{Define} (and the environment) that C{${NAME}} refers to,
    the C{ServerRoot} that relative C{Include} names start from, and the
    warnings to give.
    """

    defines: dict[str, str] = attrs.Factory(dict)
    server_root: str | None = None
    warnings: list[tuple[str, int, str]] = attrs.Factory(list)

    def substitute(self, line: str) -> str:
        """Replace C{${NAME}} by a C{Define}d value or an environment variable, as httpd does."""
        if "${" not in line:
            return line

        def value(match: re.Match[str]) -> str:
            name = match.group(1)
            if name in self.defines:
                return self.defines[name]
            return os.environ.get(name, match.group(0))

        return _VARIABLE.sub(value, line)

    def parse_text(self, text: str, file: str, depth: int = 0) -> list[Node]:
        """Parse the text of one file (its includes are read too)."""
        root: list[Node] = []
        stack: list[Node] = []
        for number, line in _logical_lines(text):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            line = self.substitute(line)
            container = stack[-1].children if stack else root
            assert container is not None
            if line.startswith("</"):
                if not line.endswith(">"):
                    raise ConfigError(
                        file, f"line {number}", f"{line!r}: a closing tag ends with '>'"
                    )
                name = line[2:-1].strip()
                if not stack:
                    raise ConfigError(
                        file, f"line {number}", f"</{name}> closes a section that was not opened"
                    )
                if name.lower() != stack[-1].key:
                    raise ConfigError(
                        file,
                        f"line {number}",
                        f"</{name}> does not close <{stack[-1].name}> (opened at line "
                        f"{stack[-1].line})",
                    )
                stack.pop()
                continue
            if line.startswith("<"):
                if not line.endswith(">"):
                    raise ConfigError(
                        file, f"line {number}", f"{line!r}: a section's opening tag ends with '>'"
                    )
                inner = line[1:-1].strip()
                name, _, rest = inner.partition(" ")
                if not name:
                    raise ConfigError(file, f"line {number}", f"{line!r} names no section")
                node = Node(file, number, name, split_args(rest, file, number), [])
                container.append(node)
                stack.append(node)
                continue
            parts = line.split(None, 1)
            name = parts[0]
            args = split_args(parts[1], file, number) if len(parts) > 1 else []
            node = Node(file, number, name, args)
            if node.key in ("include", "includeoptional"):
                container.extend(self.include(node, depth))
                continue
            if node.key == "define" and args:
                self.defines[args[0]] = args[1] if len(args) > 1 else ""
            elif node.key == "undefine" and args:
                self.defines.pop(args[0], None)
            elif node.key == "serverroot" and len(args) == 1:
                self.server_root = os.path.join(os.path.dirname(os.path.abspath(file)), args[0])
            container.append(node)
        while stack:
            open_node = stack.pop()
            if open_node.key not in _CLOSED_AT_END or any(
                n.key not in _CLOSED_AT_END for n in stack
            ):
                raise ConfigError(
                    file,
                    open_node.where,
                    f"<{open_node.name}> is never closed (add </{open_node.name}>)",
                )
            self.warnings.append(
                (
                    file,
                    open_node.line,
                    f"<{open_node.name}> is not closed before the end of the file; Apache "
                    "closes it there, and so does twisted_lb",
                )
            )
        return root

    def include(self, node: Node, depth: int) -> list[Node]:
        optional = node.key == "includeoptional"
        if len(node.args) != 1:
            raise node.error(f"{node.name} takes one file name or pattern")
        if depth >= MAX_INCLUDE_DEPTH:
            raise node.error(
                f"{node.name} nests deeper than {MAX_INCLUDE_DEPTH} files; is it a loop?"
            )
        pattern = node.args[0]
        if not os.path.isabs(pattern):
            base = self.server_root or os.path.dirname(os.path.abspath(node.file))
            pattern = os.path.join(base, pattern)
        if glob.has_magic(pattern):
            names = sorted(n for n in glob.glob(pattern) if os.path.isfile(n))
            if not names and not optional:
                raise node.error(f"{node.name} {node.args[0]!r} matches no file")
        elif os.path.isdir(pattern):
            names = sorted(
                os.path.join(pattern, n)
                for n in os.listdir(pattern)
                if os.path.isfile(os.path.join(pattern, n))
            )
        elif os.path.exists(pattern):
            names = [pattern]
        elif optional:
            names = []
        else:
            raise node.error(f"{node.name} {node.args[0]!r}: no such file ({pattern})")
        nodes: list[Node] = []
        for name in names:
            nodes.extend(self.parse_file(name, depth + 1))
        return nodes

    def parse_file(self, path: str, depth: int = 0) -> list[Node]:
        try:
            with open(path, encoding="utf-8", errors="surrogateescape") as f:
                text = f.read()
        except OSError as e:
            raise ConfigError(path, "file", f"cannot be read: {e.strerror or e}") from None
        return self.parse_text(text, path, depth)


def parse_text(text: str, file: str) -> list[Node]:
    """Parse the text of one file (its includes are read too)."""
    return _Parser().parse_text(text, file)


def parse_file(path: str, warnings: list[tuple[str, int, str]] | None = None) -> list[Node]:
    """
    Read and parse one configuration file and the files it includes.

    Relative C{Include} names are relative to the last C{ServerRoot} read
    or, before any, to the directory of the including file.

    @param warnings: if given, gets C{(file, line, message)} for what the
        syntax accepts with a remark (a conditional section left open at
        the end of a file).
    @raise ConfigError: when the file cannot be read or its syntax is wrong.
    """
    parser = _Parser()
    nodes = parser.parse_file(path)
    if warnings is not None:
        warnings.extend(parser.warnings)
    return nodes

"""
Helpers shared by the readers: building model objects and naming the key
that a model validator refused.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any, TypeVar

import attrs

from .model import ConfigError

T = TypeVar("T")

__all__ = ["build", "resolve_path"]


def build(
    cls: type[T],
    kwargs: dict[str, Any],
    fail: Callable[[str | None, str], ConfigError],
) -> T:
    """
    Build C{cls(**kwargs)}; turn a validator's C{ValueError} into a
    L{ConfigError}.

    @param fail: called with the model field that was refused (or C{None}
        when it cannot be told) and the problem; returns the error to raise.
    """
    try:
        return cls(**kwargs)
    except ConfigError:
        raise
    except (ValueError, TypeError) as e:
        problem = str(e)
        instance = SimpleNamespace(**kwargs)
        for field in attrs.fields(cls):  # type: ignore[arg-type]
            if field.validator is None or field.name not in kwargs:
                continue
            try:
                field.validator(instance, field, kwargs[field.name])
            except ValueError:
                raise fail(field.name, problem) from None
            except Exception:  # noqa: BLE001 - the validator needed more context
                continue
        raise fail(None, problem) from None


def resolve_path(path: str, base_dir: str | None) -> str:
    """
    Make a relative file name relative to C{base_dir} (the directory of the
    configuration file), as an absolute, normalised path.
    """
    path = os.path.expanduser(path)
    if base_dir is None or os.path.isabs(path):
        return path
    return os.path.normpath(os.path.join(base_dir, path))


def base_dir_of(source: str) -> str | None:
    """The directory that relative names in C{source} are relative to."""
    if source.startswith("<"):
        return None
    return os.path.dirname(os.path.abspath(source))

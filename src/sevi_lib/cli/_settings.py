"""The one way configuration reaches a command: one ``--flag`` per field of a settings dataclass.

Every stage keeps its configurable values, with their defaults, in one frozen dataclass of its
library package (``DetectorParams``, ``TrainConfig``, ...). Its command exposes each field as
``--field-name VALUE`` through :func:`add_settings_arguments`, and :func:`settings_from_args` builds
the dataclass from the flags that were given (the others keep the dataclass default). The workflow
passes a config section the same way (``settings_flags`` in ``workflow/rules/common.smk``).

Values on the command line: ``int``/``float``/``str`` as written; ``bool`` as ``true``/``false``;
tuple, list and dict fields as JSON (``--beta '[1.0, 0.5]'``, ``--prior '{"electrons": "map"}'``).
"""

import argparse
import dataclasses
import json
import types
import typing

from sevi_lib.core.errors import InputError

_BOOL = {"true": True, "false": False, "yes": True, "no": False, "1": True, "0": False}


def _kind(field):
    """The Python type a field's command-line value is parsed to (int, float, str, bool or 'json')."""
    t = field.type
    if isinstance(t, str):
        t = t.replace(" ", "")
        base = t.split("|")[0].split("[")[0]
        return {"bool": bool, "int": int, "float": float, "str": str}.get(base, "json")
    origin = typing.get_origin(t)
    if origin is typing.Union or origin is types.UnionType:
        t = next(a for a in typing.get_args(t) if a is not type(None))
        origin = typing.get_origin(t)
    if origin is not None or t in (list, tuple, dict):
        return "json"
    return t if t in (bool, int, float, str) else "json"


def _parse(kind, name):
    def parse(text):
        try:
            if kind is bool:
                return _BOOL[text.lower()]
            if kind == "json":
                return json.loads(text)
            return kind(text)
        except (KeyError, ValueError):
            what = "JSON" if kind == "json" else kind.__name__
            raise argparse.ArgumentTypeError(f"--{name.replace('_', '-')}: {text!r} is not a {what}") from None

    return parse


def add_settings_arguments(parser, cls, title=None, skip=(), prefix="set_"):
    """Add one ``--field-name`` option per field of dataclass `cls` (default: the field's, shown).

    Parameters
    ----------
    parser : argparse.ArgumentParser
    cls : dataclass type
        The settings dataclass; its defaults are the only defaults.
    title : str, optional
        Title of the argument group.
    skip : iterable of str
        Fields not exposed.
    prefix : str
        Prefix of the argparse destinations (keeps them apart from the command's own options).
    """
    group = parser.add_argument_group(title or f"settings ({cls.__name__}; the workflow's config section)")
    for f in dataclasses.fields(cls):
        if f.name in skip:
            continue
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        kind = _kind(f)
        shown = json.dumps(default) if kind == "json" else default
        group.add_argument(f"--{f.name.replace('_', '-')}", dest=prefix + f.name, type=_parse(kind, f.name),
                           default=None, metavar="V", help=f"(default {shown})")


def given_settings(cls, args, prefix="set_"):
    """The fields of `cls` given on the command line, as a dict."""
    out = {}
    for f in dataclasses.fields(cls):
        value = getattr(args, prefix + f.name, None)
        if value is not None:
            out[f.name] = value
    return out


def settings_from_args(cls, args, prefix="set_", **extra):
    """Instance of `cls` from the given flags (and `extra` fields); a bad value is an InputError."""
    values = {**given_settings(cls, args, prefix), **extra}
    try:
        return cls(**values)  # every settings dataclass validates on construction (SettingsError, a ValueError)
    except (TypeError, ValueError) as exc:
        raise InputError(f"{cls.__name__}: {exc}") from None

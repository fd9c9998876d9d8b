"""Typed settings: the small validator behind vidrnn's configs.

A config section is described in one place, by the code that uses it:

* a dataclass whose fields carry the types and defaults (``data``, ``optimizer``, the task
  sections, ``run``): :func:`validate_section`;
* a function signature with typed keyword arguments (a model builder, the Lightning
  ``Trainer``, a frame sampler, a frame encoder): :func:`validate_call`.

Both refuse unknown keys with the closest valid ones (``data.batchsize: unknown key; did you
mean data.batch_size?``) and values of the wrong type, naming the key, what was expected and
what was found (``trainer.max_epochs: expected an int or null, got 'ten' (a string)``). Types
understood: ``bool``, ``int``, ``float`` (ints accepted), ``str``, ``None``, ``Literal[...]``,
unions (``X | Y``, ``Optional``), ``list[X]``/``tuple[X, ...]``/``Sequence[X]``, ``dict``,
nested dataclasses, ``Any``; ``Annotated[T, check]`` runs ``check(value, key)`` after the type
check (for settings whose keys depend on a name, like a sampler's). Other classes (a Lightning
``Accelerator`` object, say) cannot come from YAML and are refused unless another arm of the
union matches. Deliberately small and dependency-free: this module imports nothing from vidrnn
but its error class.

Why not OmegaConf or jsonargparse: both validate types, but neither suggests the closest key
for a typo, both would need our registry's builders and the data section's source-dependent
keys wrapped in their own declarations, and YAML-plus-``key=value`` overrides is all the
command line needs. This module is ~200 lines that read like the rules they enforce.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import inspect
import types
import typing
from typing import Any, Callable, Iterable, Mapping

from vidrnn.errors import ConfigError

__all__ = ["merge", "validate_value", "validate_section", "validate_call", "unknown_key", "describe_type",
           "section_defaults", "keep_source_section"]


def merge(base: Mapping, update: Mapping | None) -> dict:
    """Recursive dict merge: ``update`` wins; nested dicts merge, everything else is replaced."""
    out = copy.deepcopy(dict(base))
    for k, v in (update or {}).items():
        if isinstance(v, Mapping) and isinstance(out.get(k), Mapping):
            out[k] = merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def unknown_key(key: str, valid: Iterable[str], where: str) -> ConfigError:
    """The error for an unknown ``key`` in section ``where``, naming the closest valid keys."""
    valid = sorted(valid)
    full = f"{where}.{key}" if where else key
    close = difflib.get_close_matches(key, valid, n=2, cutoff=0.6)
    if close:
        hint = "did you mean " + " or ".join(f"{where}.{c}" if where else c for c in close) + "?"
    else:
        hint = "valid keys: " + (", ".join(valid) if valid else "none")
    return ConfigError(f"{full}: unknown key; {hint}")


def _show(value: Any) -> str:
    kind = {bool: "a boolean", int: "an int", float: "a float", str: "a string", list: "a list", tuple: "a list",
            dict: "a mapping", type(None): "null"}.get(type(value), type(value).__name__)
    text = repr(value)
    return f"{text[:60]}{'...' if len(text) > 60 else ''} ({kind})"


def describe_type(tp: Any) -> str:
    """A short human description of a type (``an int or null``, ``one of 'a', 'b'``)."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is Any or tp is object:
        return "anything"
    if tp is type(None) or tp is None:
        return "null"
    if origin is typing.Annotated:
        return describe_type(args[0])
    if origin in (typing.Union, types.UnionType):
        literals = [v for a in args if typing.get_origin(a) is typing.Literal for v in typing.get_args(a)]
        others = [describe_type(a) for a in args if typing.get_origin(a) is not typing.Literal]
        parts = (["one of " + ", ".join(repr(v) for v in literals)] if literals else []) + others
        return " or ".join(dict.fromkeys(parts))
    if origin is typing.Literal:
        return "one of " + ", ".join(repr(a) for a in args)
    if origin in (list, tuple, typing.Sequence, _abc_sequence()) or tp in (list, tuple):
        item = args[0] if args else Any
        return f"a list of {_plural(describe_type(item))}" if item is not Any else "a list"
    if origin is dict or tp is dict or origin is typing.Mapping:
        return "a mapping"
    if dataclasses.is_dataclass(tp):
        return "a mapping"
    names = {bool: "a boolean", int: "an int", float: "a number", str: "a string"}
    return names.get(tp, getattr(tp, "__name__", str(tp)))


def _plural(text: str) -> str:
    for art in ("an ", "a "):
        if text.startswith(art):
            return text[len(art):] + "s"
    return text


def _abc_sequence():
    import collections.abc

    return collections.abc.Sequence


def validate_value(value: Any, tp: Any, where: str) -> Any:
    """``value`` checked against ``tp`` (and normalised: tuples to lists, ints to floats where a
    float is expected, nested sections filled with their defaults).

    Raises:
        ConfigError: the value does not fit, naming ``where``, the expected type and the value.
    """
    ok, out = _check(value, tp, where)
    if not ok:
        raise ConfigError(f"{where}: expected {describe_type(tp)}, got {_show(value)}")
    return out


def _check(value: Any, tp: Any, where: str) -> tuple[bool, Any]:
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is Any or tp is object or isinstance(tp, typing.TypeVar):
        return True, value
    if tp is None or tp is type(None):
        return value is None, value
    if origin is typing.Annotated:
        ok, out = _check(value, args[0], where)
        if ok:
            for check in args[1:]:
                if callable(check):
                    out = check(out, where)
        return ok, out
    if origin in (typing.Union, types.UnionType):
        for arm in args:  # an error raised inside a matching arm (a nested section) propagates
            ok, out = _check(value, arm, where)
            if ok:
                return True, out
        return False, value
    if origin is typing.Literal:
        return any(value == a and type(value) is type(a) for a in args), value
    if tp is bool:
        return isinstance(value, bool), value
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool), value
    if tp is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        return ok, float(value) if ok else value
    if tp is str:
        return isinstance(value, str), value
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, Mapping):
            return False, value
        return True, validate_section(tp, value, where)
    if tp in (list, tuple) or origin in (list, tuple, typing.Sequence, _abc_sequence()):
        if not isinstance(value, (list, tuple)):
            return False, value
        if origin is tuple and args and args[-1] is not Ellipsis:  # fixed-length tuple
            if len(value) != len(args):
                return False, value
            items = list(zip(value, args))
        else:
            item = args[0] if args else Any
            items = [(v, item) for v in value]
        out = []
        for i, (v, t) in enumerate(items):
            out.append(validate_value(v, t, f"{where}[{i}]"))
        return True, out
    if tp is dict or origin in (dict, typing.Mapping) or tp is Mapping:
        return isinstance(value, Mapping), dict(value) if isinstance(value, Mapping) else value
    if isinstance(tp, type):
        return isinstance(value, tp), value
    return True, value  # a typing construct we cannot check from YAML values (Callable, Iterable, ...)


def _hints(obj: Any) -> dict[str, Any]:
    try:
        return typing.get_type_hints(obj, include_extras=True)
    except Exception:  # unresolvable annotations: check keys only
        return {}


def section_defaults(cls: type) -> dict:
    """The defaults of a settings dataclass as a dict (nested dataclasses as dicts)."""
    out = {}
    for f in dataclasses.fields(cls):
        if f.default is not dataclasses.MISSING:
            v = f.default
        elif f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
            v = f.default_factory()  # type: ignore[misc]
        else:
            continue
        out[f.name] = dataclasses.asdict(v) if dataclasses.is_dataclass(v) else copy.deepcopy(v)
    return out


def validate_section(cls: type, given: Mapping | None, where: str) -> dict:
    """Section ``where`` of a config checked against the settings dataclass ``cls``: unknown
    keys and wrong types refused, missing keys filled with the defaults.

    Returns:
        A plain dict in field order.

    Raises:
        ConfigError: not a mapping, an unknown key (closest keys named) or a wrong type.
    """
    if given is None:
        given = {}
    if not isinstance(given, Mapping):
        raise ConfigError(f"{where}: expected a mapping of settings, got {_show(given)}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for key in given:
        if key not in fields:
            raise unknown_key(str(key), fields, where)
    hints = _hints(cls)
    defaults = section_defaults(cls)
    out = {}
    for name, f in fields.items():
        if name in given:
            out[name] = validate_value(given[name], hints.get(name, Any), f"{where}.{name}")
        elif name in defaults:
            d = defaults[name]
            tp = hints.get(name, Any)
            out[name] = validate_value(d, tp, f"{where}.{name}") if isinstance(d, dict) and d else d
        else:
            raise ConfigError(f"{where}.{name}: required, not given")
    return out


def validate_call(fn: Callable, given: Mapping | None, where: str, *, reserved: Mapping[str, str] | None = None,
                  skip: Iterable[str] = ()) -> dict:
    """Keyword arguments for ``fn`` checked against its signature and type annotations.

    Args:
        fn: a function (or class) with explicit keyword arguments (``**kwargs`` is not read).
        given: the arguments.
        where: the config section, for messages.
        reserved: arguments the caller sets itself, with the reason shown if given.
        skip: further parameters that are not settings (``self``, the positional core).

    Returns:
        ``given`` with values normalised (defaults are not added: the signature keeps them).

    Raises:
        ConfigError: an unknown argument (closest named), a reserved one, or a wrong type.
    """
    given = dict(given or {})
    reserved = dict(reserved or {})
    params = {n: p for n, p in inspect.signature(fn).parameters.items()
              if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD) and n not in set(skip) | {"self"}}
    hints = _hints(fn.__init__ if inspect.isclass(fn) else fn)
    out = {}
    for key, value in given.items():
        if key in reserved:
            raise ConfigError(f"{where}.{key}: {reserved[key]}")
        if key not in params:
            raise unknown_key(str(key), [p for p in params if p not in reserved], where)
        out[key] = validate_value(value, hints.get(key, Any), f"{where}.{key}")
    return out


def keep_source_section(settings: dict, sections: Mapping[str, type], where: str) -> dict:
    """Settings whose sub-sections each belong to one ``source`` (``data.digits`` to
    ``source: digits``): the chosen source's section is checked and completed with its
    defaults, the others (None when not given) are dropped.

    Args:
        settings: a validated section with a ``source`` key and one key per entry of ``sections``.
        sections: ``{source name: settings dataclass}``.
        where: the section's name, for messages.

    Raises:
        ConfigError: settings given for a source other than the chosen one.
    """
    src = settings["source"]
    for key, cls in sections.items():
        if key == src:
            settings[key] = validate_section(cls, settings[key], f"{where}.{key}")
        elif settings[key] is not None:
            raise ConfigError(f"{where}.{key}: settings of {where}.source={key}, but {where}.source is {src!r}")
        else:
            del settings[key]
    return settings

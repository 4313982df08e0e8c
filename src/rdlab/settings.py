"""One config vocabulary: dataclass configs read from and written to dicts and YAML.

Every rdlab config (:class:`~rdlab.simulate_job.spec.SimulationSpec`,
:class:`~rdlab.classify.training.TrainConfig`, :class:`~rdlab.classify.augment.AugmentConfig`,
:class:`~rdlab.design.config.DesignConfig`, :class:`~rdlab.discover.workflow.DiscoverSettings`)
is a ``@dataclass`` that also derives from :class:`Settings`. The field annotations are the
schema; a small walker over them (no pydantic) gives every config the same behaviour:

- :meth:`Settings.from_dict` refuses unknown keys (listing the known ones, with a "did you
  mean" suggestion) and checks each value against its field's annotation — ``int``,
  ``float`` (a whole number is accepted and becomes a float; ``true``/``false`` never count
  as numbers; NaN and infinity are refused), ``bool``, ``str``, ``Literal[...]`` choices,
  ``tuple[X, ...]`` / ``tuple[X, Y]`` / ``list[X]`` (a YAML list becomes a tuple for a
  tuple field), ``dict``/``dict[K, V]``, ``X | None`` and nested config *sections* (a field
  whose type is itself a :class:`Settings` dataclass, given as a mapping). A value of the
  wrong type is a :class:`~rdlab.errors.ParameterError` naming the source (a file or
  ``--set``), the key path (``optimiser.lr``), the value and what it must be.
- :meth:`Settings.to_dict` is the inverse (sections as nested dicts, tuples as lists), so
  ``from_dict(to_dict())`` and the YAML round trip give an equal config.
- :meth:`Settings.from_yaml` / :meth:`Settings.to_yaml` read and write a file;
  :func:`read_mapping` refuses a missing file, a folder, a binary file, corrupt YAML/TOML
  and a document that is not a mapping, naming the file.
- :meth:`Settings.replace` and :meth:`Settings.with_overrides` apply overrides given by
  dotted key (``optimiser.lr``), as ``--set optimiser.lr=1e-4`` does on the command line
  (:func:`parse_overrides`).

Range checks (a positive step, a probability in [0, 1]) stay with each config, in its
``__post_init__``; they run after the types are known to be right. A config may map old
or short key names onto its fields with :attr:`Settings._aliases` (flat key → dotted path).
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import numbers
import re
import tomllib
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar, Literal, TypeVar

import yaml

from rdlab.errors import DataError, ParameterError, RdlabError

__all__ = ["Settings", "describe", "parse_overrides", "read_mapping", "yaml_loader"]

S = TypeVar("S", bound="Settings")


# ------------------------------------------------------------------------------ YAML reading
class yaml_loader(yaml.SafeLoader):  # noqa: N801 (a loader class used like a function name)
    """YAML as rdlab reads it: like ``yaml.safe_load``, with two differences.

    ``1e-4`` is a number (YAML 1.2) rather than the text YAML 1.1 makes of an exponent
    without a decimal point, and a key given twice in one mapping is an error
    (``safe_load`` silently keeps the last value, so ``steps: 3`` followed by
    ``steps: 1000`` ran 1000 steps).
    """

    def construct_mapping(self, node, deep=False):
        """Construct a mapping, refusing a key given twice.

        Parameters
        ----------
        node : yaml.MappingNode
            The mapping node.
        deep : bool, default False
            Construct nested objects at once.

        Returns
        -------
        dict
            The mapping.

        Raises
        ------
        yaml.constructor.ConstructorError
            If a key appears twice in the mapping.
        """
        if isinstance(node, yaml.MappingNode):
            seen = set()
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = self.construct_object(key_node, deep=True)
                try:
                    twice = key in seen
                except TypeError:  # an unhashable key: the base class says so
                    continue
                if twice:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"key {key!r} appears twice in one mapping",
                        key_node.start_mark)
                seen.add(key)
        return super().construct_mapping(node, deep)


yaml_loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"))


def yaml_problem(err: yaml.YAMLError) -> str:
    """Return a YAML error in one line: what is wrong and where.

    Parameters
    ----------
    err : yaml.YAMLError
        The error.

    Returns
    -------
    str
        The problem, with line and column when known.
    """
    what = getattr(err, "problem", None) or str(err).splitlines()[0]
    mark = getattr(err, "problem_mark", None)
    return f"{what} (line {mark.line + 1}, column {mark.column + 1})" if mark else what


#: Largest YAML/TOML file read (a settings file is a few KiB; this is a wrong file).
MAX_TEXT_FILE_BYTES = 16 * 2**20


def check_text_file(path: Path, what: str) -> None:
    """Refuse, before reading it, a path that is not a regular file or is too large.

    A device such as ``/dev/zero`` would be read until memory runs out. A missing path or a
    folder is left to the caller's read (FileNotFoundError, IsADirectoryError).

    Parameters
    ----------
    path : pathlib.Path
        The file.
    what : str
        What the file is, for messages.

    Raises
    ------
    DataError
        If ``path`` is not a regular file or has more than :data:`MAX_TEXT_FILE_BYTES`.
    """
    if not path.exists() or path.is_dir():
        return
    if not path.is_file():
        raise DataError(f"{what} {str(path)!r} is not a regular file")
    size = path.stat().st_size
    if size > MAX_TEXT_FILE_BYTES:
        raise DataError(f"{what} {str(path)!r} has {size:,} bytes, more than a YAML/TOML file "
                        f"of settings can have ({MAX_TEXT_FILE_BYTES:,})")


def read_text_file(path: str | Path, what: str, kind: str = "text") -> str:
    """Return the UTF-8 text of the file ``path``.

    Parameters
    ----------
    path : str or pathlib.Path
        The file.
    what : str
        What the file is, for messages.
    kind : str, default "text"
        The format expected, for messages (e.g. ``"YAML"``).

    Returns
    -------
    str
        The text.

    Raises
    ------
    DataError
        Naming ``what`` and the file, for a missing path, a folder, a device or other
        non-regular file, a file too large for settings, and binary content.
    """
    path = Path(path)
    name = f"{what} {str(path)!r}"
    if path.is_dir():
        raise DataError(f"{name} is a folder, not a {kind} file")
    try:
        check_text_file(path, what)
        raw = path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"{name} does not exist") from None
    except OSError as err:
        raise DataError(f"cannot read {name}: {err.strerror or err}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = "\x00"
    if "\x00" in text:
        raise DataError(f"{name} is not a text file ({kind} expected)")
    return text


def read_mapping(path: str | Path, what: str = "config file") -> dict[str, Any]:
    """Return the mapping in a YAML (or, by suffix ``.toml``, TOML) file.

    Parameters
    ----------
    path : str or pathlib.Path
        The file.
    what : str, default "config file"
        What the file is, for messages.

    Returns
    -------
    dict of str to Any
        The mapping.

    Raises
    ------
    DataError
        Naming ``what`` and the file, for a missing file, a folder, a binary file,
        unparsable text and a document that is not a non-empty mapping.
    """
    path = Path(path)
    name = f"{what} {str(path)!r}"
    text = read_text_file(path, what, "YAML or TOML")
    try:
        if path.suffix.lower() == ".toml":
            data = tomllib.loads(text)
        else:
            data = yaml.load(text, Loader=yaml_loader)  # noqa: S506 (a SafeLoader)
    except tomllib.TOMLDecodeError as err:
        raise DataError(f"{name} is not valid TOML: {err}") from None
    except yaml.YAMLError as err:
        raise DataError(f"{name} is not valid YAML: {yaml_problem(err)}") from None
    if data is None or data == {}:
        raise DataError(f"{name} is empty; it must be a mapping of settings (key: value)")
    if not isinstance(data, dict):
        raise DataError(f"{name} must be a mapping of settings (key: value), got "
                        f"{kind(data)} {data!r:.60}")
    return data


def parse_overrides(pairs: list[str] | tuple[str, ...] | None) -> dict[str, Any]:
    """Parse ``--set KEY=VALUE`` pairs, each VALUE read as YAML.

    ``["optimiser.steps=200", "size=[32, 32]"]`` gives
    ``{"optimiser.steps": 200, "size": [32, 32]}``.

    Parameters
    ----------
    pairs : list or tuple of str, optional
        The ``KEY=VALUE`` texts; ``None`` gives an empty mapping.

    Returns
    -------
    dict of str to Any
        Key → value.

    Raises
    ------
    ParameterError
        For a pair without ``=``, an empty key or unreadable YAML, naming the pair.
    """
    out: dict[str, Any] = {}
    for text in pairs or []:
        key, eq, value = text.partition("=")
        key = key.strip()
        if not eq or not key:
            raise ParameterError(f"--set takes KEY=VALUE (VALUE in YAML), got {text!r}")
        try:
            out[key] = yaml.load(value, Loader=yaml_loader)  # noqa: S506 (a SafeLoader)
        except yaml.YAMLError as err:
            raise ParameterError(f"--set {text!r}: the value is not valid YAML: "
                                 f"{yaml_problem(err)}") from None
    return out


# ------------------------------------------------------------------------------ the walker
class _Mismatch(Exception):
    """A value that does not have the type of its field (turned into a ParameterError)."""


def _is_settings(hint: Any) -> bool:
    """Tell whether ``hint`` is a :class:`Settings` dataclass."""
    return isinstance(hint, type) and dataclasses.is_dataclass(hint) \
        and issubclass(hint, Settings)


def _section_of(hint: Any) -> type[Settings] | None:
    """Return the section class of a field typed ``Section`` or ``Section | None``, else None."""
    if _is_settings(hint):
        return hint
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        found = [h for h in typing.get_args(hint) if _is_settings(h)]
        return found[0] if len(found) == 1 else None
    return None


def _convert(value: Any, hint: Any, key: str, origin: str) -> Any:
    """Return ``value`` as a value of type ``hint``, or raise :class:`_Mismatch`.

    Lists become tuples for tuple fields, whole numbers floats for float fields, mappings
    sections.
    """
    if hint is Any or hint is object:
        return value
    if hint is type(None):
        if value is None:
            return None
        raise _Mismatch
    origin_type = typing.get_origin(hint)
    if origin_type in (typing.Union, types.UnionType):
        for h in typing.get_args(hint):
            try:
                return _convert(value, h, key, origin)
            except _Mismatch:
                continue
        raise _Mismatch
    if origin_type is Literal:
        if any(value == c and type(value) is type(c) for c in typing.get_args(hint)):
            return value
        raise _Mismatch
    if hint is bool:
        if isinstance(value, bool):
            return value
        raise _Mismatch
    if hint is int:
        if isinstance(value, numbers.Integral) and not isinstance(value, bool):
            return int(value)
        raise _Mismatch
    if hint is float:
        if isinstance(value, numbers.Real) and not isinstance(value, bool) \
                and math.isfinite(value):
            return float(value)
        raise _Mismatch
    if hint is str:
        if isinstance(value, str):
            return value
        raise _Mismatch
    if hint is Path:
        if isinstance(value, str | Path):
            return str(value)
        raise _Mismatch
    if _is_settings(hint):
        if isinstance(value, hint):
            return value
        if isinstance(value, Mapping):
            return hint._from_mapping(dict(value), origin, f"{key}.")
        raise _Mismatch
    if hint in (dict, Mapping) or origin_type in (dict, Mapping):
        if not isinstance(value, Mapping):
            raise _Mismatch
        args = typing.get_args(hint)
        if not args:
            return dict(value)
        return {_convert(k, args[0], key, origin): _convert(v, args[1], key, origin)
                for k, v in value.items()}
    if hint in (list, tuple) or origin_type in (list, tuple):
        if not isinstance(value, list | tuple):
            raise _Mismatch
        args = typing.get_args(hint)
        if not args:
            items = list(value)
        elif origin_type is list or (len(args) == 2 and args[1] is Ellipsis):
            items = [_convert(v, args[0], key, origin) for v in value]
        else:
            if len(value) != len(args):
                raise _Mismatch
            items = [_convert(v, a, key, origin) for v, a in zip(value, args)]
        return tuple(items) if (hint is tuple or origin_type is tuple) else items
    raise TypeError(f"rdlab.settings has no check for the type {hint!r}")  # teach _convert


def convert(value: Any, hint: Any, key: str, origin: str) -> Any:
    """Return ``value`` checked against (and normalised to) a field's annotation.

    Parameters
    ----------
    value : Any
        The value given.
    hint : Any
        The annotation of the field.
    key : str
        The field's key path (``optimiser.lr``).
    origin : str
        Where the value comes from (a file, ``--set``), for messages.

    Returns
    -------
    Any
        The value, normalised (lists to tuples for tuple fields, whole numbers to floats
        for float fields, mappings to sections).

    Raises
    ------
    ParameterError
        Naming ``origin``, the key, the value and the expected type if it does not fit.
    """
    try:
        return _convert(value, hint, key, origin)
    except _Mismatch:
        raise ParameterError(f"{origin}: {key!r} must be {describe(hint)}, got "
                             f"{value!r:.200} ({kind(value)})") from None


_PLURAL = {"a whole number": "whole numbers", "a finite number": "finite numbers",
           "text": "texts", "true or false": "true/false values", "a mapping": "mappings",
           "a file path": "file paths"}


def describe(hint: Any) -> str:
    """Return the annotation ``hint`` in words, as an error message says what a key must be.

    Parameters
    ----------
    hint : Any
        A field annotation.

    Returns
    -------
    str
        E.g. ``"a whole number"``, ``"a list of finite numbers"``, ``"one of [...]"``.
    """
    if hint is type(None):
        return "null"
    if hint is Any or hint is object:
        return "anything"
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(describe(h) for h in typing.get_args(hint))
    if origin is Literal:
        return f"one of {list(typing.get_args(hint))}"
    simple = {bool: "true or false", int: "a whole number", float: "a finite number",
              str: "text", dict: "a mapping", Path: "a file path", list: "a list",
              tuple: "a list"}
    if hint in simple:
        return simple[hint]
    if origin in (dict, Mapping) or hint is Mapping:
        return "a mapping"
    if _is_settings(hint):
        return f"a mapping of {hint.__name__} settings"
    args = typing.get_args(hint)
    one = describe(args[0])
    many = _PLURAL.get(one, f"values that are each {one}")
    if origin is list or (len(args) == 2 and args[1] is Ellipsis):
        return f"a list of {many}"
    return f"a list of {len(args)} {many}"


def kind(value: Any) -> str:
    """Return the YAML kind of ``value`` in words (``text``, ``whole number``, ``list``, ...).

    Parameters
    ----------
    value : Any
        A value read from a config.

    Returns
    -------
    str
        Its kind.
    """
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, numbers.Integral):
        return "whole number"
    if isinstance(value, numbers.Real):
        return "number"
    return {str: "text", list: "a list", tuple: "a list", dict: "a mapping",
            type(None): "null"}.get(type(value), type(value).__name__)


def _unknown(origin: str, unknown: list[str], owner: type[Settings], prefix: str
             ) -> ParameterError:
    """Return the error for ``unknown`` keys of ``owner`` (a section at ``prefix`` or the top).

    It names the keys, a close known key for each, and the known keys.
    """
    known = owner.known_keys()
    aliases = owner._aliases if not prefix else {}
    hints = []
    for k in unknown:
        close = difflib.get_close_matches(k, [*known, *aliases], n=1)
        if close:
            hints.append(f"did you mean {prefix + close[0]!r}?")
    said = f" ({' '.join(hints)})" if hints else ""
    where = f" of {prefix[:-1]}" if prefix else ""
    extra = (f"; a key of a section may also be given alone: {sorted(aliases)}"
             if aliases else "")
    return ParameterError(f"{origin}: unknown config keys {[prefix + k for k in unknown]}"
                          f"{said}; known keys{where} are {sorted(known)}{extra}")


# ------------------------------------------------------------------------------ the base
class Settings:
    """Base of rdlab's dataclass configs.

    Dict/YAML in and out, types checked from the annotations, unknown keys refused, dotted
    overrides (see the module docstring). Subclasses are ``@dataclass``es. They may set the
    class attributes below.

    Attributes
    ----------
    _what : str
        How a message names the config when no file is known (e.g. ``"design config"``).
    _internal : frozenset of str
        Fields set by code, not read from a config (:meth:`from_dict` refuses them,
        :meth:`to_dict` leaves them out).
    _aliases : dict of str to str
        Key names accepted for a field elsewhere, ``{"steps": "optimiser.steps"}`` (a flat
        key of an old config → its place in a section).
    """

    _what: ClassVar[str] = ""
    _internal: ClassVar[frozenset[str]] = frozenset()
    _aliases: ClassVar[dict[str, str]] = {}

    # ---------------------------------------------------------------- schema
    @classmethod
    def _hints(cls) -> dict[str, Any]:
        """Return the resolved annotation of each field (cached per class)."""
        cached = cls.__dict__.get("_hint_cache")
        if cached is None:
            cached = typing.get_type_hints(cls)
            cls._hint_cache = cached
        return {f.name: cached[f.name] for f in dataclasses.fields(cls)}

    @classmethod
    def known_keys(cls) -> list[str]:
        """Return the keys :meth:`from_dict` takes at this level.

        Returns
        -------
        list of str
            The field names, internal fields left out.
        """
        return [f.name for f in dataclasses.fields(cls) if f.name not in cls._internal]

    @classmethod
    def _label(cls) -> str:
        """Return how messages name the config."""
        return cls._what or cls.__name__

    @classmethod
    def _normalise(cls, data: dict[str, Any], origin: str) -> dict[str, Any]:
        """Return ``data`` with old spellings mapped to the current ones (a hook).

        By default the flat :attr:`_aliases` are moved into their sections.
        """
        if not cls._aliases or not any(k in cls._aliases for k in data):
            return data
        out = dict(data)
        for flat, dotted in cls._aliases.items():
            if flat not in out:
                continue
            value = out.pop(flat)
            *sections, leaf = dotted.split(".")
            node = out
            for s in sections:
                sub = node.get(s)
                if sub is None:
                    sub = node[s] = {}
                elif not isinstance(sub, Mapping):
                    raise ParameterError(f"{origin}: {flat} belongs in section {s}, but {s} is "
                                         f"{kind(sub)} {sub!r:.60}")
                else:
                    sub = node[s] = dict(sub)
                node = sub
            if leaf in node:
                raise ParameterError(f"{origin}: {flat} is given twice, alone and as {dotted}; "
                                     f"keep one")
            node[leaf] = value
        return out

    # ---------------------------------------------------------------- dict
    @classmethod
    def from_dict(cls: type[S], data: Mapping[str, Any], *,
                  source: str | Path | None = None) -> S:
        """Build a config from its settings.

        Parameters
        ----------
        data : Mapping of str to Any
            The settings; sections as nested mappings.
        source : str or pathlib.Path, optional
            Where the settings come from (the file, ``--set``, ...), for messages.

        Returns
        -------
        Settings
            The config.

        Raises
        ------
        ParameterError
            For unknown keys and values of the wrong type, naming ``source`` and the key
            path; also whatever the config's own range checks raise.
        """
        return cls._from_mapping(data, cls._origin(source), "")

    @classmethod
    def _origin(cls, source: str | Path | None) -> str:
        """Return how messages name where the settings come from."""
        if source is None:
            return cls._label()
        if isinstance(source, Path):
            return f"config {str(source)!r}"
        return source

    @classmethod
    def _from_mapping(cls: type[S], data: Any, origin: str, prefix: str) -> S:
        """Build a config (or a section at ``prefix``) from a mapping, checking its keys."""
        if not isinstance(data, Mapping):
            raise ParameterError(f"{origin}: {prefix[:-1] or cls._label()!r} must be a mapping "
                                 f"of settings (key: value), got {kind(data)} {data!r:.60}")
        data = {str(k): v for k, v in data.items()}
        if not prefix:
            data = cls._normalise(data, origin)
        known = cls.known_keys()
        unknown = sorted(set(data) - set(known))
        if unknown:
            raise _unknown(origin, unknown, cls, prefix)
        hints = cls._hints()
        values = {k: convert(v, hints[k], prefix + k, origin) for k, v in data.items()}
        return cls(**values)

    def check_types(self) -> None:
        """Check every field of this instance against its annotation, normalising it.

        Lists become tuples, whole numbers floats, mappings sections. For configs built
        directly rather than by :meth:`from_dict`; call it first in ``__post_init__``.

        Raises
        ------
        ParameterError
            If a field's value does not fit its annotation.
        """
        for name, hint in self._hints().items():
            value = getattr(self, name)
            new = convert(value, hint, name, self._label())
            if new is not value:
                object.__setattr__(self, name, new)

    def to_dict(self) -> dict[str, Any]:
        """Return the settings as plain data.

        Returns
        -------
        dict of str to Any
            Sections as nested dicts, tuples as lists; :meth:`from_dict` reads it back to
            an equal config.
        """
        return {f.name: _plain(getattr(self, f.name)) for f in dataclasses.fields(self)
                if f.name not in self._internal}

    # ---------------------------------------------------------------- YAML
    @classmethod
    def from_yaml(cls: type[S], path: str | Path) -> S:
        """Read a config from a YAML (or TOML) file.

        Parameters
        ----------
        path : str or pathlib.Path
            The file.

        Returns
        -------
        Settings
            The config.

        Raises
        ------
        DataError
            If the file cannot be read as a mapping (:func:`read_mapping`).
        ParameterError
            For unknown keys and wrong types; every error names the file.
        """
        path = Path(path)
        data = read_mapping(path)
        origin = f"config file {str(path)!r}"
        try:
            return cls.from_dict(data, source=origin)
        except RdlabError as err:
            if str(err).startswith(origin):
                raise
            raise type(err)(f"{origin}: {err}") from None

    def to_yaml(self, path: str | Path | None = None) -> str:
        """Return the config as YAML text.

        Parameters
        ----------
        path : str or pathlib.Path, optional
            When given, the text is also written there atomically.

        Returns
        -------
        str
            The YAML text of :meth:`to_dict`.
        """
        text = yaml.safe_dump(self.to_dict(), sort_keys=False, allow_unicode=True)
        if path is not None:
            from rdlab.atomic import atomic_write_text

            atomic_write_text(Path(path), text)
        return text

    # ---------------------------------------------------------------- overrides
    def replace(self: S, _source: str | None = None, **overrides: Any) -> S:
        """Return a copy with ``overrides`` applied; the result is checked whole.

        Parameters
        ----------
        _source : str, optional
            Where the overrides come from, for messages.
        **overrides : Any
            Key → value; keys may be dotted (``**{"optimiser.lr": 1e-4}``) or an alias of
            the config.

        Returns
        -------
        Settings
            The copy (internal fields kept).

        Raises
        ------
        ParameterError
            For an unknown key, a dotted key into a field that is not a section, or a value
            of the wrong type.
        """
        origin = _source or self._label()
        data = apply_overrides(type(self), self.to_dict(), overrides, origin)
        internal = {k: getattr(self, k) for k in self._internal}
        new = type(self)._from_mapping(data, origin, "")
        for k, v in internal.items():
            object.__setattr__(new, k, v)
        return new

    def with_overrides(self: S, pairs: list[str] | tuple[str, ...] | None) -> S:
        """Return a copy with ``--set KEY=VALUE`` pairs applied (:func:`parse_overrides`).

        Parameters
        ----------
        pairs : list or tuple of str, optional
            The ``KEY=VALUE`` texts.

        Returns
        -------
        Settings
            The copy.

        Raises
        ------
        ParameterError
            For a malformed pair, an unknown key or a value of the wrong type.
        """
        return self.replace("--set", **parse_overrides(pairs))


def _plain(value: Any) -> Any:
    """Return ``value`` as plain data (sections as dicts, tuples as lists, paths as text)."""
    if isinstance(value, Settings):
        return value.to_dict()
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, Path):
        return str(value)
    return value


def apply_overrides(cls: type[Settings], data: dict[str, Any], overrides: Mapping[str, Any],
                    origin: str) -> dict[str, Any]:
    """Return a config's settings with ``overrides`` set.

    Parameters
    ----------
    cls : type of Settings
        The config class.
    data : dict of str to Any
        A config of ``cls`` as a dict.
    overrides : Mapping of str to Any
        Key → value, each key a field, a dotted path into sections (``optimiser.lr``) or an
        alias.
    origin : str
        Where the overrides come from, for messages.

    Returns
    -------
    dict of str to Any
        The settings, each value type-checked against its field.

    Raises
    ------
    ParameterError
        For keys that are not a field, or that go into a field that is not a section
        (``loss.target.weight``), and values of the wrong type.
    """
    data = cls._normalise(dict(data), origin)
    for key, value in overrides.items():
        path = cls._aliases.get(key, key)
        parts = path.split(".")
        node, owner, done = data, cls, []
        for part in parts[:-1]:
            section = _section_of(owner._hints().get(part)) if part in owner.known_keys() \
                else None
            if section is None:
                if part not in owner.known_keys():
                    raise _unknown(origin, [part], owner, "".join(f"{d}." for d in done))
                raise ParameterError(
                    f"{origin}: {key!r}: {'.'.join([*done, part])} is not a section of "
                    f"settings; give it whole ({'.'.join([*done, part])}=...)")
            sub = node.get(part)
            node[part] = sub = dict(sub) if isinstance(sub, Mapping) else {}
            node, owner = sub, section
            done.append(part)
        leaf = parts[-1]
        prefix = "".join(f"{d}." for d in done)
        if leaf not in owner.known_keys():
            raise _unknown(origin, [leaf], owner, prefix)
        node[leaf] = _plain(convert(value, owner._hints()[leaf], prefix + leaf, origin))
    return data

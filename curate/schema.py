"""The bottom layer every configuration model stands on: strict pydantic models, YAML files read with
clear errors, rules files with `extends:`, and validation errors that name the file, the key path and
what was expected. Pipelines, stage rules, gate rules and the trainer's config all use these."""

from __future__ import annotations

import difflib
import os
import typing
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from curate.errors import ConfigError


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid")


def config_path(value: str | Path, base_dir: Path) -> Path:
    """A path written in a config file: `~` expanded, and a relative path taken from the file's folder, so
    the file means the same thing from any working directory."""
    path = Path(value).expanduser()
    return path if path.is_absolute() else base_dir / path


MAX_CONFIG_BYTES = 10_000_000  # a pipeline, rules, gates or training config file larger than this is refused
# What the aliases (`*name`) of one file may add when expanded, counted as nodes plus scalar characters:
# a little reuse is fine, a "billion laughs" of nested aliases (a few hundred bytes that expand to
# gigabytes) is refused while the file is read.
MAX_ALIAS_EXPANSION = 1_000_000


class _AliasError(yaml.MarkedYAMLError):
    """An alias that is recursive or takes the file over MAX_ALIAS_EXPANSION."""


def _expanded_size(node: yaml.Node, sizes: dict[int, int]) -> int:
    """Nodes plus scalar characters of `node` with every alias in it expanded (memoised by node)."""
    if id(node) not in sizes:
        if isinstance(node, yaml.ScalarNode):
            sizes[id(node)] = 1 + len(node.value)
        elif isinstance(node, yaml.SequenceNode):
            sizes[id(node)] = 1 + sum(_expanded_size(n, sizes) for n in node.value)
        else:
            sizes[id(node)] = 1 + sum(_expanded_size(k, sizes) + _expanded_size(v, sizes) for k, v in node.value)
    return sizes[id(node)]


class _BoundedLoader(yaml.SafeLoader):
    """yaml.SafeLoader that refuses recursive aliases and aliases expanding past MAX_ALIAS_EXPANSION."""

    def __init__(self, stream):
        super().__init__(stream)
        self._expanded = 0
        self._sizes: dict[int, int] = {}
        self._open: list[str] = []  # anchors of the nodes being composed

    def compose_node(self, parent, index):
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent):
            if event.anchor in self._open:
                raise _AliasError(
                    None, None, f"the alias *{event.anchor} refers to itself (recursive)", event.start_mark
                )
            if event.anchor in self.anchors:
                self._expanded += _expanded_size(self.anchors[event.anchor], self._sizes)
                if self._expanded > MAX_ALIAS_EXPANSION:
                    raise _AliasError(
                        None,
                        None,
                        f"aliases expand to more than {MAX_ALIAS_EXPANSION:,} nodes and characters at *{event.anchor}"
                        " (an alias bomb?); write the values out, or reuse less",
                        event.start_mark,
                    )
            return super().compose_node(parent, index)
        anchor = getattr(event, "anchor", None)
        self._open.append(anchor)
        try:
            return super().compose_node(parent, index)
        finally:
            self._open.pop()


def _read_config(path: Path, what: str) -> str:
    """The file's text, refused past MAX_CONFIG_BYTES (checked on what is read, not only the size stat says)."""
    try:
        with open(path, "rb") as fh:
            data = fh.read(MAX_CONFIG_BYTES + 1)
            size = max(len(data), os.fstat(fh.fileno()).st_size)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the {what} file: {exc.strerror or exc}") from None
    if size > MAX_CONFIG_BYTES:
        raise ConfigError(
            f"{path}: the {what} file is {size:,} bytes; configuration files are limited to {MAX_CONFIG_BYTES:,} "
            "bytes (curate.schema.MAX_CONFIG_BYTES): keep large lists in files the rules name"
        )
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: {what} file is not UTF-8 text") from None


def load_yaml(path: Path, what: str) -> Any:
    """A YAML configuration file (pipeline, rules, gates, training config) as a mapping, bounded: at most
    MAX_CONFIG_BYTES, aliases expanding to at most MAX_ALIAS_EXPANSION, no recursive alias."""
    if not path.is_file():
        raise ConfigError(f"{path}: {what} file not found" + (" (not a regular file)" if path.exists() else ""))
    text = _read_config(path, what)
    try:
        data = yaml.load(text, Loader=_BoundedLoader)  # noqa: S506 - a SafeLoader
    except _AliasError as exc:
        mark = exc.problem_mark
        raise ConfigError(f"{path}: line {mark.line + 1}, column {mark.column + 1}: {exc.problem}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        raise ConfigError(f"{path}: not valid YAML{where}: {getattr(exc, 'problem', exc)}") from None
    except RecursionError:
        raise ConfigError(f"{path}: not valid YAML: nested too deeply") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of keys at the top level, got {type(data).__name__}")
    return data


def load_rules(path: Path, what: str = "rules", _chain: tuple[Path, ...] = ()) -> dict[str, Any]:
    """A rules file, with `extends: <file>` resolved: the file it names (relative to this one) is
    read first and this one merged over it, mapping by mapping; `key+: [...]` appends to the
    parent's list instead of replacing it (`recognizers+:` adds recognizers to the default's)."""
    path = Path(path)
    if path.resolve() in _chain:
        raise ConfigError(f"{path}: extends itself through {' -> '.join(str(p) for p in _chain)}")
    data = load_yaml(path, what)
    parent_ref = data.pop("extends", None)
    if parent_ref is None:
        appended = sorted(k for k in data if isinstance(k, str) and k.endswith("+"))
        if appended:
            raise ConfigError(
                f"{path}: '{appended[0]}' appends to an extended file's list, but the file has no 'extends:'"
            )
        return data
    if not isinstance(parent_ref, str):
        raise ConfigError(f"{path}: extends: expected the path of a rules file, got {parent_ref!r}")
    parent_path = config_path(parent_ref, path.parent)
    if not parent_path.is_file():
        raise ConfigError(f"{path}: extends: rules file not found: {parent_path}")
    return _merge(load_rules(parent_path, what, (*_chain, path.resolve())), data, path)


def _merge(base: dict[str, Any], over: dict[str, Any], source: Path, where: str = "") -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        name = key[:-1] if isinstance(key, str) and key.endswith("+") else key
        if name != key:
            if not isinstance(value, list) or not isinstance(base.get(name, []), list):
                raise ConfigError(f"{source}: {where}{key}: appending needs a list here and in the extended file")
            out[name] = [*base.get(name, []), *value]
        elif isinstance(value, dict) and isinstance(base.get(key), dict):
            out[key] = _merge(base[key], value, source, f"{where}{key}.")
        else:
            out[key] = value
    return out


def _field_model(model: type[BaseModel], loc: tuple) -> type[BaseModel] | None:
    """Walk a validation error location down the model tree to the model that owns it."""
    current: Any = model
    for part in loc:
        if isinstance(part, int):
            continue
        if not (isinstance(current, type) and issubclass(current, BaseModel)) or part not in current.model_fields:
            return None
        annotation = current.model_fields[part].annotation
        candidates = [annotation, *typing.get_args(annotation)]
        nested = [a for c in candidates for a in (c, *typing.get_args(c))]
        current = next((a for a in nested if isinstance(a, type) and issubclass(a, BaseModel)), None)
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def format_loc(loc: tuple, prefix: str = "") -> str:
    out = prefix
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "(top level)"


def validation_message(exc: ValidationError, model: type[BaseModel], source: Path, prefix: str = "") -> str:
    lines = []
    for err in exc.errors():
        loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-")))
        where = format_loc(loc, prefix)
        if err["type"] == "extra_forbidden":
            owner = _field_model(model, loc[:-1])
            allowed = ", ".join(owner.model_fields) if owner else "see the documentation"
            close = difflib.get_close_matches(str(loc[-1]), owner.model_fields if owner else [], n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            lines.append(f"{source}: {where}: unknown key{hint}; expected one of: {allowed}")
        elif err["type"] == "missing":
            lines.append(f"{source}: {where}: required key is missing")
        else:
            lines.append(f"{source}: {where}: {err['msg']} (got {err.get('input')!r})")
    return "\n".join(lines)


def parse_model(model: type[BaseModel], data: Any, source: Path, prefix: str = "") -> BaseModel:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(validation_message(exc, model, source, prefix)) from None

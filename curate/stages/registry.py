"""Stage registry: the names a pipeline's `stage:` key may use. Every module in curate/stages (but
base and this one) is imported, and each Stage subclass defined there with a `stage` name is
registered under it: adding a stage is adding its module. Kept out of the package's __init__, so
importing one stage (or curate.stages.base) loads that stage alone, not every stage."""

from __future__ import annotations

import importlib
import pkgutil

import curate.stages
from curate.errors import ConfigError
from curate.stages.base import Stage


def _discover() -> dict[str, type[Stage]]:
    found: dict[str, type[Stage]] = {}
    for info in sorted(pkgutil.iter_modules(curate.stages.__path__), key=lambda m: m.name):
        if info.name in ("base", "registry"):
            continue
        module = importlib.import_module(f"curate.stages.{info.name}")
        for obj in vars(module).values():
            if not (isinstance(obj, type) and issubclass(obj, Stage) and obj.__module__ == module.__name__):
                continue
            name = getattr(obj, "stage", None)
            if name is None:
                continue
            if name in found:
                raise ConfigError(f"two stages are named '{name}': {found[name].__qualname__} and {obj.__qualname__}")
            found[name] = obj
    return found


STAGES: dict[str, type[Stage]] = _discover()

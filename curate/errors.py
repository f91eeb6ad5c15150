"""Errors meant for people: each names the file, the key and what was expected."""


class CurateError(Exception):
    """Base class for errors the CLI reports without a traceback."""


class ConfigError(CurateError):
    """A pipeline or rules file is invalid; raised before any data is read."""


class InputError(CurateError):
    """An input file is missing or unreadable (bad rows are quarantined, not raised)."""


class AccountingError(CurateError):
    """A stage broke the invariant rows_in == kept + dropped + quarantined."""


class CatalogError(CurateError):
    """A catalog reference cannot be resolved, or a registered shard set is damaged."""

"""User metadata of catalog paths, with the DIRAC File Catalog's rules.

The fake and local backends keep their own (:class:`UserMetadata`); the DIRAC backend checks
what it sends against the fields its catalog declared, with the same functions. The rules:

- a key is a field, declared once for directories or for files, with a DIRAC type: ``INT`` (a
  Python int), ``FLOAT`` (a float, or an int) or ``VARCHAR(128)`` (a str); a ``DATETIME`` field
  declared elsewhere is read and queried as a str. A key's first use declares it: on a
  directory a directory field, on a file a file field (DIRAC's ``addMetadataField``);
- a directory key used on a file, or a file key on a directory, is an error; so is a value
  that is not of its field's type, or a str longer than 128 characters;
- a directory's metadata is inherited by everything below it; a directory key may be set on
  one directory of a branch only (DIRAC: "Metadata conflict detected");
- a query value is converted to its field's type before it is compared (``"2"`` finds INT 2);
  a query key that is no field is an error (DIRAC would ignore it and match every file).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from ..exceptions import BackendError

#: a metadata value, as DIRAC's INT, FLOAT and VARCHAR fields hold them
Value = str | int | float
DIRECTORY, FILE = "directory", "file"
#: the DIRAC type a key first used with a value of this Python type is declared with
TYPES: dict[type, str] = {int: "INT", float: "FLOAT", str: "VARCHAR(128)"}
VARCHAR_LENGTH = 128
#: the Python types of metadata values
Kind = type[int] | type[float] | type[str]


@dataclass(frozen=True)
class Field:
    """A declared metadata key: its level (:data:`DIRECTORY` or :data:`FILE`), its DIRAC type."""

    level: str
    type: str

    @property
    def python(self) -> Kind:
        """The Python type of its values: int, float or str (as DIRAC's ``MetaQuery`` reads
        a type name: ``int...``, ``float...``, anything else a str)."""
        name = self.type.lower()
        return int if name.startswith("int") else float if name.startswith("float") else str


def declared_type(path: str, key: str, value: Value) -> str:
    """The DIRAC type a new key gets from its first value."""
    found = TYPES.get(type(value))  # exact: a bool is no INT
    if found is None:
        raise BackendError(f"{path}: metadata {key}={value!r}: expected an int, float or str")
    return found


def checked(path: str, key: str, value: Value, declared: Field) -> Value:
    """``value`` as the declared field stores it; raise if it is not of the field's type."""
    kind = declared.python
    if type(value) is not kind and not (kind is float and type(value) is int):
        raise BackendError(f"{path}: metadata {key}={value!r} is not of its type {declared.type}")
    if isinstance(value, str) and len(value) > VARCHAR_LENGTH:
        raise BackendError(f"{path}: metadata {key}: value longer than {VARCHAR_LENGTH} "
                           "characters")
    return kind(value)


def declare(path: str, level: str, metadata: Mapping[str, Value],
            fields: Mapping[str, Field]) -> tuple[dict[str, Value], dict[str, Field]]:
    """Check ``metadata`` for a path of ``level``; return the values as they are stored and
    the fields to declare (the keys used for the first time)."""
    values: dict[str, Value] = {}
    new: dict[str, Field] = {}
    for key, value in metadata.items():
        known = fields.get(key) or Field(level, declared_type(path, key, value))
        if known.level != level:
            raise BackendError(f"{path}: metadata {key!r} is a {known.level} key, this is a "
                               f"{level}", f"set it on a {known.level}")
        values[key] = checked(path, key, value, known)
        if key not in fields:
            new[key] = known
    return values, new


def coerce(query: Mapping[str, Value], fields: Mapping[str, Field]) -> dict[str, Value]:
    """The query with each value converted to its field's type; raise for an unknown key or a
    value that does not convert."""
    converted: dict[str, Value] = {}
    for key, value in query.items():
        if key not in fields:
            raise BackendError(f"Metadata field {key} not defined",
                               f"known: {', '.join(sorted(fields)) or 'none'}")
        try:
            converted[key] = fields[key].python(str(value))  # 2.5 is no INT, "2" is
        except ValueError:
            raise BackendError(f"query {key}={value!r}: not of its type "
                               f"{fields[key].type}") from None
    return converted


def ancestors(path: str) -> list[str]:
    """The directories above ``path``, the root first: ``/a/b/c`` -> ``/``, ``/a``, ``/a/b``."""
    parts = [part for part in path.split("/") if part]
    return ["/" + "/".join(parts[:n]) for n in range(len(parts))]


def level_of(path: str, is_file: bool, files_below: bool, doing: str,
             values: Mapping[str, object]) -> str:
    """:data:`FILE` or :data:`DIRECTORY`, for a catalog whose directories are implicit: one is
    there while a file is below it, or once it holds metadata (``values``: each path's own);
    raise if ``path`` is neither (``doing``: what the caller could not do)."""
    if is_file:
        return FILE
    if files_below or path in values:
        return DIRECTORY
    raise missing(path, doing)


def missing(path: str, doing: str) -> BackendError:
    """The error for a ``path`` the catalog does not have (``doing``: what could not be done)."""
    return BackendError(f"cannot {doing} {path}: no such file or directory in the catalog")


def normalized(path: str) -> str:
    """``path`` without a trailing slash (the root stays ``/``)."""
    return path.rstrip("/") or "/"


@dataclass
class UserMetadata:
    """Declared fields and each path's own values: what the fake keeps, and what the local
    backend reads from its catalog for one call (the fields, and the values of the paths the
    call concerns)."""

    fields: dict[str, Field] = field(default_factory=dict)
    #: path -> its own metadata (not what it inherits)
    values: dict[str, dict[str, Value]] = field(default_factory=dict)

    def set(self, path: str, level: str, metadata: Mapping[str, Value]
            ) -> tuple[dict[str, Value], dict[str, Field]]:
        """Check and record ``metadata`` on ``path``; return the values and the new fields."""
        values, new = declare(path, level, metadata, self.fields)
        if level == DIRECTORY:
            above, below = ancestors(path), path.rstrip("/") + "/"
            for key in values:
                other = next((p for p, own in self.values.items() if key in own and (
                    p in above or p.startswith(below))), None)
                if other is not None:
                    raise BackendError(f"{path}: metadata conflict for {key!r}: already set "
                                       f"on {other}", "a directory key is set once per branch")
        self.fields.update(new)
        self.values.setdefault(path, {}).update(values)
        return values, new

    def get(self, path: str) -> dict[str, Value]:
        """The metadata of ``path``: its own and what it inherits from the directories above."""
        merged: dict[str, Value] = {}
        for place in [*ancestors(path), path]:
            merged.update(self.values.get(place, {}))
        return merged

    def find(self, lfns: Sequence[str], query: Mapping[str, Value]) -> list[str]:
        """The LFNs of ``lfns`` whose metadata match every key of ``query``."""
        wanted = coerce(query, self.fields).items()
        found = []
        for lfn in lfns:
            meta = self.get(lfn)
            if all(meta.get(key) == value for key, value in wanted):
                found.append(lfn)
        return found

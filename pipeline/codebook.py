"""The codebook: dimensions (stage, symptom, cause), their categories and cause subtypes.

Loaded from ``labels/codebook.yaml`` and validated here, once; every other module asks the
:class:`Codebook` for ids, display names, definitions and for the mapping of the study's
spellings and number codes.

>>> cb = load_codebook()
>>> cb.resolve("stage", "Node Transformation")
'node_conversion'
>>> cb.resolve("cause", 10, by="code")
'algorithmic_error'
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Literal

import yaml

from pipeline.errors import UserError
from pipeline.paths import default_codebook

DIMENSIONS: tuple[str, ...] = ("stage", "symptom", "cause")
SUBTYPE_DIMENSION = "cause_subtype"


@dataclass(frozen=True)
class Category:
    """One category of a dimension (or one subtype of a cause)."""

    id: str
    display: str
    definition: str
    aliases: tuple[str, ...] = ()
    codes: tuple[int, ...] = ()
    subtypes: tuple["Category", ...] = ()


@dataclass(frozen=True)
class Dimension:
    id: str
    display: str
    categories: tuple[Category, ...]

    def get(self, category_id: str) -> Category:
        for c in self.categories:
            if c.id == category_id:
                return c
        raise KeyError(category_id)


@dataclass(frozen=True)
class Codebook:
    """The validated taxonomy. ``version`` travels with every label written."""

    version: str
    dimensions: dict[str, Dimension] = field(default_factory=dict)
    path: Path | None = None

    def ids(self, dimension: str) -> list[str]:
        """Category ids of ``dimension`` in codebook order (``cause_subtype``: all subtypes)."""
        return self.choices(dimension)

    def subtypes(self, cause: str) -> list[str]:
        """Subtype ids of one cause (empty when the cause has none)."""
        return [s.id for s in self.dimensions["cause"].get(cause).subtypes]

    def category(self, dimension: str, category_id: str) -> Category:
        return self.dimensions[dimension].get(category_id)

    def display(self, dimension: str, category_id: str) -> str:
        """Display name of a category id; unknown ids (e.g. a binned ``other``) are title-cased."""
        try:
            cats = self._categories(dimension, None)
        except KeyError:
            cats = ()
        for c in cats:
            if c.id == category_id:
                return c.display
        return category_id.replace("_", " ").title()

    def resolve(
        self,
        dimension: str,
        value: object,
        *,
        by: Literal["any", "name", "code"] = "any",
        cause: str | None = None,
    ) -> str:
        """Map an id, a spelling (alias, case- and space-insensitive) or a number code to an id.

        ``dimension`` is ``stage``, ``symptom``, ``cause`` or ``cause_subtype`` (then ``cause``
        names the parent). Raises :class:`KeyError` with the valid choices when nothing matches.
        """
        cats = self._categories(dimension, cause)
        if by in ("any", "code") and _is_code(value):
            code = int(float(str(value)))
            for c in cats:
                if code in c.codes:
                    return c.id
            if by == "code":
                raise KeyError(_choices_msg(value, [f"{n}={c.id}" for c in cats for n in c.codes]))
        if by in ("any", "name"):
            key = _norm(str(value))
            for c in cats:
                if key == _norm(c.id) or key == _norm(c.display) or key in {_norm(a) for a in c.aliases}:
                    return c.id
        raise KeyError(_choices_msg(value, [c.id for c in cats] + [a for c in cats for a in c.aliases]))

    def choices(self, dimension: str, cause: str | None = None) -> list[str]:
        return [c.id for c in self._categories(dimension, cause)]

    def _categories(self, dimension: str, cause: str | None) -> tuple[Category, ...]:
        if dimension == SUBTYPE_DIMENSION:
            if cause is None:
                return tuple(s for c in self.dimensions["cause"].categories for s in c.subtypes)
            return self.dimensions["cause"].get(cause).subtypes
        return self.dimensions[dimension].categories


def _is_code(value: object) -> bool:
    try:
        f = float(str(value))
    except ValueError:
        return False
    return f == int(f)


def _norm(s: str) -> str:
    return " ".join(s.replace("_", " ").replace(".", "").lower().split())


def _choices_msg(value: object, choices: list[str]) -> str:
    return f"{value!r} is not a known category; valid: {', '.join(dict.fromkeys(choices))}"


def _category(raw: dict, where: str) -> Category:
    for key in ("id", "display", "definition"):
        if not isinstance(raw.get(key), str) or not raw[key].strip():
            raise UserError(f"{where}: category needs a non-empty '{key}' (got {raw.get(key)!r})")
    codes = raw.get("codes") or []
    if not all(isinstance(c, int) for c in codes):
        raise UserError(f"{where}/{raw['id']}: codes must be integers (got {codes!r})")
    subs = tuple(_category(s, f"{where}/{raw['id']}") for s in raw.get("subtypes") or [])
    return Category(
        id=raw["id"],
        display=raw["display"],
        definition=" ".join(raw["definition"].split()),
        aliases=tuple(str(a) for a in raw.get("aliases") or []),
        codes=tuple(codes),
        subtypes=subs,
    )


def parse_codebook(data: dict, path: Path | None = None) -> Codebook:
    """Validate a codebook mapping (as read from YAML): unique ids, aliases and codes per dimension."""
    where = str(path or "codebook")
    if not isinstance(data, dict) or not isinstance(data.get("version"), str):
        raise UserError(f"{where}: needs a top-level 'version' string")
    dims_raw = data.get("dimensions")
    if not isinstance(dims_raw, dict):
        raise UserError(f"{where}: needs a 'dimensions' mapping")
    missing = [d for d in DIMENSIONS if d not in dims_raw]
    if missing:
        raise UserError(f"{where}: missing dimension(s) {', '.join(missing)}")
    dims: dict[str, Dimension] = {}
    for dim_id in DIMENSIONS:
        raw = dims_raw[dim_id]
        cats = tuple(_category(c, f"{where}:{dim_id}") for c in raw.get("categories") or [])
        if not cats:
            raise UserError(f"{where}:{dim_id}: no categories")
        groups = [cats] + [c.subtypes for c in cats if c.subtypes]
        for group in groups:
            seen_ids: set[str] = set()
            seen_alias: dict[str, str] = {}
            seen_code: dict[int, str] = {}
            for c in group:
                if c.id in seen_ids:
                    raise UserError(f"{where}:{dim_id}: duplicate id {c.id!r}")
                seen_ids.add(c.id)
                for a in c.aliases:
                    if _norm(a) in seen_alias and seen_alias[_norm(a)] != c.id:
                        raise UserError(f"{where}:{dim_id}: alias {a!r} used by {seen_alias[_norm(a)]!r} and {c.id!r}")
                    seen_alias[_norm(a)] = c.id
                for n in c.codes:
                    if n in seen_code:
                        raise UserError(f"{where}:{dim_id}: code {n} used by {seen_code[n]!r} and {c.id!r}")
                    seen_code[n] = c.id
        dims[dim_id] = Dimension(id=dim_id, display=str(raw.get("display", dim_id)), categories=cats)
    return Codebook(version=data["version"], dimensions=dims, path=path)


@lru_cache(maxsize=8)
def _load_cached(path: Path, mtime: float) -> Codebook:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        raise UserError(f"{path}: not valid YAML: {e}".replace("\n", " ")) from None
    return parse_codebook(data, path)


def load_codebook(path: Path | str | None = None) -> Codebook:
    """Load and validate the codebook (default ``labels/codebook.yaml``)."""
    p = Path(path) if path else default_codebook()
    if not p.is_file():
        raise UserError(f"{p}: codebook not found")
    return _load_cached(p.resolve(), p.stat().st_mtime)

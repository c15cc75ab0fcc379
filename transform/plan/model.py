"""The declarations a conversion plan is made of (data, no behaviour)."""

from __future__ import annotations

from dataclasses import dataclass, field

from transform.rules import RULES


@dataclass(frozen=True)
class Rule:
    """One step of a fate cascade: rows matching ``when`` (SQL over the source row ``s`` and the mapping joins)
    and no earlier rule get ``code``; ``detail`` (SQL, text) says why, for the quarantine list."""

    code: str
    when: str
    detail: str = "''"

    def __post_init__(self) -> None:
        if self.code not in RULES:
            raise ValueError(f"unknown rule code {self.code!r}: add it to transform/rules.py first")

    @property
    def kind(self) -> str:
        return "quarantined" if self.code.startswith("Q-") else "excluded"


@dataclass(frozen=True)
class Mapping:
    """A value computed once per distinct source value by a pure Python function (transform/codes.py), joined
    back by SQL: ``name`` is the joined table's alias, ``source`` the SQL expression it is keyed on, ``fn`` a
    registered function name of :mod:`transform.plan.functions` returning the named ``outputs``."""

    name: str
    source: str
    fn: str
    outputs: tuple[str, ...]
    # only the values of the rows matching this (SQL over ``s``) are mapped — e.g. a value printed in a
    # quarantine detail is needed for the quarantined rows only; other rows join no value (NULL outputs)
    where: str | None = None


@dataclass(frozen=True)
class TablePlan:
    source_db: str
    source_table: str
    target: str | None                      # None: the rows are merged into rows of another table (fates only)
    key: tuple[str, ...]                    # SQL expressions (trimmed values) forming the duplicate key
    key_detail: str                         # SQL text naming the duplicate, e.g. 'MA_NPL=' || …
    cascade: tuple[Rule, ...]               # before the key check, in order
    columns: dict[str, str]                 # target column -> SQL expression (the ID column excluded)
    id_column: str | None                   # the column that gets a new 14-digit ID (None: the rows get none)
    id_type_digit: int
    registry_kind: str | None               # the ID registry kind of the key (transform/registry.py)
    mappings: tuple[Mapping, ...] = ()
    # target column -> the column name the text-fix report gives (TCVN3 → Unicode; mapping ``text_<column>``)
    text_fix_columns: dict[str, str] = field(default_factory=dict)
    # target columns mapped by the unit map (mapping ``unit_<column>``): unmapped units are a finding
    unit_columns: tuple[str, ...] = ()
    # the order rows are taken in (SQL over ``s``; the restore order breaks ties): the first of a key converts,
    # IDs are numbered in it, and every list (quarantine, text fixes, truncations) follows it
    order: tuple[str, ...] = ()
    # further joins (SQL, after the mapping joins): other staging tables, or lookup tables the step registers
    # under the names in ``lookups`` (what earlier tables converted: contracts, blocked declarations…)
    joins: tuple[str, ...] = ()
    lookups: tuple[str, ...] = ()
    # rules checked after the key: a row they match is not the key's occurrence (a later row may be), but a row after
    # the key's occurrence is a duplicate whatever they say (e.g. a norm whose product is not in the catalog)
    key_rules: tuple[Rule, ...] = ()
    # rules for the first occurrence of a key, before it converts (e.g. its parent was quarantined); they read
    # the values ``carry`` computes per row (alias -> SQL over ``s`` and the joins)
    after_key: tuple[Rule, ...] = ()
    carry: dict[str, str] = field(default_factory=dict)
    # True (catalogs, declarations): a first occurrence too long for central frees the key for a later one (the
    # rules forget its lookups); False (lines): the key stays taken, later occurrences are duplicates
    too_long_frees_key: bool = True
    # False: rows are not deduplicated by key (each row is merged into its parent; the key only names it)
    dedup: bool = True
    # rows of several source tables (``sources``): an SQL query with a ``_SOURCE`` column naming each row's table;
    # materialized in ``order``, then ``derive`` adds columns computed over those rows (window functions over the
    # rows of a declaration, ``s.rowid`` being the order). Columns named with a leading '_' are the plan's own.
    source_sql: str | None = None
    sources: tuple[str, ...] = ()
    derive: dict[str, str] = field(default_factory=dict)
    # target columns computed after the fates (SQL over the plan's rows: ``_code``, ``_kind``, carried columns)
    late_columns: dict[str, str] = field(default_factory=dict)
    # the ID sequence the IDs continue (table name; default the target's), e.g. DSX_NPL_NHAP's HS_ID is the
    # sequence of DSX_NPL_NHAP_TL, whose rows share it
    id_table: str | None = None
    # rows of a second table made from each converted row: ``child_target`` gets ``child_columns`` (SQL over the
    # converted row ``r`` — its columns, ``_id``, ``_src_key`` — and ``child_from``'s joins), in ``child_order``
    child_target: str | None = None
    child_from: str = ""
    child_columns: dict[str, str] = field(default_factory=dict)
    child_order: tuple[str, ...] = ()
    # the order the text-fix report lists rows in, when the rules build rows in another order than they take them
    # (SQL over the plan's rows, late columns included; the row order breaks ties)
    report_order: tuple[str, ...] = ()

    @property
    def id_sequence(self) -> tuple[str | None, int]:
        return (self.id_table or self.target, self.id_type_digit)

    @property
    def source(self) -> str:
        return f"{self.source_db}.{self.source_table}"

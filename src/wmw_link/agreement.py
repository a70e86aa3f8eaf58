"""Data-sharing agreements: pydantic models, loading, and the policy checks every stage uses.

An agreement says who the parties are and what role each plays, which datasets each
controller shares, which of a dataset's columns are identifiers (tokenised for the trusted
third party) and which are payload (passed to the analysts), and the disclosure-control policy
for outputs. Every later stage loads it and refuses what it does not allow.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    ValidationError,
    field_validator,
    model_serializer,
    model_validator,
)

from wmw_link.errors import AgreementError, PolicyError
from wmw_link.normalise.dates import MAX_AGE_YEARS
from wmw_link.token_schema import is_token_column

SCHEMA_VERSION = 1
_SLUG = r"^[a-z][a-z0-9_-]*$"


class Role(StrEnum):
    CONTROLLER = "controller"
    TTP = "ttp"
    ANALYST = "analyst"


class IdentifierType(StrEnum):
    FORENAME = "forename"
    SURNAME = "surname"
    FULL_NAME = "full_name"
    DATE_OF_BIRTH = "date_of_birth"
    SEX = "sex"
    POSTCODE = "postcode"
    NINO = "nino"
    NHS_NUMBER = "nhs_number"
    # Generic types for any partner's extract (several of each per dataset, told apart by name).
    IDENTIFIER = "identifier"  # any exact id: a social security or passport number
    TEXT = "text"  # free text compared fuzzily: an address line


#: Types a dataset may list several times (each field has its own token columns, by name).
GENERIC_TYPES = frozenset({IdentifierType.IDENTIFIER, IdentifierType.TEXT})

#: Token sources each single-valued type writes (full_name writes both names): two fields
#: writing one source would overwrite each other's tokens.
_WRITES: dict[IdentifierType, tuple[str, ...]] = {
    IdentifierType.FORENAME: ("forename",),
    IdentifierType.SURNAME: ("surname",),
    IdentifierType.FULL_NAME: ("forename", "surname"),
    IdentifierType.DATE_OF_BIRTH: ("date_of_birth",),
    IdentifierType.SEX: ("sex",),
    IdentifierType.POSTCODE: ("postcode",),
    IdentifierType.NINO: ("nino",),
    IdentifierType.NHS_NUMBER: ("nhs_number",),
}

#: ISO date, the format a date_of_birth without ``format`` is read in (Parquet date columns
#: are read as ISO text).
ISO_DATE = "%Y-%m-%d"


def slug(text: str) -> str:
    """A token-name slug of a column name: lower case, runs of other characters to ``_``."""
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")


class PayloadType(StrEnum):
    STRING = "string"
    CATEGORY = "category"
    INTEGER = "integer"
    NUMBER = "number"
    DATE = "date"
    BOOLEAN = "boolean"
    YEAR = "year"  # the year of a date column (e.g. year of birth from a date of birth)
    POSTCODE_DISTRICT = "postcode_district"  # outward code of a postcode column


_DATE_TYPES = {PayloadType.DATE, PayloadType.YEAR}

# Payload types that coarsen an identifier enough to pass to the analysts: a birth year, not a
# date of birth; a postcode district, not a postcode. Any other payload field drawn from an
# identifier column would hand the analysts the identifier itself.
_COARSENING = {PayloadType.YEAR, PayloadType.POSTCODE_DISTRICT}


def _check_date_format(fmt: str) -> None:
    """Refuse a strptime format that cannot describe a whole date (day, month and year)."""
    has_year = "%Y" in fmt or "%y" in fmt
    has_month = any(d in fmt for d in ("%m", "%b", "%B"))
    has_day = "%d" in fmt or "%j" in fmt
    if not (has_year and has_month and has_day):
        raise ValueError(f"format '{fmt}' must give a day, a month and a year (e.g. '%d/%m/%Y')")
    sample = dt.date(1987, 11, 23)
    try:
        back = dt.datetime.strptime(sample.strftime(fmt), fmt).date()
    except ValueError:
        back = None
    if back != sample:
        raise ValueError(
            f"format '{fmt}' is not a valid strptime pattern that reads its own dates back"
        )


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Party(_Model):
    id: str = Field(pattern=_SLUG)
    name: str
    role: Role


class IdentifierField(_Model):
    column: str = Field(min_length=1)
    type: IdentifierType
    format: str | None = Field(
        default=None,
        description="strptime format for dates, e.g. '%d/%m/%Y' (default ISO '%Y-%m-%d', which "
        "is also how a Parquet date column reads)",
    )
    required: bool = Field(
        default=False, description="a row without a valid value is rejected, not nulled"
    )
    name: str | None = Field(
        default=None,
        pattern=r"^[a-z][a-z0-9_]{0,30}$",
        description="identifier and text fields: the name in their token columns (default: "
        "the column name in lower case, other characters as '_')",
    )
    max_age: int = Field(
        default=MAX_AGE_YEARS,
        ge=1,
        le=200,
        description="date_of_birth: older dates are typing errors and become null (an "
        "extract made long ago, or a historical register, may need more)",
    )
    country: Literal["gb", "any"] = Field(
        default="gb",
        description="postcode: 'gb' checks the UK format (and derives the sector); 'any' only "
        "normalises (upper case, spaces and punctuation removed)",
    )

    @model_validator(mode="after")
    def _checks(self) -> IdentifierField:
        if self.format is not None:
            if self.type != IdentifierType.DATE_OF_BIRTH:
                raise ValueError("'format' is only allowed on a date_of_birth identifier")
            _check_date_format(self.format)
        if self.max_age != MAX_AGE_YEARS and self.type != IdentifierType.DATE_OF_BIRTH:
            raise ValueError("'max_age' is only allowed on a date_of_birth identifier")
        if self.name is not None and self.type not in GENERIC_TYPES:
            raise ValueError("'name' is only allowed on identifier and text fields")
        if self.country != "gb" and self.type != IdentifierType.POSTCODE:
            raise ValueError("'country' is only allowed on a postcode identifier")
        if self.type in GENERIC_TYPES and not re.fullmatch(r"[a-z][a-z0-9_]{0,30}", self.token_name):
            raise ValueError(
                f"column '{self.column}' gives no usable token name: give the field a 'name' "
                "(a lower-case letter, then letters, digits or '_', at most 31)"
            )
        return self

    @model_serializer(mode="wrap")
    def _omit_defaults(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        # Options added for generic fields are left out while at their defaults, so that an
        # agreement that does not use them keeps the hash it had before they existed.
        out: dict[str, Any] = handler(self)
        for key, default in (("name", None), ("country", "gb"), ("max_age", MAX_AGE_YEARS)):
            if out.get(key) == default:
                out.pop(key, None)
        return out

    @property
    def token_name(self) -> str:
        """Identifier and text fields: the name their token columns carry."""
        return self.name or slug(self.column)

    @property
    def date_format(self) -> str:
        """The strptime format of a date_of_birth (ISO when the agreement gives none)."""
        return self.format or ISO_DATE

    @property
    def label(self) -> str:
        """How problems name the field: its column and type."""
        return f"'{self.column}' ({self.type.value})"


class PayloadField(_Model):
    column: str = Field(min_length=1)
    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$", description="column name in the payload file")
    type: PayloadType
    format: str | None = None
    categories: tuple[str, ...] | None = None
    to_analyst: bool = True

    @model_validator(mode="after")
    def _dates_need_format(self) -> PayloadField:
        if self.type in _DATE_TYPES and not self.format:
            raise ValueError(
                f"a {self.type.value} payload field needs a 'format' (strptime pattern)"
            )
        if self.categories is not None and self.type != PayloadType.CATEGORY:
            raise ValueError("'categories' is only allowed on a category field")
        if self.format is not None and self.type in _DATE_TYPES:
            _check_date_format(self.format)
        return self


class Dataset(_Model):
    id: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    controller: str
    description: str = ""
    record_id: str = Field(min_length=1, description="the controller's own record id column")
    identifiers: list[IdentifierField] = Field(min_length=1)
    payload: list[PayloadField] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique_names(self) -> Dataset:
        cols = [f.column for f in self.identifiers]
        dupes = sorted({c for c in cols if cols.count(c) > 1})
        if dupes:
            raise ValueError(f"identifier columns listed twice: {', '.join(dupes)}")
        clashes = _clashes(self.identifiers)
        if clashes:
            raise ValueError("rule 'one field per token': " + "; ".join(clashes))
        names = [f.name for f in self.payload]
        dupe_names = sorted({n for n in names if names.count(n) > 1})
        if dupe_names:
            raise ValueError(f"payload names listed twice: {', '.join(dupe_names)}")
        if "row_ref" in names:
            raise ValueError("payload name 'row_ref' is reserved")
        tokenlike = sorted(n for n in names if is_token_column(n))
        if tokenlike:
            # The analysts' guards refuse token-named columns: a payload must not look like one.
            raise ValueError(f"payload names {', '.join(tokenlike)} are token column names")
        if self.record_id in cols:
            raise ValueError(f"record_id column '{self.record_id}' cannot also be an identifier")
        id_types = {f.column: f.type for f in self.identifiers}
        for f in self.payload:
            kind = id_types.get(f.column)
            if f.column == self.record_id:
                raise ValueError(
                    f"rule 'separation': payload field '{f.name}' would pass the record id "
                    f"column '{f.column}' to the analysts; they get row_ref instead"
                )
            if (
                f.type == PayloadType.POSTCODE_DISTRICT
                and kind == IdentifierType.POSTCODE
                and any(i.column == f.column and i.country != "gb" for i in self.identifiers)
            ):
                raise ValueError(
                    f"payload field '{f.name}': a postcode district is derived by the UK "
                    f"format, and identifier column '{f.column}' is a postcode of country 'any'"
                )
            if kind is None or f.type in _COARSENING or not f.to_analyst:
                continue
            if kind == IdentifierType.SEX and f.type == PayloadType.CATEGORY:
                continue  # sex is a characteristic the measures need, not an identifier alone
            raise ValueError(
                f"rule 'separation': payload field '{f.name}' would pass identifier column "
                f"'{f.column}' ({kind.value}) to the analysts as {f.type.value}; only a year "
                "(of a date) or a postcode district may be derived from an identifier"
            )
        return self

    def identifier(self, kind: IdentifierType) -> IdentifierField | None:
        return next((f for f in self.identifiers if f.type == kind), None)

    def analyst_payload(self) -> list[PayloadField]:
        """Payload fields that may reach the analysts (the only ones tokenise writes)."""
        return [f for f in self.payload if f.to_analyst]


def _clashes(fields: list[IdentifierField]) -> list[str]:
    """Pairs of identifier fields that would write the same tokens, each naming both fields."""
    out: list[str] = []
    seen: dict[str, IdentifierField] = {}
    for f in fields:
        if f.type in GENERIC_TYPES:
            writes: tuple[str, ...] = (f"{f.type.value}:{f.token_name}",)
        else:
            writes = _WRITES[f.type]
        for source in writes:
            first = seen.get(source)
            if first is None:
                seen[source] = f
                continue
            if f.type in GENERIC_TYPES:
                what = f"the {f.type.value} tokens named '{f.token_name}' (give one a 'name')"
            else:
                what = f"the {source} tokens"
            out.append(f"identifier fields {first.label} and {f.label} would both write {what}")
    return out


class DisclosureTier(_Model):
    min_cell: int = Field(default=10, ge=1, description="counts below this are suppressed")
    rounding_base: int = Field(default=5, ge=1, description="counts are rounded to this base")
    min_denominator: int = Field(
        default=10, ge=1, description="rates and medians need at least this many people"
    )


class DisclosurePolicy(_Model):
    internal: DisclosureTier = DisclosureTier()
    public: DisclosureTier = DisclosureTier(min_cell=20, rounding_base=10, min_denominator=50)

    @model_validator(mode="after")
    def _public_is_stricter(self) -> DisclosurePolicy:
        i, p = self.internal, self.public
        if (
            p.min_cell < i.min_cell
            or p.rounding_base < i.rounding_base
            or p.min_denominator < i.min_denominator
        ):
            raise ValueError("the public tier must be at least as strict as the internal tier")
        return self


class Agreement(_Model):
    schema_version: Literal[1] = SCHEMA_VERSION
    id: str = Field(pattern=_SLUG)
    version: int = Field(ge=1)
    compatible_with: list[int] = Field(
        default_factory=list,
        description="earlier versions whose outputs this version accepts (same identifiers)",
    )
    title: str
    purpose: str
    lawful_basis: str
    valid_from: dt.date
    valid_until: dt.date
    parties: list[Party] = Field(min_length=1)
    datasets: list[Dataset] = Field(min_length=1)
    disclosure: DisclosurePolicy = DisclosurePolicy()

    @field_validator("compatible_with")
    @classmethod
    def _sorted_unique(cls, v: list[int]) -> list[int]:
        return sorted(set(v))

    @model_validator(mode="after")
    def _consistent(self) -> Agreement:
        problems: list[str] = []
        if self.valid_until <= self.valid_from:
            problems.append("valid_until must be after valid_from")
        if any(v >= self.version for v in self.compatible_with):
            problems.append("compatible_with may only name earlier versions")
        ids = [p.id for p in self.parties]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            problems.append(f"party ids listed twice: {', '.join(dupes)}")
        roles = {p.id: p.role for p in self.parties}
        for needed in (Role.TTP, Role.ANALYST):
            if needed not in roles.values():
                problems.append(f"no party has the role '{needed.value}'")
        ds_ids = [d.id for d in self.datasets]
        ds_dupes = sorted({i for i in ds_ids if ds_ids.count(i) > 1})
        if ds_dupes:
            problems.append(f"dataset ids listed twice: {', '.join(ds_dupes)}")
        for i, d in enumerate(self.datasets):
            if d.controller not in roles:
                problems.append(
                    f"datasets[{i}] ({d.id}).controller: unknown party '{d.controller}'"
                )
            elif roles[d.controller] != Role.CONTROLLER:
                problems.append(
                    f"datasets[{i}] ({d.id}).controller: party '{d.controller}' has role "
                    f"'{roles[d.controller].value}', not 'controller'"
                )
        if problems:
            raise ValueError("; ".join(problems))
        return self

    # -- look-ups ---------------------------------------------------------------------------

    @property
    def hash(self) -> str:
        """SHA-256 of the agreement's canonical JSON: layout and comments do not change it."""
        canonical = json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()

    def party(self, party_id: str) -> Party:
        for p in self.parties:
            if p.id == party_id:
                return p
        raise PolicyError(f"party '{party_id}' is not in agreement {self.id} v{self.version}")

    def dataset(self, dataset_id: str) -> Dataset:
        for d in self.datasets:
            if d.id == dataset_id:
                return d
        raise PolicyError(f"dataset '{dataset_id}' is not in agreement {self.id} v{self.version}")

    def parties_with_role(self, role: Role) -> list[Party]:
        return [p for p in self.parties if p.role == role]

    def default_party(self, role: Role) -> str:
        """The one party with ``role``; an error when there are several to choose from."""
        found = self.parties_with_role(role)
        if len(found) != 1:
            names = ", ".join(p.id for p in found) or "none"
            raise PolicyError(
                f"agreement {self.id} has {len(found)} parties with role '{role.value}' ({names}): "
                "say which one you are with --as"
            )
        return found[0].id

    # -- policy checks ----------------------------------------------------------------------

    def require_role(self, party_id: str, role: Role, action: str) -> Party:
        """Refuse ``action`` unless ``party_id`` is in the agreement with ``role``."""
        party = self.party(party_id)
        if party.role != role:
            raise PolicyError(
                f"rule 'roles': party '{party_id}' has role '{party.role.value}' in agreement "
                f"{self.id} v{self.version}; only a '{role.value}' may {action}"
            )
        return party

    def require_controller_of(self, party_id: str, dataset_id: str) -> Dataset:
        ds = self.dataset(dataset_id)
        self.require_role(party_id, Role.CONTROLLER, "tokenise a dataset")
        if ds.controller != party_id:
            raise PolicyError(
                f"rule 'controller': dataset '{dataset_id}' belongs to '{ds.controller}', "
                f"not to '{party_id}'"
            )
        return ds

    def require_in_force(self, on: dt.date | None = None) -> None:
        """Refuse to act outside the agreement's validity dates."""
        on = on or dt.date.today()
        if on < self.valid_from:
            raise PolicyError(
                f"rule 'validity': agreement {self.id} v{self.version} is not in force until "
                f"{self.valid_from.isoformat()} (today is {on.isoformat()})"
            )
        if on > self.valid_until:
            raise PolicyError(
                f"rule 'validity': agreement {self.id} v{self.version} expired on "
                f"{self.valid_until.isoformat()} (today is {on.isoformat()})"
            )

    def accepts_version(self, version: int) -> bool:
        """Whether outputs made under ``version`` of this agreement may be used with it."""
        return version == self.version or version in self.compatible_with


def _format_loc(data: object, loc: tuple[int | str, ...]) -> str:
    """Render a pydantic error location with dataset/party ids where they help."""
    parts: list[str] = []
    node = data
    for item in loc:
        if isinstance(item, int):
            label = f"[{item}]"
            if isinstance(node, list) and 0 <= item < len(node):
                node = node[item]
                if isinstance(node, dict) and isinstance(node.get("id"), str):
                    label += f" ({node['id']})"
                elif isinstance(node, dict) and isinstance(node.get("column"), str):
                    label += f" ({node['column']})"
            parts.append(label)
        else:
            parts.append(("." if parts else "") + str(item))
            node = node.get(item) if isinstance(node, dict) else None
    return "".join(parts) or "(top level)"


def parse_agreement(data: object, source: str = "<agreement>") -> Agreement:
    """Validate a mapping as an :class:`Agreement`, reporting every problem at once."""
    if not isinstance(data, dict):
        raise AgreementError(f"{source}: an agreement must be a mapping at the top level")
    found = data.get("schema_version", SCHEMA_VERSION)
    if found != SCHEMA_VERSION:
        raise AgreementError(
            f"{source}: schema_version {found!r} is not supported (this wmw-link reads {SCHEMA_VERSION})"
        )
    # Top-level "x-" keys hold YAML anchors (shared field lists) and are not part of the model.
    data = {k: v for k, v in data.items() if not str(k).startswith("x-")}
    try:
        return Agreement.model_validate(data)
    except ValidationError as e:
        lines = []
        for err in e.errors():
            where = _format_loc(data, tuple(err["loc"]))
            msg = err["msg"].removeprefix("Value error, ")
            lines.append(f"  - {where}: {msg}")
        raise AgreementError(
            f"{source}: {len(lines)} problem(s) in the agreement:\n" + "\n".join(lines)
        ) from None


def load_agreement(path: str | Path) -> Agreement:
    """Load and validate an agreement YAML (or JSON) file.

    Raises:
        AgreementError: the file is missing, not YAML, or breaks the schema (all problems listed).
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise AgreementError(f"{path}: agreement file not found") from None
    except (OSError, UnicodeDecodeError) as e:
        raise AgreementError(f"{path}: cannot read the agreement ({type(e).__name__})") from None
    try:
        data = yaml.safe_load(text)
    except ValueError as e:  # PyYAML parses dates itself and raises on e.g. 2025-99-31
        raise AgreementError(f"{path}: not valid YAML: {e}") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise AgreementError(f"{path}: not valid YAML{where}") from None
    return parse_agreement(data, source=str(path))


def summarise(agreement: Agreement) -> str:
    """A readable summary: who sends what to whom."""
    a = agreement
    ttp = ", ".join(p.id for p in a.parties_with_role(Role.TTP))
    analysts = ", ".join(p.id for p in a.parties_with_role(Role.ANALYST))
    names = {p.id: p.name for p in a.parties}
    out = [
        f"Agreement {a.id} v{a.version}: {a.title}",
        f"  valid {a.valid_from.isoformat()} to {a.valid_until.isoformat()}; hash {a.hash[:16]}",
        f"  purpose: {_one_line(a.purpose)}",
        f"  lawful basis: {_one_line(a.lawful_basis)}",
        f"  trusted third party: {ttp}; analysts: {analysts}",
        "",
        f"  {len(a.datasets)} dataset(s):",
    ]
    for d in a.datasets:
        ids = ", ".join(f"{f.column} ({f.type.value})" for f in d.identifiers)
        to_analyst = ", ".join(f.name for f in d.analyst_payload()) or "nothing"
        withheld = [f.column for f in d.payload if not f.to_analyst]
        out.append(f"  - {d.id} from {d.controller} ({names.get(d.controller, '?')})")
        out.append(f"      to {ttp} as tokens: {ids}")
        out.append(f"      to {analysts} as payload: {to_analyst}")
        if withheld:
            out.append(f"      withheld from everyone: {', '.join(withheld)}")
    pol = a.disclosure
    out += [
        "",
        "  disclosure control: internal tables min cell "
        f"{pol.internal.min_cell}, rounding to {pol.internal.rounding_base}, rates from "
        f"{pol.internal.min_denominator}; public tier min cell {pol.public.min_cell}, rounding "
        f"to {pol.public.rounding_base}, rates from {pol.public.min_denominator}",
    ]
    return "\n".join(out)


def _one_line(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()

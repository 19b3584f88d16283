"""The catalogue as frozen pydantic models: the contract between files, logic and agents.

Files (under ``catalog/``, see docs/CHAIN.md):

- ``elements.yaml``             data elements, the shared vocabulary (:class:`DataElement`)
- ``agencies.yaml``             agencies that publish or consume (:class:`Agency`)
- ``datasets/<id>.yaml``        canonical datasets built from elements (:class:`Dataset`)
- ``mappings/<agency>/<dataset>.v<N>.yaml``  agency dialect -> canonical (:class:`Mapping`)
- ``sharing/list.v<N>.yaml``    the sharing-responsibility list, one file per version
                                (:class:`SharingList`)
- ``codes/gb2260.csv``          administrative division code table (GB/T 2260)
- ``keys.yaml``                 public signing keys with validity and revocation
                                (:class:`PublicKey`; docs/SECURITY.md)

Models here hold no behaviour beyond field-level validation; cross-references are checked by
:mod:`shulian.catalog.load`, behaviour lives in :mod:`shulian.logic`.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Literal, NewType

from pydantic import BaseModel, ConfigDict, Field, model_validator

AgencyId = NewType("AgencyId", str)
DatasetId = NewType("DatasetId", str)
ElementId = NewType("ElementId", str)
EntryId = NewType("EntryId", str)

_ID = r"^[a-z][a-z0-9_]{1,63}$"


class Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


# --- data elements -------------------------------------------------------------------------


class ElementType(StrEnum):
    """What kind of value a data element holds; decides checks, Avro type and allowed masks."""

    CITIZEN_ID = "citizen_id"  # GB 11643, 18 chars (15-digit legacy converted)
    CREDIT_CODE = "credit_code"  # GB 32100 unified social credit code
    REGION_CODE = "region_code"  # GB/T 2260, 6 digits, checked against the code table
    SEX = "sex"  # GB/T 2261.1: 0, 1, 2, 9
    DATE = "date"  # Avro int date (days since epoch), Asia/Shanghai
    TIMESTAMP = "timestamp"  # Avro long timestamp-millis
    MONEY_FEN = "money_fen"  # integer fen
    TEXT = "text"  # trimmed, full-width ASCII folded
    PERSON_NAME = "person_name"  # text, maskable as 张*
    CODE = "code"  # value from the element's own code list
    INTEGER = "integer"
    PHONE = "phone"  # mainland mobile or fixed line, digits only


class DataElement(Frozen):
    """One canonical data element (数据元)."""

    id: ElementId = Field(pattern=_ID)
    name: str = Field(min_length=1, description="human name, e.g. 公民身份号码")
    type: ElementType
    standard: str | None = Field(default=None, description="e.g. GB 11643-1999")
    description: str = ""
    max_length: int | None = Field(default=None, ge=1)
    codes: dict[str, str] | None = Field(
        default=None, description="code -> meaning, required for type code"
    )
    timezone: str = "Asia/Shanghai"

    @model_validator(mode="after")
    def _codes_for_code_type(self) -> DataElement:
        if self.type is ElementType.CODE and not self.codes:
            raise ValueError("an element of type 'code' needs a non-empty 'codes' table")
        return self


class ElementCatalog(Frozen):
    elements: list[DataElement]


# --- agencies ------------------------------------------------------------------------------


class Agency(Frozen):
    id: AgencyId = Field(pattern=_ID)
    name: str = Field(min_length=1, description="e.g. 广州市公安局")
    region_code: str = Field(pattern=r"^\d{6}$")
    contact: str = ""


class AgencyCatalog(Frozen):
    agencies: list[Agency]


# --- canonical datasets --------------------------------------------------------------------


class DatasetField(Frozen):
    name: str = Field(pattern=_ID)
    element: ElementId
    required: bool = True
    doc: str = ""


class Dataset(Frozen):
    """A canonical dataset; its Avro schema (schemas/canonical/<id>.avsc) is built from this."""

    id: DatasetId = Field(pattern=_ID)
    name: str = Field(min_length=1)
    version: int = Field(ge=1)
    description: str = ""
    key: list[str] = Field(min_length=1, description="fields whose values form the record key")
    fields: list[DatasetField] = Field(min_length=1)
    order_by: str | None = Field(default=None, description=(
        "the field holding the record's source time (a timestamp or date): of two records "
        "for one verification lookup key, the store keeps the one newest by it "
        "(docs/VERIFY.md); unset: the time the record entered the chain"))

    @model_validator(mode="after")
    def _order_by_is_a_field(self) -> Dataset:
        if self.order_by is not None and self.field(self.order_by) is None:
            raise ValueError(f"order_by: {self.order_by!r} is not a field of the dataset")
        return self

    def field(self, name: str) -> DatasetField | None:
        return next((f for f in self.fields if f.name == name), None)


# --- agency mappings -----------------------------------------------------------------------


class MoneyUnit(StrEnum):
    FEN = "fen"
    JIAO = "jiao"
    YUAN = "yuan"
    WAN_YUAN = "wan_yuan"  # 万元


class RegionInput(StrEnum):
    CODE = "code"  # current or retired 6-digit code
    NAME = "name"  # region name (e.g. 天河区), resolved through the code table
    CODE_OR_NAME = "code_or_name"


class FieldMapping(Frozen):
    """How one canonical field is produced from an agency's raw record."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    source: str | None = Field(default=None, alias="from", description="raw field name")
    default: str | int | None = Field(default=None, description="used when source is absent/empty")
    codes: dict[str, str] | None = Field(
        default=None, description="agency code -> canonical code (e.g. 男 -> 1)"
    )
    date_formats: list[str] | None = Field(
        default=None,
        description="strptime formats tried in order, or 'epoch_millis' / 'epoch_seconds'",
    )
    unit: MoneyUnit | None = None
    region: RegionInput | None = None

    @model_validator(mode="after")
    def _source_or_default(self) -> FieldMapping:
        if self.source is None and self.default is None:
            raise ValueError("a field mapping needs 'from' or 'default'")
        return self


class Mapping(Frozen):
    """One agency's dialect of one dataset, at one mapping version."""

    agency: AgencyId
    dataset: DatasetId
    version: int = Field(ge=1)
    raw_schema: str = Field(description="path under schemas/, e.g. raw/psb/household_change.avsc"
                            " (Avro), or a .json file (JSON Schema, for JSONSerializer agencies)")
    fields: dict[str, FieldMapping] = Field(description="canonical field -> how to fill it")

    @property
    def raw_schema_type(self) -> str:
        """The registry's schemaType of the raw schema: JSON for ``*.json``, else AVRO."""
        return "JSON" if self.raw_schema.endswith(".json") else "AVRO"


# --- the sharing-responsibility list -------------------------------------------------------


class ShareType(StrEnum):
    UNCONDITIONAL = "unconditional"  # 无条件共享
    CONDITIONAL = "conditional"  # 有条件共享
    NONE = "none"  # 不予共享
    VERIFY = "verify"  # 仅核验: claims answered match / no_match / unknown, no field delivered


DELIVERING = frozenset({ShareType.UNCONDITIONAL, ShareType.CONDITIONAL})
"""Share types whose entries deliver records to an egress topic (none and verify never do)."""


class KeepMask(Frozen):
    """Keep the first/last N characters, replace the rest with '*'."""

    type: Literal["keep"]
    first: int = Field(default=0, ge=0)
    last: int = Field(default=0, ge=0)


class NameMask(Frozen):
    """Keep the family name: 张三丰 -> 张**."""

    type: Literal["name"]


class HmacMask(Frozen):
    """Keyed hash per consumer (HMAC-SHA256, hex): consumers can join without the value."""

    type: Literal["hmac"]


class TruncateDateMask(Frozen):
    type: Literal["truncate_date"]
    to: Literal["year", "month"]


class GeneraliseRegionMask(Frozen):
    type: Literal["generalise_region"]
    to: Literal["city", "province"]


class DropMask(Frozen):
    """The field is listed (for the record) but its value is never delivered (null)."""

    type: Literal["drop"]


Mask = Annotated[
    KeepMask | NameMask | HmacMask | TruncateDateMask | GeneraliseRegionMask | DropMask,
    Field(discriminator="type"),
]


class Approval(Frozen):
    """For conditional sharing: the approval reference with its own validity."""

    ref: str = Field(min_length=1, description="e.g. 粤政数审〔2026〕12号")
    valid_from: datetime
    valid_to: datetime


class ClaimHow(StrEnum):
    """How a verify entry lets a claim be compared with the stored value (docs/VERIFY.md)."""

    EQUALS = "equals"  # exactly equal to the canonical value
    NORMALISED = "normalised"  # equal after the element's check normalises the claimed value
    RANGE = "range"  # the stored date / timestamp / money / integer lies in [min, max]
    EXISTS = "exists"  # the record has a value for the field


class VerifyRateLimit(Frozen):
    """Limits on one consumer's verifications under one entry, and why they are what they are."""

    claims_per_minute: int = Field(ge=1, description="claims per consumer per minute")
    distinct_claims_per_key_per_day: int = Field(
        ge=1, description="different claims about one key per day (no brute force of a value)")
    reason: str = Field(min_length=1, description="why these limits, in words")


class VerifySpec(Frozen):
    """What a verify entry may ask: the key it looks records up by and its claims."""

    key: list[str] = Field(default_factory=list,
                           description="lookup key fields (default: the dataset key)")
    claims: dict[str, list[ClaimHow]] = Field(min_length=1, description="field -> allowed hows")
    rate_limit: VerifyRateLimit


class ListEntry(Frozen):
    """One line of the sharing-responsibility list (共享责任清单)."""

    id: EntryId = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
    dataset: DatasetId
    provider: AgencyId
    consumer: AgencyId
    share_type: ShareType
    purpose: str = Field(min_length=1)
    legal_basis: str = Field(min_length=1)
    fields: list[str] = Field(default_factory=list, description="canonical fields delivered")
    masks: dict[str, Mask] = Field(default_factory=dict, description="field -> mask")
    row_filter: str | None = Field(default=None, description="CEL over `record`")
    valid_from: datetime
    valid_to: datetime | None = None
    approval: Approval | None = None
    verify: VerifySpec | None = Field(default=None, description="share type verify only")

    @model_validator(mode="after")
    def _shape(self) -> ListEntry:
        needs_approval = (ShareType.CONDITIONAL, ShareType.VERIFY)
        if self.share_type in needs_approval and self.approval is None:
            raise ValueError(f"a {self.share_type.value} entry needs an 'approval'")
        if (self.share_type is ShareType.VERIFY) != (self.verify is not None):
            raise ValueError("'verify' is given exactly when share_type is verify")
        if self.share_type is ShareType.VERIFY and (self.fields or self.masks or
                                                     self.row_filter):
            raise ValueError("a verify entry delivers nothing: no 'fields', 'masks' or "
                             "'row_filter' (its claims are under 'verify')")
        if self.share_type not in (ShareType.NONE, ShareType.VERIFY) and not self.fields:
            raise ValueError("an entry that shares needs at least one field in 'fields'")
        unknown = sorted(set(self.masks) - set(self.fields))
        if unknown:
            raise ValueError(f"masks name fields not in 'fields': {unknown}")
        return self


class Signature(Frozen):
    """An Ed25519 signature (base64) by the catalogue key ``key`` (see catalog/keys.yaml)."""

    key: str = Field(min_length=1)
    sig: str = Field(min_length=1)


class EntrySignatures(Frozen):
    """The three approvals an entry needs to be in force (shulian.catalog.approval)."""

    provider: Signature | None = None
    consumer: Signature | None = None
    governance: Signature | None = None


class ListSignatures(Frozen):
    entries: dict[EntryId, EntrySignatures] = Field(default_factory=dict)
    version: Signature | None = None


class Supersedes(Frozen):
    """The version a new version replaces: its number and content digest (SHA-256 hex)."""

    version: int = Field(ge=1)
    digest: str = Field(pattern=r"^[0-9a-f]{64}$")


class SharingList(Frozen):
    """One version of the list. Versions only grow; the audit names the version that decided.
    A version is in force only when approved and signed (:mod:`shulian.catalog.approval`)."""

    version: int = Field(ge=1)
    published: datetime
    note: str = ""
    supersedes: Supersedes | None = None
    entries: list[ListEntry]
    signatures: ListSignatures | None = None


# --- keys ----------------------------------------------------------------------------------


class Revocation(Frozen):
    at: datetime
    reason: str = Field(min_length=1)


class PublicKey(Frozen):
    """An Ed25519 public key of the governance office (owner ``governance``), an agency (its
    id) or the chain (``chain``: egress and audit signatures). See docs/SECURITY.md."""

    id: str = Field(pattern=r"^[a-z][a-z0-9_.-]{1,63}$")
    owner: str = Field(min_length=1)
    public_key: str = Field(description="base64 of the 32 raw Ed25519 public-key bytes")
    valid_from: datetime
    valid_to: datetime | None = None
    revoked: Revocation | None = None
    development: bool = Field(default=False, description="an example key: private half in "
                              "catalog/dev-keys, never for production")


class KeyCatalog(Frozen):
    keys: list[PublicKey]


# --- the whole catalogue -------------------------------------------------------------------


class Catalog(Frozen):
    """Everything loaded and cross-checked; built by :func:`shulian.catalog.load.load_catalog`."""

    elements: dict[ElementId, DataElement]
    agencies: dict[AgencyId, Agency]
    datasets: dict[DatasetId, Dataset]
    mappings: dict[tuple[AgencyId, DatasetId], Mapping]  # the newest version per pair
    sharing_lists: dict[int, SharingList]  # every version, by number
    regions: dict[str, str]  # GB/T 2260 code -> name (current codes)
    retired_regions: dict[str, str]  # retired code -> current code
    keys: dict[str, PublicKey] = Field(default_factory=dict)  # catalog/keys.yaml, by id

    @property
    def current_list(self) -> SharingList:
        return self.sharing_lists[max(self.sharing_lists)]

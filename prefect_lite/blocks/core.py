"""Blocks: typed, named configuration documents stored in Redis.

A block type is a pydantic model deriving from ``Block``; it registers itself under a slug
(the class name in kebab-case, ``MyConfig`` -> ``my-config``, or ``_block_type_slug``).
``MyConfig(...).save("prod")`` stores a ``BlockDocument`` (data, JSON schema, secret field
paths); ``MyConfig.load("prod")`` or ``Block.load("my-config/prod")`` gives it back in any
process that defines the class. Secret fields (``SecretStr``, ``Secret[...]``) are masked
when printed or dumped but stored with their real value, so ``load`` returns it: like
Prefect's database, Redis holds them in plain text, so protect Redis accordingly. Document
names follow Prefect's rule: lowercase letters, digits and dashes.
"""

from __future__ import annotations

import re
import uuid
from typing import Any, ClassVar, Self, cast

import pydantic
from pydantic import BaseModel, PrivateAttr
from pydantic_core import to_jsonable_python

from prefect_lite.blocks import registry
from prefect_lite.blocks.fields import revealed, secret_field_paths
from prefect_lite.client import get_client
from prefect_lite.exceptions import ObjectNotFound, ValidationError
from prefect_lite.schemas import BlockDocument, BlockType, check_slug

__all__ = ["Block", "kebab_case"]


def kebab_case(name: str) -> str:
    """``DateTime`` -> ``date-time``, ``JSON`` -> ``json``, ``S3Bucket`` -> ``s3-bucket``."""
    text = re.sub(r"([a-z0-9])([A-Z])", r"\1-\2", name)
    text = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1-\2", text)
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-").lower()


class Block(BaseModel):
    """Base class of block types. Subclass it, declare fields, then ``save``/``load``."""

    # Set on a subclass to choose its type's name or slug (default: from the class name).
    _block_type_name: ClassVar[str | None] = None
    _block_type_slug: ClassVar[str | None] = None

    # Set by ``save`` and ``load``.
    _block_document_id: uuid.UUID | None = PrivateAttr(None)
    _block_document_name: str | None = PrivateAttr(None)

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        check_slug(cls.get_block_type_slug(), f"block type slug of {cls.__qualname__}")
        registry.register(cls)

    def __eq__(self, other: object) -> bool:
        """Blocks are equal when their type and field values are: where a block was saved
        or loaded from does not count."""
        if not isinstance(other, Block):
            return NotImplemented
        return type(self) is type(other) and self.__dict__ == other.__dict__

    @classmethod
    def get_block_type_name(cls) -> str:
        return cls._block_type_name or cls.__name__

    @classmethod
    def get_block_type_slug(cls) -> str:
        return cls._block_type_slug or kebab_case(cls.get_block_type_name())

    @classmethod
    def block_schema(cls) -> dict[str, Any]:
        """The type's JSON schema plus its slug and the dotted paths of its secret fields."""
        try:
            schema = cls.model_json_schema()
        except pydantic.errors.PydanticInvalidForJsonSchema:
            schema = {"title": cls.__name__, "type": "object"}
        schema["title"] = cls.get_block_type_name()
        schema["block_type_slug"] = cls.get_block_type_slug()
        schema["secret_fields"] = secret_field_paths(cls)
        return schema

    # -- save
    def _to_block_document(self, name: str) -> BlockDocument:
        if type(self) is Block:
            raise ValidationError("Block itself cannot be saved: save an instance of a subclass")
        check_slug(name, "block document name")
        data = to_jsonable_python(revealed(self.model_dump(mode="python", by_alias=True)))
        return BlockDocument(
            name=name,
            block_type_slug=self.get_block_type_slug(),
            data=data,
            block_schema=self.block_schema(),
        )

    def _saved(self, document: BlockDocument) -> uuid.UUID:
        self._block_document_id = document.id
        self._block_document_name = document.name
        return document.id

    def save(self, name: str, overwrite: bool = False) -> uuid.UUID:
        """Store this block as ``name``; an existing one needs ``overwrite=True`` (else
        ``ObjectAlreadyExists``). Returns the document id (kept when overwriting)."""
        document = self._to_block_document(name)
        with get_client(sync_client=True) as client:
            saved = client.create_block_document(document, overwrite=overwrite)
        return self._saved(saved)

    async def asave(self, name: str, overwrite: bool = False) -> uuid.UUID:
        document = self._to_block_document(name)
        async with get_client() as client:
            saved = await client.create_block_document(document, overwrite=overwrite)
        return self._saved(saved)

    @classmethod
    def register_type_and_schema(cls) -> None:
        """Record this block type (``block type ls`` shows it) before any document exists."""
        schema = cls.block_schema()
        block_type = BlockType(
            slug=cls.get_block_type_slug(),
            name=cls.get_block_type_name(),
            description=schema.get("description"),
            block_schema=schema,
        )
        with get_client(sync_client=True) as client:
            client.create_block_type(block_type)

    # -- load and delete
    @classmethod
    def _address(cls, name: str) -> tuple[str, str]:
        """(slug, document name) of ``name`` (``"doc"`` or ``"slug/doc"``) for this class."""
        if "/" in name:
            slug, _, document_name = name.partition("/")
        elif cls is Block:
            raise ValidationError(
                f"Block.load needs 'SLUG/NAME' (e.g. 'secret/{name}'), not {name!r}; "
                "or call load on the Block subclass"
            )
        else:
            slug, document_name = cls.get_block_type_slug(), name
        check_slug(slug, "block type slug")
        check_slug(document_name, "block document name")
        if cls is not Block and slug != cls.get_block_type_slug():
            found = registry.lookup(slug)
            if found is None or not issubclass(found, cls):
                raise ValidationError(
                    f"{name!r} is a {slug!r} block; {cls.__name__}.load reads "
                    f"{cls.get_block_type_slug()!r} blocks"
                )
        return slug, document_name

    @classmethod
    def _class_for(cls, slug: str, full_name: str) -> type[Self]:
        if cls is not Block and cls.get_block_type_slug() == slug:
            return cls
        found = registry.lookup(slug)
        if found is None:
            raise ObjectNotFound(
                f"block {full_name!r} is of type {slug!r}, which no imported module defines: "
                "import the module with its Block subclass first"
            )
        if not issubclass(found, cls):
            raise ValidationError(f"block {full_name!r} is a {found.__name__}, not {cls.__name__}")
        return cast(type[Self], found)

    @classmethod
    def _from_block_document(cls, document: BlockDocument) -> Self:
        full_name = f"{document.block_type_slug}/{document.name}"
        block_class = cls._class_for(document.block_type_slug, full_name)
        try:
            block = block_class.model_validate(document.data)
        except pydantic.ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first.get("loc", ())) or "data"
            raise ValidationError(
                f"block {full_name!r} does not fit {block_class.__name__} any more: "
                f"{where}: {first.get('msg')}"
            ) from None
        block._block_document_id = document.id
        block._block_document_name = document.name
        return block

    @classmethod
    def load(cls, name: str) -> Self:
        """The block saved as ``name`` (or ``"slug/name"``); ``ObjectNotFound`` if none."""
        slug, document_name = cls._address(name)
        with get_client(sync_client=True) as client:
            document = client.read_block_document_by_name(slug, document_name, include_secrets=True)
        return cls._from_block_document(document)

    @classmethod
    async def aload(cls, name: str) -> Self:
        slug, document_name = cls._address(name)
        async with get_client() as client:
            document = await client.read_block_document_by_name(
                slug, document_name, include_secrets=True
            )
        return cls._from_block_document(document)

    @classmethod
    def delete(cls, name: str) -> None:
        """Delete the block saved as ``name`` (or ``"slug/name"``); ``ObjectNotFound`` if none."""
        slug, document_name = cls._address(name)
        with get_client(sync_client=True) as client:
            client.delete_block_document_by_name(slug, document_name)

    @classmethod
    async def adelete(cls, name: str) -> None:
        slug, document_name = cls._address(name)
        async with get_client() as client:
            await client.delete_block_document_by_name(slug, document_name)

"""Reading ``aws pinpoint get-segment`` output into a ``SegmentDefinition``.

A definition may refer to others (``SourceSegments``); they are found beside it (see
``_files``), read the same way, each error naming its own file, and shared ones read
once. A reference cycle is an error.
"""

from __future__ import annotations

from pathlib import Path

from dispatcher.errors import ConfigError
from dispatcher.segments.definition._dimensions import read_dimensions
from dispatcher.segments.definition._files import (
    ID_SUFFIXES,
    Candidate,
    id_file,
    index_directory,
    read_ids,
    read_json,
    segment_object,
)
from dispatcher.segments.definition._model import (
    COMBINE,
    SEGMENT_TYPES,
    Dimensions,
    Group,
    ImportedIds,
    SegmentDefinition,
)
from dispatcher.segments.definition._node import Node

SEGMENT_KEYS = (
    "ApplicationId", "Arn", "CreationDate", "Dimensions", "Id", "ImportDefinition",
    "LastModifiedDate", "Name", "SegmentGroups", "SegmentType", "Version", "tags", "Tags",
)  # fmt: skip
IMPORT_KEYS = ("ChannelCounts", "ExternalId", "Format", "RoleArn", "S3Url", "Size")


def load_definition(path: str | Path) -> SegmentDefinition:
    """Read a segment definition: the exact output of ``aws pinpoint get-segment``
    (``{"SegmentResponse": {...}}``) or the bare segment object.

    Source segments are resolved from the files beside it, imported segments' members
    read from their id files. Any problem is a ``ConfigError`` naming the file and key.
    """
    return _Loader().load(Path(path), str(path))


class _Loader:
    def __init__(self) -> None:
        self._indexes: dict[Path, dict[str, list[Candidate]]] = {}
        self._loaded: dict[Path, SegmentDefinition] = {}
        self._loading: list[Path] = []

    def load(self, path: Path, name: str) -> SegmentDefinition:
        key = path.resolve()
        if key in self._loaded:
            return self._loaded[key]
        self._loading.append(key)
        try:
            definition = self._read(path, name)
        finally:
            self._loading.pop()
        self._loaded[key] = definition
        return definition

    def _read(self, path: Path, name: str) -> SegmentDefinition:
        document = read_json(path, name)
        if isinstance(document, dict) and "SegmentsResponse" in document:
            raise ConfigError("this is a list of segments (get-segments); save one segment "
                              "with 'aws pinpoint get-segment'", file=name)  # fmt: skip
        segment, prefix = segment_object(document)
        node = Node(segment, name, prefix)
        node.only(SEGMENT_KEYS)
        warnings: list[str] = []
        seg_id = node.member("Id").string() if node.member("Id").present() else None
        seg_name = node.member("Name").string() if node.member("Name").present() else None
        version = node.member("Version").integer() if node.member("Version").present() else None
        imported_node = node.member("ImportDefinition")
        default_type = "IMPORT" if imported_node.present() else "DIMENSIONAL"
        segment_type = node.member("SegmentType").word(SEGMENT_TYPES, default_type)
        dimensions = read_dimensions(node.member("Dimensions"), warnings)
        include, groups = self._groups(node.member("SegmentGroups"), path, warnings)
        imported = None
        if segment_type == "IMPORT":
            imported = self._imported(node, path, seg_id, imported_node)
        files = [name] + ([imported.path] if imported is not None else [])
        for group in groups:
            for source in group.sources:
                warnings.extend(w for w in source.warnings if w not in warnings)
                files.extend(f for f in source.files if f not in files)
        return SegmentDefinition(
            path=name, id=seg_id, name=seg_name, version=version, segment_type=segment_type,
            dimensions=dimensions, include=include, groups=groups, imported=imported,
            warnings=tuple(warnings), files=tuple(files),
        )  # fmt: skip

    def _groups(self, node: Node, path: Path, warnings: list[str]) -> tuple[str, tuple[Group, ...]]:
        if not node.present():
            return "ALL", ()
        node.only(("Groups", "Include"))
        include = node.member("Include").word(COMBINE, "ALL")
        groups = []
        for item in node.member("Groups").elements():
            item.only(("Dimensions", "SourceSegments", "SourceType", "Type"))
            sources = tuple(self._source(ref, path, warnings)
                            for ref in item.member("SourceSegments").elements())  # fmt: skip
            dimensions = tuple(read_dimensions(e, warnings)
                               for e in item.member("Dimensions").elements())  # fmt: skip
            groups.append(Group(
                type=item.member("Type").word(COMBINE, "ALL"),
                source_type=item.member("SourceType").word(COMBINE, "ANY"),
                sources=sources, dimensions=dimensions,
            ))  # fmt: skip
        return include, tuple(groups)

    def _source(self, ref: Node, path: Path, warnings: list[str]) -> SegmentDefinition:
        """The definition a ``SourceSegments`` item names."""
        ref.only(("Id", "Version"))
        id_node = ref.member("Id")
        if not id_node.present():
            raise id_node.error("is required: the Id of the base segment")
        seg_id = id_node.string()
        version_node = ref.member("Version")
        version = version_node.integer() if version_node.present() else None
        directory = path.parent
        index = self._indexes.get(directory)
        if index is None:
            index = self._indexes[directory] = index_directory(directory)
        candidates = index.get(seg_id, [])
        if not candidates:
            ids = id_file(directory, seg_id)
            if ids is not None:
                members = _read_ids(ids, None, ref)
                return SegmentDefinition(path=str(ids), id=seg_id, name=None, version=None,
                                         segment_type="IMPORT", dimensions=Dimensions(),
                                         imported=members, files=(str(ids),))  # fmt: skip
            raise id_node.error(
                f"source segment {seg_id!r} not found: no *.json file in {directory} has "
                f"this Id, and there is no {seg_id}{{{','.join(ID_SUFFIXES)}}} file of its ids"
            )
        chosen = self._choose(candidates, seg_id, version, id_node)
        if version is not None and chosen.version != version:
            found = "no Version" if chosen.version is None else f"version {chosen.version}"
            warnings.append(f"{ref.file}: {ref.key}: source segment {seg_id!r} version {version} "
                            f"not found; using {chosen.path.name} ({found})")  # fmt: skip
        key = chosen.path.resolve()
        if key in self._loading:
            chain = " -> ".join(p.name for p in [*self._loading[self._loading.index(key) :], key])
            raise id_node.error(f"source segments form a cycle: {chain}")
        return self.load(chosen.path, str(chosen.path))

    @staticmethod
    def _choose(candidates: list[Candidate], seg_id: str, version: int | None,
                where: Node) -> Candidate:  # fmt: skip
        exact = [c for c in candidates if version is not None and c.version == version]
        if not exact:
            top = max((c.version or 0) for c in candidates)
            exact = [c for c in candidates if (c.version or 0) == top]
        if len(exact) > 1:
            names = ", ".join(c.path.name for c in exact)
            raise where.error(f"source segment {seg_id!r} is ambiguous: {names} all define "
                              f"version {exact[0].version}")  # fmt: skip
        return exact[0]

    def _imported(self, node: Node, path: Path, seg_id: str | None,
                  imported: Node) -> ImportedIds:  # fmt: skip
        s3_url = fmt = None
        if imported.present():
            imported.only(IMPORT_KEYS)
            if imported.member("S3Url").present():
                s3_url = imported.member("S3Url").string()
            if imported.member("Format").present():
                fmt = imported.member("Format").word(("CSV", "JSON"))
        where = imported if imported.present() else node.member("SegmentType")
        ids = id_file(path.parent, seg_id, s3_url) if seg_id else None
        if ids is None:
            label = seg_id or "SEGMENT_ID"
            raise where.error(
                f"the imported segment's members were not found: put its endpoint ids in "
                f"{path.parent / label}.ids (one per line), or a Pinpoint import file "
                f"{label}.csv / {label}.jsonl (Id or User.UserId)"
            )
        # The S3 file keeps the import's own format; an ID.* file says its own.
        own = fmt if s3_url and ids.name == s3_url.rsplit("/", 1)[-1] else None
        return _read_ids(ids, own, where)


def _read_ids(path: Path, fmt: str | None, where: Node) -> ImportedIds:
    try:
        return read_ids(path, fmt)
    except ConfigError as exc:
        # Name the definition key that led here too: the id file alone may not say why.
        raise ConfigError(
            f"{exc.message} (the imported segment of {where.file}: {where.key})",
            file=exc.file,
            key=exc.key,
        ) from exc


__all__ = ["load_definition"]

"""Pinpoint segment definitions: which records of an endpoint export are in a segment.

    definition = load_definition("segment.json")      # aws pinpoint get-segment output
    matches = compile_definition(definition, now=run_start)  # once per run
    source = DefinedSource(open_source(export), matches)  # records in the segment

``load_definition`` reads and checks the definition, resolving base segments from the
files beside it (``SourceSegments`` by Id; imported segments from files of ids); every
problem is a ``ConfigError`` naming the file and the key. ``compile`` turns it into a
predicate ``matches(definition, endpoint_id) -> bool`` over one endpoint record (its
fields without ``Id``, and its Id), built to run on every record of a 50-million-line
export. ``DefinedSource`` applies it to a ``SegmentSource``.

The semantics, with every choice made where Pinpoint's documentation is silent, are in
``docs/segment-definitions.md``.

Modules: ``_node`` (typed JSON access with key paths), ``_model`` (the checked
definition), ``_dimensions`` / ``_load`` / ``_files`` (reading), ``_instants`` (ISO
8601), ``_checks`` / ``_compile`` (the predicate), ``_source`` (the filtering source).
"""

from __future__ import annotations

from dispatcher.segments.definition._checks import Predicate
from dispatcher.segments.definition._compile import compile_definition
from dispatcher.segments.definition._load import load_definition
from dispatcher.segments.definition._model import (
    Dimensions,
    Group,
    ImportedIds,
    SegmentDefinition,
)
from dispatcher.segments.definition._source import DefinedSource, SegmentCounts, filter_batches

__all__ = [
    "DefinedSource",
    "Dimensions",
    "Group",
    "ImportedIds",
    "Predicate",
    "SegmentCounts",
    "SegmentDefinition",
    "compile_definition",
    "filter_batches",
    "load_definition",
]

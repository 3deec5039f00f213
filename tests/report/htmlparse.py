"""Reading the report back: its tables as rows of cell texts, its text, its tags."""

from __future__ import annotations

from html.parser import HTMLParser


class Page(HTMLParser):
    """Tables by their class (first class name), text, and tag counts of a page."""

    def __init__(self, markup: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tables: dict[str, list[list[str]]] = {}
        self.tags: dict[str, int] = {}
        self.attrs: list[tuple[str, dict[str, str | None]]] = []
        self.text_parts: list[str] = []
        self._table: list[list[str]] | None = None
        self._cell: list[str] | None = None
        self.feed(markup)
        self.close()

    @property
    def text(self) -> str:
        return " ".join(" ".join(self.text_parts).split())

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags[tag] = self.tags.get(tag, 0) + 1
        self.attrs.append((tag, dict(attrs)))
        if self._cell is not None:
            self._cell.append(" ")  # an element inside a cell starts a new word
        if tag == "table":
            name = (dict(attrs).get("class") or "table").split()[0]
            self._table = self.tables.setdefault(name, [])
        elif tag == "tr" and self._table is not None:
            self._table.append([])
        elif tag in ("td", "th") and self._table is not None:
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._table is not None and self._cell is not None:
            self._table[-1].append(" ".join("".join(self._cell).split()))
            self._cell = None
        elif tag == "table":
            self._table = None

    def handle_data(self, data: str) -> None:
        self.text_parts.append(data)
        if self._cell is not None:
            self._cell.append(data)

    def row(self, table: str, first: str) -> list[str]:
        """The row of ``table`` whose first cell is ``first``."""
        for row in self.tables[table]:
            if row and row[0] == first:
                return row
        raise KeyError(f"no row {first!r} in {table}: {self.tables[table]}")

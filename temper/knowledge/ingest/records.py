"""Tabular sources (CSV/TSV, Excel): every row is a ``record`` block of ``Header: value`` lines.

Option ``records``: ``"sheet"`` (default) gives one document per sheet, ``"row"`` one document per row.
Row numbers are the spreadsheet's own (the header is row 1), so a citation points at the cell a person sees.
"""
from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from datetime import date, datetime, time
from typing import Any

import openpyxl

from temper.knowledge.ingest.common import check_office, clean, decode_text, stem
from temper.knowledge.limits import room
from temper.knowledge.types import Block, ParsedDocument, ParseError

Rows = Iterable[tuple[int, list[Any]]]  # (1-based row number, cell values)


class CsvParser:
    name = "csv"
    extensions = (".csv", ".tsv")
    media_types = ("text/csv", "text/tab-separated-values")

    def parse(self, data: bytes, filename: str, options: dict[str, Any]) -> list[ParsedDocument]:
        mode = _mode(options)
        text = decode_text(data, filename)
        if filename.lower().endswith(".tsv"):
            dialect: type[csv.Dialect] = csv.excel_tab
        else:
            sample = text[:16384].rsplit("\n", 1)[0] if "\n" in text[:16384] else text[:16384]
            try:
                dialect = csv.Sniffer().sniff(sample, delimiters=",;\t|")
            except csv.Error:  # one column, or too irregular to tell: the usual comma
                dialect = csv.excel
        try:
            rows = list(enumerate(csv.reader(io.StringIO(text), dialect), 1))
        except csv.Error as e:
            raise ParseError(f"{filename} is not a readable CSV file ({e})") from e
        return _require(_documents(stem(filename), None, rows, mode), filename)


class XlsxParser:
    name = "xlsx"
    extensions = (".xlsx", ".xlsm")
    media_types = ("application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                   "application/vnd.ms-excel.sheet.macroEnabled.12")

    def parse(self, data: bytes, filename: str, options: dict[str, Any]) -> list[ParsedDocument]:
        mode = _mode(options)
        check_office(data, filename, "Excel", ".xlsx")
        try:
            workbook = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
        except Exception as e:  # openpyxl raises InvalidFileException/KeyError/BadZipFile/... for broken files
            raise ParseError(f"{filename} cannot be opened as an Excel workbook ({e}); "
                             "open it in Excel and save it again as .xlsx") from e
        try:
            documents: list[ParsedDocument] = []
            for sheet in workbook.worksheets:
                sheet.reset_dimensions()  # stored dimensions can be wrong and would cut rows off
                documents.extend(_documents(stem(filename), sheet.title, _sheet_rows(sheet), mode))
        finally:
            workbook.close()
        return _require(documents, filename)


def _sheet_rows(sheet: Any) -> Rows:
    for cells in sheet.iter_rows():
        number = next((c.row for c in cells if getattr(c, "row", None)), None)  # empty cells carry no row
        if number is not None:
            yield number, [c.value for c in cells]


def _mode(options: dict[str, Any]) -> str:
    mode = options.get("records", "sheet")
    if mode not in ("sheet", "row"):
        raise ParseError(f"option 'records' must be 'sheet' or 'row', not {mode!r}")
    return mode


def _require(documents: list[ParsedDocument], filename: str) -> list[ParsedDocument]:
    if not documents:
        raise ParseError(f"{filename} has no data rows (it is empty or has only a header row)")
    return documents


def _documents(name: str, sheet: str | None, rows: Rows, mode: str) -> list[ParsedDocument]:
    """The first non-empty row is the header; later rows become records (empty cells skipped)."""
    headers: list[str] | None = None
    records: list[Block] = []
    for number, values in rows:
        cells = [_cell_text(v) for v in values]
        if not any(cells):
            continue
        if headers is None:
            headers = [cell or f"Column {i}" for i, cell in enumerate(cells, 1)]
            continue
        names = headers + [f"Column {i}" for i in range(len(headers) + 1, len(cells) + 1)]
        text = "\n".join(f"{names[i]}: {cell}" for i, cell in enumerate(cells) if cell)
        if not room(len(text)):
            break  # past the document's text budget: the rest is cut
        records.append(Block(text, "record", metadata={"row": number}))
    if not records:
        return []
    base = f"{name} — {sheet}" if sheet is not None else name
    def metadata(**extra: Any) -> dict[str, Any]:
        return {"columns": list(headers or []), **({"sheet": sheet} if sheet is not None else {}), **extra}

    if mode == "sheet":
        suffix = f"#sheet={sheet}" if sheet is not None else None
        return [ParsedDocument(title=base, blocks=records, metadata=metadata(), source_suffix=suffix)]
    sheet_part = f"sheet={sheet}&" if sheet is not None else ""
    documents: list[ParsedDocument] = []
    for record in records:
        n = record.metadata["row"]
        documents.append(ParsedDocument(title=f"{base} — row {n}", blocks=[record], metadata=metadata(row=n),
                                        source_suffix=f"#{sheet_part}row={n}"))
    return documents


def _cell_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, datetime):
        return value.date().isoformat() if value.time() == time() else value.isoformat(sep=" ")
    if isinstance(value, (date, time)):
        return value.isoformat()
    return clean(str(value))

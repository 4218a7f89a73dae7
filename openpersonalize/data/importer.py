"""CSV -> Parquet import with the service's type checks.

A dataset import job hands ``import_csv`` the CSV files of one data location and
the dataset's schema. Each file is streamed with ``pyarrow.csv.open_csv`` (every
column read as a string), each batch is checked and cast with ``pyarrow.compute``
(no Python loop per row), and written to Parquet in the schema's column order.
Only when a batch holds a bad value does a slow path run, to find that value's
row and its line number in the file for the job's ``failureReason``.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

if TYPE_CHECKING:
    from openpersonalize.data.schema import Field, Schema
    from openpersonalize.store.blobs import BlobStore

__all__ = [
    "ARROW_TYPES",
    "CsvSource",
    "ImportFailed",
    "ImportResult",
    "import_csv",
    "read_dataset",
]

#: Avro primitive type name -> the Arrow type the Parquet column gets.
ARROW_TYPES: dict[str, pa.DataType] = {
    "string": pa.string(),
    "long": pa.int64(),
    "int": pa.int32(),
    "float": pa.float32(),
    "double": pa.float64(),
    "boolean": pa.bool_(),
}

#: Fields whose values are IDs, limited to MAX_ID_LENGTH characters.
ID_FIELDS = frozenset({"USER_ID", "ITEM_ID", "ACTION_ID"})
# Fields whose value may never be empty, even as a string: the IDs and the event type.
KEY_FIELDS = ID_FIELDS | {"EVENT_TYPE"}
MAX_ID_LENGTH = 256
#: The service fails an import whose categorical string value is longer than this.
MAX_CATEGORICAL_LENGTH = 1000

# Measured on 2 cores, 20M rows: 8 MiB 11.8 s / 0.5 GiB peak, 16 MiB 10.4 s / 0.8 GiB,
# 32 MiB 9.5 s / 1.0 GiB. 16 MiB keeps nearly all the speed at less memory (Arrow
# reads a few blocks ahead, and each block's strings are held while converting).
DEFAULT_BLOCK_SIZE = 16 << 20
# Bound each Parquet file so later readers can split work by file.
DEFAULT_MAX_ROWS_PER_FILE = 10_000_000

_EXPECTED = {
    "string": "a string",
    "long": "a long",
    "int": "an int",
    "float": "a float",
    "double": "a double",
    "boolean": "a boolean (lower-case true or false)",
}
_SHOW_CHARS = 40  # how much of a bad value an error message quotes
_SCAN_CHUNK = 8 << 20  # bytes per read when looking for a bad row's line


@dataclass(frozen=True)
class CsvSource:
    """One CSV file of a data location."""

    name: str  # shown in errors, e.g. "s3://bucket/key.csv"
    open: Callable[[], BinaryIO]  # opens the (uncompressed) CSV bytes
    size: int | None = None  # bytes of the uncompressed CSV, for progress


class ImportFailed(Exception):
    """The data cannot be imported; ``reason`` becomes the job's failureReason."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass
class ImportResult:
    """What an import wrote."""

    row_count: int
    files: list[str] = field(default_factory=list)  # absolute paths of the Parquet files
    # "file: column" for each CSV column the schema does not name (skipped, as the service does)
    ignored_columns: list[str] = field(default_factory=list)


def import_csv(
    sources: list[CsvSource],
    schema: Schema,
    out_dir: Path,
    progress: Callable[[float], None] | None = None,
    *,
    block_size: int = DEFAULT_BLOCK_SIZE,
    max_rows_per_file: int = DEFAULT_MAX_ROWS_PER_FILE,
) -> ImportResult:
    """Check and convert ``sources`` to Parquet files in ``out_dir``.

    Raises ImportFailed on the first problem (after deleting what it wrote). An
    exception raised by ``progress`` aborts the import the same way, which is how
    a caller cancels one.
    """
    arrow_schema = arrow_schema_of(schema)
    out_dir = Path(out_dir).absolute()
    created_dir = not out_dir.exists()
    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[str] = []
    ignored: list[str] = []
    tracker = _Progress(sources, progress)
    total = 0
    try:
        for index, source in enumerate(sources):
            total += _import_one(
                source,
                index,
                schema,
                arrow_schema,
                out_dir,
                written,
                ignored,
                tracker,
                block_size=block_size,
                max_rows_per_file=max_rows_per_file,
            )
            tracker.file_done(index)
    except BaseException:
        for path in written:
            Path(path).unlink(missing_ok=True)
        if created_dir:
            try:
                out_dir.rmdir()
            except OSError:
                pass  # not empty: something else is in there, leave it
        raise
    return ImportResult(row_count=total, files=written, ignored_columns=ignored)


def arrow_schema_of(schema: Schema) -> pa.Schema:
    """The Arrow schema of the Parquet files an import writes."""
    fields = []
    for f in schema.fields:
        if f.type not in ARROW_TYPES:
            raise ValueError(f"field {f.name} has unsupported type {f.type!r}")
        fields.append(pa.field(f.name, ARROW_TYPES[f.type], nullable=f.nullable))
    return pa.schema(fields)


def read_dataset(blobs: BlobStore, keys: list[str]) -> pa.Table:
    """Read and concatenate the Parquet files of an import (or several imports)."""
    if not keys:
        return pa.table({})
    tables = [blobs.read_parquet(key) for key in keys]
    return pa.concat_tables(tables) if len(tables) > 1 else tables[0]


# --------------------------------------------------------------------------- one file


def _import_one(
    source: CsvSource,
    index: int,
    schema: Schema,
    arrow_schema: pa.Schema,
    out_dir: Path,
    written: list[str],
    ignored: list[str],
    tracker: _Progress,
    *,
    block_size: int,
    max_rows_per_file: int,
) -> int:
    """Import one CSV file; returns its row count."""
    header = _read_header(source)
    columns: dict[str, int] = {}
    if header is not None:
        columns = _match_header(source, header, schema)
        known = set(columns.values())
        ignored.extend(
            f"{source.name}: {name or '(unnamed)'}"
            for i, name in enumerate(header)
            if i not in known
        )

    part = 0
    rows_in_part = 0

    def new_writer() -> pq.ParquetWriter:
        nonlocal part, rows_in_part
        path = out_dir / f"part-{index:05d}-{part:04d}.parquet"
        part += 1
        rows_in_part = 0
        written.append(str(path))
        return pq.ParquetWriter(path, arrow_schema, compression="snappy")

    rows_done = 0
    writer = new_writer()
    try:
        if header is None:  # empty file: nothing but an empty Parquet file
            return 0
        with source.open() as raw:
            counter = _CountingReader(raw)
            for batch in _batches(source, counter, header, block_size):
                table = _convert_batch(source, batch, rows_done, schema, arrow_schema, columns)
                start = 0
                while start < table.num_rows:
                    if rows_in_part >= max_rows_per_file:
                        writer.close()
                        writer = new_writer()
                    take = min(table.num_rows - start, max_rows_per_file - rows_in_part)
                    writer.write_table(table.slice(start, take), row_group_size=1 << 20)
                    rows_in_part += take
                    start += take
                rows_done += batch.num_rows
                tracker.update(index, counter.count)
    finally:
        writer.close()
    return rows_done


def _read_header(source: CsvSource) -> list[str] | None:
    """The header row's column names, or None for an empty file."""
    try:
        with source.open() as raw:
            reader = io.BufferedReader(_CountingReader(raw), buffer_size=1 << 16)
            for line in reader:
                if line.strip(b"\r\n"):  # Arrow skips empty lines before the header too
                    break
            else:
                return None
    except (OSError, pa.ArrowException) as exc:
        raise ImportFailed(f"{source.name}: could not read the file: {exc}") from None
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError:
        raise ImportFailed(f"{source.name}: the header row is not valid UTF-8") from None
    text = text.removeprefix("\ufeff")  # a byte order mark some editors write
    return next(csv.reader([text]))


def _match_header(source: CsvSource, header: list[str], schema: Schema) -> dict[str, int]:
    """The header position of each schema field the file has.

    Headers name fields as the schema does, ignoring case. Columns the schema does not name
    (the unnamed index column pandas writes, extra attributes) are skipped, as the service
    skips them; a field twice, or a required field missing, fails the import.
    """
    columns: dict[str, int] = {}
    for index, name in enumerate(header):
        f = schema.field(name)
        if f is None:
            continue
        if f.name in columns:
            raise ImportFailed(f'{source.name}: column "{name}" appears more than once')
        columns[f.name] = index
    for f in schema.fields:
        if not f.nullable and f.name not in columns:
            raise ImportFailed(
                f"{source.name}: the header has no column {f.name}, which the schema requires"
            )
    return columns


def _batches(
    source: CsvSource, stream: _CountingReader, header: list[str], block_size: int
) -> Iterator[pa.RecordBatch]:
    """Stream the file's record batches, every column as a string."""
    read_options = pacsv.ReadOptions(block_size=block_size, use_threads=True)
    # Quoted values may hold line breaks (item descriptions do); measured at no cost
    # here, since blocks are parsed one after another anyway.
    parse_options = pacsv.ParseOptions(newlines_in_values=True)
    convert_options = pacsv.ConvertOptions(
        column_types={name: pa.string() for name in header},
        strings_can_be_null=False,  # empty stays "", so nullability is ours to judge
    )
    rows = 0
    try:
        reader = pacsv.open_csv(
            stream,
            read_options=read_options,
            parse_options=parse_options,
            convert_options=convert_options,
        )
        if reader.schema.names != header:
            raise ImportFailed(f"{source.name}: could not read the header row")
        while True:
            try:
                batch = reader.read_next_batch()
            except StopIteration:
                return
            rows += batch.num_rows
            yield batch
    except (pa.ArrowInvalid, UnicodeDecodeError) as exc:
        raise ImportFailed(_diagnose(source, len(header), rows, exc)) from None
    except (OSError, pa.ArrowException) as exc:
        raise ImportFailed(f"{source.name}: could not read the file: {exc}") from None


# ------------------------------------------------------------------------ conversion


class _BadValue(Exception):
    """A bad value at a row of the current batch; the caller adds the line number."""

    def __init__(self, row: int, column: str, message: str) -> None:
        super().__init__(message)
        self.row = row
        self.column = column
        self.message = message


def _convert_batch(
    source: CsvSource,
    batch: pa.RecordBatch,
    rows_before: int,
    schema: Schema,
    arrow_schema: pa.Schema,
    columns: dict[str, int],
) -> pa.Table:
    """Check and cast one batch of string columns into the schema's types."""
    arrays = []
    try:
        for f, target in zip(schema.fields, arrow_schema.types, strict=True):
            i = columns.get(f.name)
            if i is None:
                arrays.append(pa.nulls(batch.num_rows, target))
            else:
                arrays.append(_convert_column(f, target, batch.column(i)))
    except _BadValue as bad:
        line = _line_of_row(source, rows_before + bad.row)
        where = f"line {line}" if line is not None else f"data row {rows_before + bad.row + 1}"
        raise ImportFailed(f"{source.name} {where}, column {bad.column}: {bad.message}") from None
    return pa.Table.from_arrays(arrays, schema=arrow_schema)


def _convert_column(f: Field, target: pa.DataType, values: pa.Array) -> pa.Array:
    """One column: empty values, then the type's checks and cast."""
    lengths = pc.binary_length(values)
    if len(values) and pc.min(lengths).as_py() == 0:
        empty = pc.equal(lengths, 0)
        if f.type == "string" and not f.nullable and f.name not in KEY_FIELDS:
            # An empty cell of a plain string field is the empty string, as the service
            # reads it (the VOD sample notebook's YEAR is empty for titles without a year);
            # IDs and event types may not be empty.
            return _checked_strings(f, values, lengths)
        if not f.nullable:
            row = pc.index(empty, True).as_py()
            raise _BadValue(row, f.name, f"missing value (expected {_EXPECTED[f.type]})")
        values = pc.if_else(empty, pa.scalar(None, pa.string()), values)

    if f.type == "string":
        return _checked_strings(f, values, lengths)

    if f.type == "boolean":
        is_true = pc.equal(values, "true")
        ok = pc.or_(is_true, pc.equal(values, "false"))
        if pc.all(ok).as_py() is False:
            row = pc.index(ok, False).as_py()
            raise _BadValue(row, f.name, _not_a(values[row].as_py(), f.type))
        return is_true

    try:
        cast = pc.cast(values, target)
    except pa.ArrowInvalid:
        row = _first_uncastable(values, target)
        raise _BadValue(row, f.name, _not_a(values[row].as_py(), f.type)) from None

    if f.type in ("long", "int"):
        # Arrow also parses "0x1F"; a CSV integer is decimal digits only.
        hexa = pc.or_(pc.starts_with(values, "0x"), pc.starts_with(values, "0X"))
        if pc.any(hexa).as_py():
            row = pc.index(hexa, True).as_py()
            raise _BadValue(row, f.name, _not_a(values[row].as_py(), f.type))
    else:
        # NaN, infinity and numbers beyond the type's range (parsed as infinity).
        finite = pc.is_finite(cast)
        if pc.all(finite).as_py() is False:
            row = pc.index(finite, False).as_py()
            raise _BadValue(
                row,
                f.name,
                _not_a(values[row].as_py(), f.type) + " (NaN and infinity are not allowed)",
            )
    return cast


def _checked_strings(f: Field, values: pa.Array, lengths: pa.Array) -> pa.Array:
    """A string column, refused where a value is longer than the field allows."""
    limit = _length_limit(f)
    if limit is not None and len(values) and (pc.max(lengths).as_py() or 0) > limit:
        # Bytes bound characters from above, so only count characters when needed.
        too_long = pc.greater(pc.utf8_length(values), limit)
        if pc.any(too_long).as_py():
            row = pc.index(too_long, True).as_py()
            raise _BadValue(
                row, f.name, f"{_show(values[row].as_py())} is longer than {limit} characters"
            )
    return values


def _length_limit(f: Field) -> int | None:
    if f.name in ID_FIELDS:
        return MAX_ID_LENGTH
    if f.categorical:
        return MAX_CATEGORICAL_LENGTH
    return None


def _first_uncastable(values: pa.Array, target: pa.DataType) -> int:
    """Index of the first value Arrow cannot cast (slow path, only after a failed cast)."""
    chunk = 4096
    for start in range(0, len(values), chunk):
        part = values.slice(start, chunk)
        try:
            pc.cast(part, target)
            continue
        except pa.ArrowInvalid:
            pass
        for i in range(len(part)):
            try:
                pc.cast(part.slice(i, 1), target)
            except pa.ArrowInvalid:
                return start + i
    raise AssertionError("cast failed but no value fails alone")  # pragma: no cover


def _show(value: str | None) -> str:
    text = value or ""
    if len(text) > _SHOW_CHARS:
        text = text[:_SHOW_CHARS] + "..."
    return json.dumps(text, ensure_ascii=False)


def _not_a(value: str | None, type_name: str) -> str:
    return f"{_show(value)} is not {_EXPECTED[type_name]}"


# -------------------------------------------------------------- slow paths for errors


def _data_rows(source: CsvSource, skip: int = 0) -> Iterator[tuple[int, bytes]]:
    """(first line number, raw bytes) of each data row from index ``skip`` on.

    Rows are split the way Arrow splits them: empty lines are skipped, and a line
    break inside a quoted value continues the row (tracked by the parity of quote
    characters, which doubled quotes inside a value leave unchanged). Line breaks
    are "\n" or "\r\n" (a file using lone "\r" gets wrong line numbers). Rows
    before ``skip`` are counted a whole chunk at a time where the chunk is plain
    (no quotes, no empty lines): this runs only when reporting an error, but a
    bad row near the end of a 20M-row file should not take minutes.
    """
    header_seen = False
    index = 0  # data rows seen
    number = 0  # lines seen
    row: list[bytes] = []  # lines of a row under way
    row_start = 0
    with source.open() as raw:
        tail = b""
        while True:
            chunk = raw.read(_SCAN_CHUNK)
            data = tail + chunk if tail else chunk
            if chunk:
                cut = data.rfind(b"\n") + 1
                data, tail = data[:cut], data[cut:]
            else:
                tail = b""
            if not data:
                if chunk:
                    continue  # a line longer than a chunk: read on
                break
            plain = (
                header_seen
                and not row
                and b'"' not in data
                and b"\n\n" not in data
                and b"\n\r\n" not in data
                and not data.startswith((b"\n", b"\r\n"))
            )
            if plain:
                n = data.count(b"\n") + (0 if data.endswith(b"\n") else 1)
                if index + n <= skip:
                    index += n
                    number += n
                    continue
            lines = data.split(b"\n")
            if data.endswith(b"\n"):
                lines.pop()  # the empty string after the last line break
            for line in lines:
                number += 1
                if not row:
                    if not line.strip(b"\r"):
                        continue  # an empty line is not a row
                    row_start = number
                row.append(line)
                if b'"' in line and b"\n".join(row).count(b'"') % 2:
                    continue  # inside a quoted value: the row goes on
                if not header_seen:
                    header_seen = True
                elif index >= skip:
                    yield row_start, b"\n".join(row)
                    index += 1
                else:
                    index += 1
                row = []
            if not chunk:
                break
        if row and header_seen and index >= skip:
            yield row_start, b"\n".join(row)  # an unterminated quote runs to the end


def _line_of_row(source: CsvSource, row_index: int) -> int | None:
    """Line number (1-based; the header is line 1) of a data row; None if unreadable."""
    try:
        for line, _row in _data_rows(source, skip=row_index):
            return line
    except (OSError, pa.ArrowException):
        return None
    return None


def _diagnose(source: CsvSource, n_columns: int, rows_before: int, exc: Exception) -> str:
    """Reason for a file Arrow could not parse: find the offending line if we can."""
    try:
        # Arrow converted every row before ``rows_before``; the problem lies after.
        for line, raw in _data_rows(source, skip=rows_before):
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError:
                return f"{source.name} line {line}: the data is not valid UTF-8"
            fields = next(csv.reader([text.rstrip("\r")]), [])
            if len(fields) != n_columns:
                return (
                    f"{source.name} line {line}: expected {n_columns} columns "
                    f"as in the header, found {len(fields)}"
                )
    except csv.Error as csv_exc:
        return f"{source.name}: could not parse CSV: {csv_exc}"
    except (OSError, pa.ArrowException) as os_exc:
        return f"{source.name}: could not read the file: {os_exc}"
    message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return f"{source.name}: could not parse CSV after data row {rows_before}: {message}"


# ------------------------------------------------------------------- reading helpers


class _CountingReader(io.RawIOBase):
    """A read-only stream that counts the bytes read through it (for progress)."""

    def __init__(self, raw: Any) -> None:
        super().__init__()
        self._raw = raw
        self.count = 0

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        data = self._raw.read() if size is None or size < 0 else self._raw.read(size)
        data = bytes(data) if not isinstance(data, bytes) else data
        self.count += len(data)
        return data

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        data = self.read(len(view))
        view[: len(data)] = data
        return len(data)


class _Progress:
    """Reports the fraction done: by bytes when every size is known, else by file."""

    def __init__(self, sources: list[CsvSource], callback: Callable[[float], None] | None):
        self._callback = callback
        self._sizes = [s.size for s in sources]
        self._by_bytes = bool(sources) and all(s is not None for s in self._sizes)
        self._total = sum(s or 0 for s in self._sizes) if self._by_bytes else len(sources)
        self._done_before = [0] * (len(sources) + 1)
        for i, s in enumerate(self._sizes):
            step = (s or 0) if self._by_bytes else 1
            self._done_before[i + 1] = self._done_before[i] + step

    def update(self, index: int, bytes_read: int) -> None:
        if self._callback is None or not self._total:
            return
        size = self._sizes[index]
        if self._by_bytes:
            done = self._done_before[index] + min(bytes_read, size or 0)
        else:
            done = self._done_before[index] + (min(bytes_read / size, 1.0) if size else 0.0)
        self._callback(min(done / self._total, 1.0))

    def file_done(self, index: int) -> None:
        if self._callback is None:
            return
        if not self._total:
            self._callback(1.0)
            return
        self._callback(min(self._done_before[index + 1] / self._total, 1.0))

"""CSV -> Parquet import: header and value checks, line numbers, sources, the generator."""

from __future__ import annotations

import gzip
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import boto3
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from helpers import read_files, require_moto_server

from openpersonalize.data.importer import (
    CsvSource,
    ImportFailed,
    import_csv,
)
from openpersonalize.data.schema import Schema, parse_schema
from openpersonalize.data.sources import resolve_data_location
from openpersonalize.testing.synthetic import INTERACTIONS_SCHEMA_JSON, write_interactions_csv

HEADER = "USER_ID,ITEM_ID,TIMESTAMP,EVENT_TYPE,EVENT_VALUE\n"

# Every type, nullable and not, a categorical field: order differs from most test CSVs.
ALL_TYPES_SCHEMA = """{
  "type": "record", "name": "Interactions",
  "namespace": "com.amazonaws.personalize.schema", "version": "1.0",
  "fields": [
    {"name": "USER_ID", "type": "string"},
    {"name": "ITEM_ID", "type": "string"},
    {"name": "TIMESTAMP", "type": "long"},
    {"name": "EVENT_TYPE", "type": "string"},
    {"name": "EVENT_VALUE", "type": ["null", "float"]},
    {"name": "COUNT", "type": ["null", "int"]},
    {"name": "SCORE", "type": "double"},
    {"name": "FLAG", "type": ["null", "boolean"]},
    {"name": "DEVICE", "type": ["null", "string"], "categorical": true}
  ]
}"""


@pytest.fixture()
def interactions() -> Schema:
    return parse_schema(INTERACTIONS_SCHEMA_JSON)


@pytest.fixture()
def all_types() -> Schema:
    return parse_schema(ALL_TYPES_SCHEMA)


def source(path: Path, name: str | None = None) -> CsvSource:
    """A source over a local file, shown under ``name`` (an s3:// URL) in errors."""
    return CsvSource(
        name=name or f"s3://bucket/{path.name}",
        open=lambda: path.open("rb"),
        size=path.stat().st_size,
    )


def rows(count: int, start: int = 0) -> str:
    return "".join(
        f"u{i % 50},i{i % 37},{1_700_000_000 + i},click,{i % 5}.5\n"
        for i in range(start, start + count)
    )


def failure(tmp_path: Path, schema: Schema, text: str | bytes, **kwargs: int) -> str:
    """Import ``text`` as one file; return the failure reason (and check the cleanup)."""
    path = tmp_path / "x.csv"
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    out = tmp_path / "out"
    with pytest.raises(ImportFailed) as caught:
        import_csv([source(path, "s3://b/x.csv")], schema, out, **kwargs)
    assert not out.exists(), "a failed import must delete what it wrote"
    return caught.value.reason


# ---------------------------------------------------------------------- good imports


def test_round_trip_types_order_and_absent_nullable(tmp_path: Path, all_types: Schema) -> None:
    path = tmp_path / "data.csv"
    # Columns in another order; COUNT and DEVICE absent (nullable); an empty EVENT_VALUE.
    path.write_text(
        "SCORE,TIMESTAMP,ITEM_ID,USER_ID,FLAG,EVENT_TYPE,EVENT_VALUE\n"
        "1.5,1700000000,i1,u1,true,click,2.5\n"
        "-2e3,1700000001,i2,u2,false,buy,\n"
        "0,1700000002,i3,u3,,click,0.25\n"
    )
    out = tmp_path / "out"
    result = import_csv([source(path)], all_types, out)
    assert result.row_count == 3
    assert all(Path(f).is_absolute() and Path(f).parent == out.absolute() for f in result.files)
    table = read_files(result.files)
    assert table.schema.names == list(all_types.names)
    assert [table.schema.field(n).type for n in all_types.names] == [
        pa.string(), pa.string(), pa.int64(), pa.string(), pa.float32(),
        pa.int32(), pa.float64(), pa.bool_(), pa.string(),
    ]  # fmt: skip
    data = table.to_pydict()
    assert data["USER_ID"] == ["u1", "u2", "u3"]
    assert data["TIMESTAMP"] == [1_700_000_000, 1_700_000_001, 1_700_000_002]
    assert data["EVENT_VALUE"] == [2.5, None, 0.25]
    assert data["SCORE"] == [1.5, -2000.0, 0.0]
    assert data["FLAG"] == [True, False, None]
    assert data["COUNT"] == [None, None, None]
    assert data["DEVICE"] == [None, None, None]


def test_quoted_values_bom_crlf_and_blank_lines(tmp_path: Path, interactions: Schema) -> None:
    path = tmp_path / "data.csv"
    path.write_bytes(
        b'\xef\xbb\xbf"USER_ID","ITEM_ID","TIMESTAMP","EVENT_TYPE"\r\n'
        b'"u,1",i1,1700000000,click\r\n'
        b"\r\n"
        b'u2,"i ""2""",1700000001,"buy"\r\n'
    )
    result = import_csv([source(path)], interactions, tmp_path / "out")
    data = read_files(result.files).to_pydict()
    assert data["USER_ID"] == ["u,1", "u2"]
    assert data["ITEM_ID"] == ["i1", 'i "2"']
    assert data["EVENT_TYPE"] == ["click", "buy"]
    assert data["EVENT_VALUE"] == [None, None]


def test_multiple_sources_files_and_progress(tmp_path: Path, interactions: Schema) -> None:
    paths = []
    for n, count in enumerate((700, 0, 1300)):
        p = tmp_path / f"part{n}.csv"
        p.write_text(HEADER + rows(count, start=n * 10_000))
        paths.append(p)
    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")  # not even a header: zero rows, still allowed here
    seen: list[float] = []
    result = import_csv(
        [source(p) for p in [*paths, empty]],
        interactions,
        tmp_path / "out",
        progress=seen.append,
        block_size=8 << 10,
    )
    assert result.row_count == 2000
    assert len(result.files) == 4 and len(set(result.files)) == 4
    assert [pq.ParquetFile(f).metadata.num_rows for f in result.files] == [700, 0, 1300, 0]
    table = read_files(result.files)
    assert table.num_rows == 2000 and table.schema.names == list(interactions.names)
    assert seen == sorted(seen) and seen[-1] == 1.0 and all(0 <= f <= 1 for f in seen)
    assert len(seen) > 5  # several batches, several reports


def test_large_source_splits_into_several_files(tmp_path: Path, interactions: Schema) -> None:
    path = tmp_path / "big.csv"
    path.write_text(HEADER + rows(5000))
    result = import_csv(
        [source(path)], interactions, tmp_path / "out", block_size=16 << 10, max_rows_per_file=2000
    )
    assert [pq.ParquetFile(f).metadata.num_rows for f in result.files] == [2000, 2000, 1000]
    assert read_files(result.files).column("TIMESTAMP").to_pylist() == [
        1_700_000_000 + i for i in range(5000)
    ]


# ---------------------------------------------------------------------------- header


def test_header_missing_required_column(tmp_path: Path, interactions: Schema) -> None:
    reason = failure(tmp_path, interactions, "USER_ID,ITEM_ID\nu1,i1\n")
    assert "s3://b/x.csv" in reason and "TIMESTAMP" in reason


def test_columns_the_schema_does_not_name_are_ignored(tmp_path: Path, interactions: Schema) -> None:
    # pandas' unnamed index column and an extra attribute: skipped, and reported.
    path = tmp_path / "x.csv"
    path.write_text(",USER_ID,ITEM_ID,COLOR,TIMESTAMP,EVENT_TYPE\n0,u1,i1,red,1,click\n")
    result = import_csv([source(path, "s3://b/x.csv")], interactions, tmp_path / "out")
    data = read_files(result.files).to_pydict()
    assert list(data) == list(interactions.names)
    assert data["USER_ID"] == ["u1"] and data["TIMESTAMP"] == [1]
    assert result.ignored_columns == ["s3://b/x.csv: (unnamed)", "s3://b/x.csv: COLOR"]


def test_header_matches_fields_in_any_case(tmp_path: Path, interactions: Schema) -> None:
    path = tmp_path / "any-case.csv"
    path.write_text("user_id,Item_Id,timestamp,event_type\nu1,i1,1,click\n")
    result = import_csv([source(path)], interactions, tmp_path / "any-case")
    assert read_files(result.files).to_pydict()["ITEM_ID"] == ["i1"]
    assert result.ignored_columns == []
    reason = failure(tmp_path, interactions, "USER_ID,ITEM_ID,TIMESTAMP,EVENT_TYPE,item_id\n")
    assert '"item_id"' in reason and "more than once" in reason


def test_header_duplicate_column(tmp_path: Path, interactions: Schema) -> None:
    reason = failure(tmp_path, interactions, "USER_ID,ITEM_ID,TIMESTAMP,ITEM_ID\nu,i,1,j\n")
    assert '"ITEM_ID"' in reason and "more than once" in reason


# ---------------------------------------------------------------------------- values


def test_bad_long_deep_in_a_multi_batch_file(tmp_path: Path, interactions: Schema) -> None:
    lines = rows(30_000).splitlines(keepends=True)
    lines[24_321] = "u1,i1,abc,click,1.5\n"  # data row 24_322: line 24_323
    reason = failure(tmp_path, interactions, HEADER + "".join(lines), block_size=64 << 10)
    assert reason == 's3://b/x.csv line 24323, column TIMESTAMP: "abc" is not a long'


def test_line_numbers_count_blank_lines(tmp_path: Path, interactions: Schema) -> None:
    text = "\n" + HEADER + rows(3) + "\n\n" + rows(2) + "u9,i9,1,click,x\n"
    reason = failure(tmp_path, interactions, text)
    assert reason == 's3://b/x.csv line 10, column EVENT_VALUE: "x" is not a float'


def test_quoted_line_breaks_across_blocks(tmp_path: Path, interactions: Schema) -> None:
    body = []
    line = 2
    for i in range(3000):
        if i == 2500:
            body.append("u1,i1,later,click,1\n")
            bad_line = line
        event = '"multi\nline ""event"""' if i % 7 == 0 else "click"
        body.append(f"u{i},i{i},{1_700_000_000 + i},{event},1\n")
        line += 2 if i % 7 == 0 else 1
    text = HEADER + "".join(body)
    reason = failure(tmp_path, interactions, text, block_size=8 << 10)
    assert reason == f's3://b/x.csv line {bad_line}, column TIMESTAMP: "later" is not a long'

    good = _write(tmp_path / "good.csv", HEADER + "".join(body[:2500]))
    result = import_csv([source(good)], interactions, tmp_path / "good", block_size=8 << 10)
    events = read_files(result.files).column("EVENT_TYPE").to_pylist()
    assert len(events) == 2500 and events[7] == 'multi\nline "event"' and events[8] == "click"

    reason = failure(tmp_path, interactions, HEADER + "".join(body[:10]) + 'u1,"a\nb"\n')
    assert reason == f"s3://b/x.csv line {2 + 10 + 2}: expected 5 columns as in the header, found 2"


def test_empty_value_in_non_nullable_field(tmp_path: Path, interactions: Schema) -> None:
    reason = failure(tmp_path, interactions, HEADER + rows(3) + ",i1,1,click,1\n")
    assert reason == "s3://b/x.csv line 5, column USER_ID: missing value (expected a string)"
    reason = failure(tmp_path, interactions, HEADER + "u1,i1,,click,1\n")
    assert reason == "s3://b/x.csv line 2, column TIMESTAMP: missing value (expected a long)"
    reason = failure(tmp_path, interactions, HEADER + "u1,i1,1700000000,,1\n")
    assert reason == "s3://b/x.csv line 2, column EVENT_TYPE: missing value (expected a string)"


def test_empty_plain_string_is_the_empty_string(tmp_path: Path) -> None:
    """A title without a year leaves YEAR empty (the VOD sample notebook's items): a plain,
    non-nullable string field reads it as "", as the service does."""
    items = parse_schema(
        '{"type": "record", "name": "Items", "fields": ['
        '{"name": "ITEM_ID", "type": "string"}, {"name": "YEAR", "type": ["string"], '
        '"categorical": true}, {"name": "PRICE", "type": "float"}]}'
    )
    path = tmp_path / "items.csv"
    path.write_text("ITEM_ID,YEAR,PRICE\ni1,1995,1.5\ni2,,2.0\n")
    result = import_csv([source(path)], items, tmp_path / "imported")
    assert read_files(result.files).column("YEAR").to_pylist() == ["1995", ""]
    path.write_text("ITEM_ID,YEAR,PRICE\ni1,1995,\n")
    assert "column PRICE: missing value" in failure(tmp_path, items, path.read_text())


@pytest.mark.parametrize(
    ("column", "value", "expected"),
    [
        ("TIMESTAMP", "1.5", '"1.5" is not a long'),
        ("TIMESTAMP", "0x10", '"0x10" is not a long'),
        ("TIMESTAMP", " 7", '" 7" is not a long'),
        ("COUNT", "3000000000", '"3000000000" is not an int'),
        ("SCORE", "nan", '"nan" is not a double (NaN and infinity are not allowed)'),
        ("EVENT_VALUE", "1e39", '"1e39" is not a float (NaN and infinity are not allowed)'),
        ("FLAG", "True", '"True" is not a boolean (lower-case true or false)'),
        ("FLAG", "1", '"1" is not a boolean (lower-case true or false)'),
    ],
)
def test_value_type_checks(
    tmp_path: Path, all_types: Schema, column: str, value: str, expected: str
) -> None:
    names = ["USER_ID", "ITEM_ID", "TIMESTAMP", "EVENT_TYPE", "EVENT_VALUE", "COUNT", "SCORE"]
    names.append("FLAG")
    good = {"USER_ID": "u", "ITEM_ID": "i", "TIMESTAMP": "1", "EVENT_TYPE": "click"}
    good |= {"EVENT_VALUE": "1", "COUNT": "-5", "SCORE": "2.5", "FLAG": "false"}
    bad = good | {column: value}
    text = ",".join(names) + "\n" + ",".join(good[n] for n in names) + "\n"
    text += ",".join(bad[n] for n in names) + "\n"
    reason = failure(tmp_path, all_types, text)
    assert reason == f"s3://b/x.csv line 3, column {column}: {expected}"


def test_long_values_are_truncated_in_the_reason(tmp_path: Path, interactions: Schema) -> None:
    reason = failure(tmp_path, interactions, HEADER + "u1,i1," + "9" * 30 + "z" * 200 + ",a,1\n")
    assert len(reason) < 200 and '..." is not a long' in reason


def test_id_and_categorical_length_limits(tmp_path: Path, all_types: Schema) -> None:
    header = "USER_ID,ITEM_ID,TIMESTAMP,EVENT_TYPE,SCORE,DEVICE\n"
    ok = f"{'é' * 256},{'i' * 256},1,click,1,{'d' * 1000}\n"  # characters, not bytes
    result = import_csv([source(_write(tmp_path / "ok.csv", header + ok))], all_types,
                        tmp_path / "ok")  # fmt: skip
    assert result.row_count == 1
    reason = failure(tmp_path, all_types, header + ok + f"u1,{'i' * 257},1,click,1,d\n")
    assert reason.startswith("s3://b/x.csv line 3, column ITEM_ID: ")
    assert reason.endswith("is longer than 256 characters")
    reason = failure(tmp_path, all_types, header + f"u1,i1,1,click,1,{'d' * 1001}\n")
    assert reason.startswith("s3://b/x.csv line 2, column DEVICE: ")
    assert reason.endswith("is longer than 1000 characters")


def test_wrong_number_of_columns(tmp_path: Path, interactions: Schema) -> None:
    reason = failure(tmp_path, interactions, HEADER + rows(2000) + "u1,i1,5\n", block_size=8 << 10)
    assert reason == "s3://b/x.csv line 2002: expected 5 columns as in the header, found 3"


def test_invalid_utf8(tmp_path: Path, interactions: Schema) -> None:
    reason = failure(tmp_path, interactions, (HEADER + rows(3)).encode() + b"u\xff,i,1,a,1\n")
    assert reason == "s3://b/x.csv line 5: the data is not valid UTF-8"


def test_failure_in_second_source_removes_first_sources_files(
    tmp_path: Path, interactions: Schema
) -> None:
    good = _write(tmp_path / "good.csv", HEADER + rows(100))
    bad = _write(tmp_path / "bad.csv", HEADER + "u1,i1,never,click,1\n")
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("the caller's")
    with pytest.raises(ImportFailed) as caught:
        import_csv([source(good), source(bad)], interactions, out)
    assert caught.value.reason.startswith("s3://bucket/bad.csv line 2, column TIMESTAMP")
    assert sorted(p.name for p in out.iterdir()) == ["keep.txt"]


def test_progress_exception_aborts_and_cleans_up(tmp_path: Path, interactions: Schema) -> None:
    path = _write(tmp_path / "data.csv", HEADER + rows(100))

    def cancel(_fraction: float) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        import_csv([source(path)], interactions, tmp_path / "out", progress=cancel)
    assert not (tmp_path / "out").exists()


# ------------------------------------------------------------------ s3_local_root sources


def _write(path: Path, text: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    return path


def _resolve(location: str, root: Path, scratch: Path) -> list[CsvSource]:
    return resolve_data_location(
        location, s3_endpoint_url=None, s3_local_root=str(root), scratch_dir=scratch
    )


def test_local_root_file_and_prefix(tmp_path: Path, interactions: Schema) -> None:
    root = tmp_path / "s3"
    _write(root / "bkt" / "data" / "b.csv", HEADER + rows(10))
    _write(root / "bkt" / "data" / "a.CSV", HEADER + rows(20))
    _write(root / "bkt" / "data" / "sub" / "c.csv.gz", gzip.compress((HEADER + rows(30)).encode()))
    _write(root / "bkt" / "data" / "notes.txt", "not data")
    _write(root / "bkt" / "other.csv", HEADER + rows(1))

    [one] = _resolve("s3://bkt/data/b.csv", root, tmp_path / "scratch")
    assert one.name == "s3://bkt/data/b.csv"
    assert one.size == (root / "bkt" / "data" / "b.csv").stat().st_size

    sources = _resolve("s3://bkt/data/", root, tmp_path / "scratch")
    assert [s.name for s in sources] == [
        "s3://bkt/data/a.CSV",
        "s3://bkt/data/b.csv",
        "s3://bkt/data/sub/c.csv.gz",
    ]
    result = import_csv(sources, interactions, tmp_path / "out")
    assert result.row_count == 60
    assert len(_resolve("s3://bkt/", root, tmp_path / "scratch")) == 4
    assert not (tmp_path / "scratch").exists()  # local files are read in place


def test_local_root_errors(tmp_path: Path) -> None:
    root = tmp_path / "s3"
    _write(root / "bkt" / "data" / "x.csv", HEADER)
    _write(tmp_path / "secret.csv", HEADER)
    cases = {
        "s3://bkt/../secret.csv": "'..'",
        "s3://../secret.csv": "'..'",
        "s3://bkt/missing.csv": "No object found at s3://bkt/missing.csv",
        "s3://bkt/data": "end the location with '/'",
        "s3://bkt/empty/": "No CSV files found at s3://bkt/empty/",
        "s3://nobucket/x.csv": "nobucket",
        "https://example.com/x.csv": "only s3:// data locations are supported",
        "s3:///x.csv": "no bucket",
    }
    for location, expected in cases.items():
        with pytest.raises(ImportFailed) as caught:
            _resolve(location, root, tmp_path / "scratch")
        assert expected in caught.value.reason, (location, caught.value.reason)


# ---------------------------------------------------------- a real S3-compatible endpoint


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def moto_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """moto's S3 server as a subprocess on loopback; stopped by its pid afterwards."""
    require_moto_server()
    port = _free_port()
    log_path = tmp_path_factory.mktemp("moto") / "moto.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                    break
                except OSError:
                    if process.poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError(f"moto did not start: {log_path.read_text()}") from None
                    time.sleep(0.1)
            yield f"http://127.0.0.1:{port}"
        finally:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)


@pytest.fixture()
def aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Dummy credentials, no region and no config files: only this test's environment."""
    for name in ("AWS_DEFAULT_REGION", "AWS_REGION", "AWS_PROFILE", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")


def test_s3_endpoint_key_prefix_and_missing(
    moto_endpoint: str, aws_env: None, tmp_path: Path, interactions: Schema
) -> None:
    s3 = boto3.client("s3", endpoint_url=moto_endpoint, region_name="us-east-1")
    s3.create_bucket(Bucket="training")
    s3.put_object(Bucket="training", Key="events/2.csv", Body=(HEADER + rows(20)).encode())
    s3.put_object(Bucket="training", Key="events/1.csv", Body=(HEADER + rows(10)).encode())
    body = gzip.compress((HEADER + rows(5)).encode())
    s3.put_object(Bucket="training", Key="events/deep/3.CSV.GZ", Body=body)
    s3.put_object(Bucket="training", Key="events/readme.md", Body=b"skip me")

    def resolve(location: str) -> list[CsvSource]:
        return resolve_data_location(
            location,
            s3_endpoint_url=moto_endpoint,
            s3_local_root=None,
            scratch_dir=tmp_path / "scratch",
        )

    [one] = resolve("s3://training/events/2.csv")
    assert one.name == "s3://training/events/2.csv"
    assert import_csv([one], interactions, tmp_path / "one").row_count == 20

    sources = resolve("s3://training/events/")
    assert [s.name for s in sources] == [
        "s3://training/events/1.csv",
        "s3://training/events/2.csv",
        "s3://training/events/deep/3.CSV.GZ",
    ]
    assert import_csv(sources, interactions, tmp_path / "all").row_count == 35

    for location, expected in {
        "s3://training/missing.csv": "No object found at s3://training/missing.csv",
        "s3://training/nothing/": "No CSV files found at s3://training/nothing/",
        "s3://no-such-bucket/x.csv": "no-such-bucket",
        "s3://no-such-bucket/": "no-such-bucket",
    }.items():
        with pytest.raises(ImportFailed) as caught:
            resolve(location)
        assert expected in caught.value.reason, (location, caught.value.reason)


def test_s3_without_credentials(
    moto_endpoint: str, aws_env: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    with pytest.raises(ImportFailed) as caught:
        resolve_data_location(
            "s3://training/x.csv",
            s3_endpoint_url=moto_endpoint,
            s3_local_root=None,
            scratch_dir=tmp_path / "scratch",
        )
    assert "credentials" in caught.value.reason and "s3://training/x.csv" in caught.value.reason


def test_s3_endpoint_unreachable(aws_env: None, tmp_path: Path) -> None:
    with pytest.raises(ImportFailed) as caught:
        resolve_data_location(
            "s3://b/x.csv",
            s3_endpoint_url=f"http://127.0.0.1:{_free_port()}",
            s3_local_root=None,
            scratch_dir=tmp_path / "scratch",
        )
    assert "s3://b/x.csv" in caught.value.reason


# ------------------------------------------------------------------------- generator


def test_generator_is_seeded_and_imports(tmp_path: Path, interactions: Schema) -> None:
    a = write_interactions_csv(tmp_path / "a.csv", 3000, seed=3)
    b = write_interactions_csv(tmp_path / "b.csv", 3000, seed=3)
    c = write_interactions_csv(tmp_path / "c.csv", 3000, seed=4)
    assert a.read_bytes() == b.read_bytes() != c.read_bytes()
    lines = a.read_text().splitlines()
    assert lines[0] == HEADER.strip() and len(lines) == 3001
    table = read_files(import_csv([source(a)], interactions, tmp_path / "out").files)
    assert table.num_rows == 3000
    assert set(table.column("EVENT_TYPE").to_pylist()) == {"click", "purchase"}
    timestamps = table.column("TIMESTAMP").to_numpy()
    assert timestamps.min() >= 1_600_000_000 and timestamps[-1] > timestamps[0]
    # A long tail: the most popular item is far above the mean.
    counts = table.column("ITEM_ID").value_counts().field("counts").to_numpy()
    assert counts.max() > 5 * counts.mean()


def test_generator_sizes(tmp_path: Path) -> None:
    path = write_interactions_csv(
        tmp_path / "g.csv", 2500, n_users=7, n_items=3, event_types=("view",)
    )
    lines = path.read_text().splitlines()[1:]
    assert len(lines) == 2500
    assert {line.split(",")[0] for line in lines} <= {f"u{i}" for i in range(7)}
    assert {line.split(",")[1] for line in lines} == {f"i{i}" for i in range(3)}
    assert write_interactions_csv(tmp_path / "none.csv", 0).read_text() == HEADER

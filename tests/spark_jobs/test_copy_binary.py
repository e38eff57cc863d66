"""Arrow -> binary COPY: PostgreSQL reads back exactly the values sent, and writes the same bytes."""

from __future__ import annotations

import datetime as dt
import hashlib
import math

import psycopg
import pyarrow as pa
import pytest
from psycopg import sql

from spark_jobs import copy_binary
from tests.spark_jobs.serving_data import fresh_database

UTC = dt.UTC
TABLE = pa.table(
    {
        "s": pa.array(["AAPL", "", None, 'quote " and, comma', "naïve ✓ 株", "x" * 300]),
        "d": pa.array([0.1 + 0.2, -0.0, None, math.inf, -math.inf, 5e-324]),
        "f": pa.array([1.5, None, 0.0, -2.25, 3.0, 1e30], pa.float32()),
        "i8": pa.array([2**62, None, -1, 0, 7, -(2**63)], pa.int64()),
        "i4": pa.array([2**31 - 1, -(2**31), None, 0, 1, 2], pa.int32()),
        "i2": pa.array([1, 2, 3, None, -32768, 32767], pa.int16()),
        "b": pa.array([True, False, None, True, False, True]),
        "day": pa.array(
            [
                dt.date(2024, 2, 29),
                dt.date(1970, 1, 1),
                dt.date(1999, 12, 31),
                None,
                dt.date(2000, 1, 1),
                dt.date(9999, 12, 31),
            ],
            pa.date32(),
        ),
        "ts": pa.array(
            [
                dt.datetime(2024, 3, 1, 15, 30, 12, 345678, tzinfo=UTC),
                None,
                dt.datetime(1969, 7, 20, 20, 17, tzinfo=UTC),
                dt.datetime(2000, 1, 1, tzinfo=UTC),
                dt.datetime(1999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
                dt.datetime(2038, 1, 19, 3, 14, 8, tzinfo=UTC),
            ],
            pa.timestamp("us", "UTC"),
        ),
    }
)
PG_COLUMNS = (
    "s text, d double precision, f real, i8 bigint, i4 integer, i2 smallint, b boolean, day date, ts timestamptz"
)


@pytest.fixture
def db(pg_dsn: str):
    with fresh_database(pg_dsn) as dsn:
        yield dsn


def copy_in(conn: psycopg.Connection, table: pa.Table, batch_rows: int = 1_000) -> str:
    """COPY `table` into t's columns of the same names; the md5 of the tuples sent."""
    digest = hashlib.md5()
    with conn.cursor() as cur, cur.copy(f"COPY t ({', '.join(table.column_names)}) FROM STDIN (FORMAT binary)") as copy:
        copy.write(copy_binary.SIGNATURE)
        for chunk in copy_binary.encode(table, batch_rows):
            digest.update(chunk)
            copy.write(chunk)
        copy.write(copy_binary.TRAILER)
    return digest.hexdigest()


@pytest.mark.parametrize("batch_rows", [4, 65_536])
def test_postgres_reads_back_every_value_exactly(db, batch_rows):
    with psycopg.connect(db) as conn:
        conn.execute(f"CREATE TEMP TABLE t ({PG_COLUMNS})")
        copy_in(conn, TABLE, batch_rows)
        got = conn.execute("SELECT * FROM t").fetchall()
    expected = [tuple(row.values()) for row in TABLE.to_pylist()]
    assert len(got) == len(expected)
    for g, e in zip(got, expected, strict=True):
        assert g[:2] == e[:2] and g[3:] == e[3:]
        assert g[2] == (None if e[2] is None else pytest.approx(e[2], rel=1e-7))  # real is float32
    assert math.copysign(1, got[1][1]) == -1  # -0.0 keeps its sign


def test_the_bytes_equal_the_servers_own_binary_copy(db):
    """Same bytes as PostgreSQL's COPY TO (FORMAT binary): the load checksum can be re-derived server-side."""
    with psycopg.connect(db) as conn:
        conn.execute(f"CREATE TEMP TABLE t ({PG_COLUMNS}, n bigserial)")
        columns = ", ".join(TABLE.column_names)
        sent = copy_in(conn, TABLE, 2)
        dump = bytearray()
        with (
            conn.cursor() as cur,
            cur.copy(f"COPY (SELECT {columns} FROM t ORDER BY n) TO STDOUT (FORMAT binary)") as c,
        ):
            for data in c:
                dump += data
    assert bytes(dump[: len(copy_binary.SIGNATURE)]) == copy_binary.SIGNATURE
    body = bytes(dump[len(copy_binary.SIGNATURE) : -len(copy_binary.TRAILER)])
    assert hashlib.md5(body).hexdigest() == sent


def test_read_digest_hashes_the_servers_tuples_as_encode_hashed_them_and_counts_them(db):
    """The load's content check: the md5 of what the server holds equals the md5 of what was sent,
    for many rows (one protocol message each), a single row, and none."""
    rows = pa.concat_tables([TABLE] * 500)
    with psycopg.connect(db) as conn:
        conn.execute(f"CREATE TEMP TABLE t ({PG_COLUMNS}, n bigserial)")
        sent = copy_in(conn, rows)
        columns = sql.SQL(", ").join(map(sql.Identifier, TABLE.column_names))
        ordered = sql.SQL("SELECT {} FROM t WHERE n <= {} ORDER BY n")
        assert copy_binary.read_digest(conn, ordered.format(columns, rows.num_rows)) == (rows.num_rows, sent)
        one = hashlib.md5(b"".join(copy_binary.encode(TABLE.slice(0, 1)))).hexdigest()
        assert copy_binary.read_digest(conn, ordered.format(columns, 1)) == (1, one)
        assert copy_binary.read_digest(conn, ordered.format(columns, 0)) == (0, hashlib.md5(b"").hexdigest())
        # any changed value changes it, even a zero's sign
        conn.execute("UPDATE t SET d = 0.0 WHERE n = 2")
        assert copy_binary.read_digest(conn, ordered.format(columns, rows.num_rows))[1] != sent


def test_read_digest_raises_the_servers_error_and_leaves_the_connection_usable(db):
    with psycopg.connect(db, autocommit=True) as conn:
        failing = sql.SQL("SELECT 1 / (n - 3000) FROM generate_series(1, 5000) AS n")
        with pytest.raises(psycopg.errors.DivisionByZero):
            copy_binary.read_digest(conn, failing)
        assert conn.execute("SELECT 1").fetchone() == (1,)


def test_an_empty_table_encodes_to_nothing():
    assert b"".join(copy_binary.encode(TABLE.slice(0, 0))) == b""


def test_an_unsupported_type_is_named():
    table = pa.table({"ok": [1], "amount": pa.array([[1, 2]], pa.list_(pa.int64()))})
    with pytest.raises(TypeError, match=r"column .amount.: Arrow type list<item: int64>"):
        list(copy_binary.encode(table))

"""Reads a decrypted release table with independent implementations and prints it as JSON.

Run by crates/caldicott-share/tests/output.rs after the rage CLI decrypted the release:

    python parquet_check.py parquet cohort.parquet
        -> {"columns": [...], "types": [...], "logical_types": [...],
            "row_groups": n, "rows": [[...], ...]}
    python parquet_check.py csv cohort.csv
        -> {"rows": [[header...], [...], ...], "crlf": true}

Parquet is read with pyarrow (Apache Arrow's C++ reader), CSV with Python's own csv
module, so neither shares code with the Rust writers. The test compares the rows with
what it wrote; this script only reports what it read (and fails loudly on a file it
cannot read).
"""

import csv
import json
import sys


def read_parquet(path):
    import pyarrow.parquet as pq

    pf = pq.ParquetFile(path)
    schema = pf.schema  # the Parquet schema, with logical types
    table = pf.read()
    columns = table.column_names
    data = [table.column(name).to_pylist() for name in columns]
    rows = [list(values) for values in zip(*data)] if columns else []
    return {
        "columns": columns,
        "types": [str(table.schema.field(name).type) for name in columns],
        "logical_types": [str(schema.column(i).logical_type) for i in range(len(columns))],
        "row_groups": pf.num_row_groups,
        "rows": rows,
    }


def read_csv(path):
    with open(path, "rb") as f:
        raw = f.read()
    # RFC 4180: every record ends in CRLF (the writer ends the last one too).
    lines_end_crlf = raw.endswith(b"\r\n") and b"\n" not in raw.replace(b"\r\n", b"")
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f, dialect="excel", strict=True))
    return {"rows": rows, "crlf": raw.endswith(b"\r\n"), "crlf_only": lines_end_crlf}


def main():
    if len(sys.argv) != 3 or sys.argv[1] not in ("parquet", "csv"):
        sys.exit("usage: parquet_check.py parquet|csv FILE")
    kind, path = sys.argv[1], sys.argv[2]
    out = read_parquet(path) if kind == "parquet" else read_csv(path)
    json.dump(out, sys.stdout, ensure_ascii=False)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()

"""The anjana side of `cargo xtask bench anonymise` (run by
crates/caldicott-deid/benches/versus_anjana.rs with the interpreter of the venv pyenv-bench in ~/.cache/caldicott-tools).

What it does, on the input, hierarchies, k and suppression limit the Rust bench gives it:
- times anjana's `k_anonymity` (IFCA's framework, PyPI; pinned in
  tests/python/bench-requirements.txt) with the data and hierarchies already in memory
  ("loading excluded", as our engine's search time), and separately with reading the CSV
  and the hierarchy files included, each several times;
- writes anjana's released table;
- computes the same information-loss figures, with the same code below, for anjana's
  released table and for our engine's (written by the Rust bench), each against the input:
  ARX's non-uniform entropy, discernibility, the number of equivalence classes, the smallest
  class and the average-class-size metric; the k of each release is also checked with
  pycanon (IFCA's independent checker that anjana itself uses);
- prints one JSON object on stdout (progress goes to stderr).

What it is not: a test, nor a reimplementation of anjana; anjana's own public function is
what is timed.

Hierarchies are read from ARX-format CSV files (one row per original value, one column per
level, no header) into the dict-of-columns form anjana documents:
`{0: column of level 0, 1: column of level 1, ...}` (`dict(pd.read_csv(path, header=None))`).
Every value is read as a string, in the input and the hierarchies alike, so that e.g. ages
match between the two without pandas' type guessing.
"""

import argparse
import importlib.metadata
import json
import statistics
import sys
import time

import numpy as np
import pandas as pd
import pycanon.anonymity
from anjana.anonymity import k_anonymity
from anjana.anonymity.utils import utils as anjana_utils


def read_input(path, sep):
    return pd.read_csv(path, sep=sep, dtype=str, keep_default_na=False)


def read_hierarchies(qis, sep):
    return {
        name: dict(pd.read_csv(path, sep=sep, header=None, dtype=str, keep_default_na=False))
        for name, path in qis
    }


def spread(times):
    """Figures of a list of durations in seconds, in milliseconds."""
    ms = sorted(t * 1e3 for t in times)
    return {
        "runs": len(ms),
        "min_ms": ms[0],
        "median_ms": statistics.median(ms),
        "max_ms": ms[-1],
        "all_ms": ms,
    }


def information_loss(original, released, qis, k):
    """Loss figures of one released table against the input, rows aligned by position.

    Non-uniform entropy is ARX's (Prasser et al.): over every quasi-identifier and record,
    -log2(#records with the original value / #records with the released value), computed
    from the two tables alone, so it needs neither hierarchies nor levels. Discernibility is
    the sum of squared class sizes (no record is suppressed at a 0% limit; a record whose
    quasi-identifiers are all "*" counts as an ordinary class member here).
    """
    if len(original) != len(released):
        raise ValueError(f"released table has {len(released)} rows, input {len(original)}")
    nue = 0.0
    per_qi = {}
    for q in qis:
        before = original[q].map(original[q].value_counts()).to_numpy(dtype=float)
        after = released[q].map(released[q].value_counts()).to_numpy(dtype=float)
        loss = float(np.log2(after / before).sum())
        per_qi[q] = loss
        nue += loss
    sizes = released.groupby(qis, sort=False).size().to_numpy(dtype=float)
    n = float(len(released))
    return {
        "non_uniform_entropy": nue,
        "non_uniform_entropy_per_qi": per_qi,
        "discernibility": float((sizes * sizes).sum()),
        "classes": int(len(sizes)),
        "min_class_size": int(sizes.min()),
        "average_class_size_metric": n / len(sizes) / k,
        "pycanon_k": int(pycanon.anonymity.k_anonymity(released, qis)),
    }


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--input", required=True)
    p.add_argument("--sep", default=";")
    p.add_argument("--qi", action="append", required=True, metavar="NAME=HIERARCHY_CSV")
    p.add_argument("--k", type=int, required=True)
    p.add_argument("--suppression", type=float, required=True, help="percent, 0 to 100")
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--runs-with-load", type=int, default=3)
    p.add_argument("--out", required=True, help="where to write anjana's release")
    p.add_argument("--ours", required=True, help="our engine's release, to measure alike")
    a = p.parse_args()
    qis = [tuple(q.split("=", 1)) for q in a.qi]
    names = [n for n, _ in qis]

    data = read_input(a.input, a.sep)
    hierarchies = read_hierarchies(qis, a.sep)
    ident = []  # every column of Adult is a quasi-identifier

    excluded, released = [], None
    for i in range(a.runs):
        t = time.perf_counter()
        released = k_anonymity(data, ident, names, a.k, a.suppression, hierarchies)
        excluded.append(time.perf_counter() - t)
        print(f"anjana: run {i + 1}/{a.runs} (loading excluded) {excluded[-1]:.2f} s",
              file=sys.stderr)
    included = []
    for i in range(a.runs_with_load):
        t = time.perf_counter()
        d = read_input(a.input, a.sep)
        h = read_hierarchies(qis, a.sep)
        k_anonymity(d, ident, names, a.k, a.suppression, h)
        included.append(time.perf_counter() - t)
        print(f"anjana: run {i + 1}/{a.runs_with_load} (loading included) "
              f"{included[-1]:.2f} s", file=sys.stderr)

    if released is None or len(released) == 0:
        raise SystemExit("anjana released no table (it could not reach the k asked for)")
    # anjana adds an `index` column when it suppresses rows; keep the input's columns only.
    released = released[list(data.columns)]
    released.to_csv(a.out, sep=a.sep, index=False)
    ours = read_input(a.ours, a.sep)[list(data.columns)]
    levels = anjana_utils.get_transformation(released, names, hierarchies)

    json.dump(
        {
            "anjana_version": importlib.metadata.version("anjana"),
            "python": sys.version.split()[0],
            "rows": len(data),
            "released_rows": len(released),
            "suppressed_rows": len(data) - len(released),
            "levels": [int(x) for x in levels],
            "loading_excluded": spread(excluded),
            "loading_included": spread(included),
            "loss": {
                "anjana": information_loss(data, released, names, a.k),
                "ours": information_loss(data, ours, names, a.k),
            },
        },
        sys.stdout,
    )
    print()


if __name__ == "__main__":
    main()

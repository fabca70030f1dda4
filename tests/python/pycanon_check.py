"""Checks a de-identified table with pycanon, an independent anonymity checker.

Run by crates/caldicott-deid/tests/pycanon.rs:

    python pycanon_check.py RELEASE.csv SEPARATOR QI1,QI2,... SENSITIVE|- EXPECT_JSON

RELEASE.csv is the engine's output (the input's separator; suppressed rows, if kept, have
every quasi-identifier `*`). EXPECT_JSON holds what the policy requires and what the engine's
report claims:

    {"k": 5, "l_distinct": 3, "l_entropy": 3, "t": 0.2,
     "report_t": 0.13, "report_min_class": 5, "drop_suppressed": false}

The script reads the CSV as strings (pycanon treats a numeric column as ordered, and the
released labels are categories), drops suppressed rows when asked (they are not a class the
release publishes), computes k, distinct l, entropy l and t (equal ground distance, which is
what pycanon uses for string attributes) with pycanon, asserts each meets the policy and
matches the engine's report, and prints one line of figures. Exit status 0 only if every
check holds.
"""

import json
import math
import sys

import pandas as pd
from pycanon import anonymity


def main() -> int:
    path, sep, qis, sensitive, expect = sys.argv[1:6]
    sep = "\t" if sep == "tab" else sep
    qis = qis.split(",")
    expect = json.loads(expect)
    data = pd.read_csv(path, sep=sep, dtype=str, keep_default_na=False)
    missing = [c for c in qis if c not in data.columns]
    if missing:
        print(f"FAIL: columns {missing} not in the release header {list(data.columns)}")
        return 1
    if expect.get("drop_suppressed"):
        suppressed = (data[qis] == "*").all(axis=1)
        data = data[~suppressed].reset_index(drop=True)
    failures = []

    k = anonymity.k_anonymity(data, qis)
    figures = {"rows": len(data), "k": k}
    if k < expect["k"]:
        failures.append(f"pycanon k = {k} < required {expect['k']}")
    if "report_min_class" in expect and k != expect["report_min_class"]:
        failures.append(
            f"pycanon k = {k}, but the engine reports a smallest class of {expect['report_min_class']}"
        )

    if sensitive != "-":
        sa = [sensitive]
        l_distinct = anonymity.l_diversity(data, qis, sa)
        figures["l_distinct"] = l_distinct
        if "l_distinct" in expect and l_distinct < expect["l_distinct"]:
            failures.append(f"pycanon distinct l = {l_distinct} < required {expect['l_distinct']}")
        # pycanon's entropy l is int(min over classes of exp(entropy)): the floor.
        l_entropy = anonymity.entropy_l_diversity(data, qis, sa)
        figures["l_entropy"] = l_entropy
        if "l_entropy" in expect and l_entropy < math.floor(expect["l_entropy"]):
            failures.append(f"pycanon entropy l = {l_entropy} < required {expect['l_entropy']}")
        t = anonymity.t_closeness(data, qis, sa)
        figures["t"] = t
        if "t" in expect and t > expect["t"] + 1e-9:
            failures.append(f"pycanon t = {t} > required {expect['t']}")
        if "report_t" in expect and abs(t - expect["report_t"]) > 1e-9:
            failures.append(f"pycanon t = {t}, but the engine reports {expect['report_t']}")

    print("pycanon: " + json.dumps(figures))
    for f in failures:
        print("FAIL: " + f)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

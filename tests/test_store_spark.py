"""Apache Spark reads the store's raw files with the documented join (docs/store.md):
names stay strings, an empty table has its schema.  Needs pyspark and a Java runtime
(marked spark: TRACEKIT_SPARK=1)."""

from __future__ import annotations

import pytest

import tracekit

FG = "qemu/x86_64-6.1.0-56-preempt-none/fgraph_default.txt"

pytestmark = pytest.mark.spark


def test_spark_reads_the_store(tmp_path, corpus):
    pyspark = pytest.importorskip("pyspark.sql")
    store = tracekit.open_store(tmp_path / "s")
    (r,) = tracekit.ingest([str(corpus / FG)], store=store, patch="1234", label="1", arch="x86_64")
    tracekit.ingest([str(corpus / FG)], store=store, patch="mm/foo", label="before")
    spark = (pyspark.SparkSession.builder.master("local[1]").config("spark.ui.enabled", "false")
             .config("spark.sql.shuffle.partitions", "1").getOrCreate())
    try:
        read = spark.read.option("recursiveFileLookup", "true")
        spans, runs, members, windows = (read.parquet(str(store.root / t)) for t in ("spans", "runs", "memberships", "windows"))
        assert dict(members.dtypes)["patch"] == "string" and dict(members.dtypes)["label"] == "string"
        assert windows.count() == 0 and "latency_ns" in windows.columns
        got = (spans.join(runs.select("run_id", "attempt", "arch"), ["run_id", "attempt"])
               .join(members, "run_id").groupBy("patch", "label", "arch").count()
               .orderBy("patch").collect())
        n = r.counts["spans"]
        assert [tuple(x) for x in got] == [("1234", "1", "x86_64", n), ("mm/foo", "before", "x86_64", n)]
    finally:
        spark.stop()

"""Bar store / cache layer: settled trading days as parquet day files (atomic writes, a lock for shared state),
read back many days at a time, and a memory-mapped panel cache over the lookback window. Sources write into it;
it imports no source."""

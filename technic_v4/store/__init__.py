"""Bar store / cache layer: wraps a source, keeps closed trading days as parquet, builds panels."""

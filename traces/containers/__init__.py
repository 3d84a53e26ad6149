"""Container readers: one module per file container (CSV, JSON/JSON Lines, Parquet), each
turning a sniffed `source._Source` into a `Trace` via `convert`."""

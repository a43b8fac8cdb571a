"""The domain: the dates x symbols `Panel` at the bottom, bar quality next to it, indicators, the market regime and
scoring (with the result schema) on top. Plain numpy/pandas/pandera: no I/O, no Prefect, no Ray."""

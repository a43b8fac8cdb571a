"""Side-by-side benchmarks of technic_v4; `python -m benchmarks.run` regenerates docs/performance.{md,json}."""

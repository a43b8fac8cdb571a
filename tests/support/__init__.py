"""Test and benchmark support, kept with the tests (the wheel ships none of it): the Polygon-compatible loopback
server (`python -m tests.support.polygon_server`), its fault knobs, a tiny fake market, and the helper scripts the
reliability tests run in processes of their own (processes.py starts them)."""

"""Test and benchmark support: the Polygon-compatible loopback server, its fault knobs and a tiny fake market."""

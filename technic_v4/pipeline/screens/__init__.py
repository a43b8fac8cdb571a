"""Saved screens (model.py, presets.toml, the user's screens.toml), a screen over one scan's table (apply.py) and its
files and member history (publish.py)."""

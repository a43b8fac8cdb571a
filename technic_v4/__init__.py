"""technic_v4: a full-universe US stock scanner orchestrated by Prefect.

Layers (each its own folder): data sources (`technic_v4.data`) -> bar store/cache (`technic_v4.store`)
-> indicators/scoring (`technic_v4.domain`) -> pipeline stages (`technic_v4.pipeline`) -> flows (`flows/`)
-> entry points (`technic_v4.api`, `technic_v4.cli`). Importing the package changes nothing in the process.
"""

__version__ = "0.2.0"  # the one home of the version: pyproject.toml reads it (dynamic)

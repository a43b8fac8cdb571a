"""technic_v4: a full-universe US stock scanner orchestrated by Prefect.

Layers (each its own folder): data sources (`technic_v4.data`) -> bar store/cache (`technic_v4.store`)
-> indicators/scoring (`technic_v4.indicators`, `technic_v4.scoring`) -> flows (`flows/`).
"""

__version__ = "0.1.0"

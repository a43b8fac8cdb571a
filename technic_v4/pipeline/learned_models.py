"""Learned-rating models on disk: one folder per fit under `data_dir/models/learned-{h}d/<applies_from>/`.

Each folder holds `ridge.json` (intercept and coefficients by feature name, exact floats), `lgbm.txt` (LightGBM's own
model text) and `manifest.json`: horizon, the session the model applies from, its training window (first and last
training session, the session the last training label closed), rows, features, which kind the rating uses and why
(the selection ICs), both kinds' Signal cut-offs, the walk-forward settings, the source it was trained on and the
library versions. Every file is written atomically and the manifest last, so a folder without one is ignored.

`latest_model(data_dir, horizon, as_of, source_id)` is what a scan loads: the newest model of that source whose last
training label closed before `as_of` (and that applies by then), as a domain LearnedModel; None when there is none.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import platform
from pathlib import Path

import numpy as np

from technic_v4.domain.scoring.learned import LearnedModel
from technic_v4.store.atomic import atomic_write_bytes, atomic_write_text

MODELS_FOLDER = "models"
MANIFEST = "manifest.json"
FILES = {"ridge": "ridge.json", "lgbm": "lgbm.txt"}


def models_root(data_dir: Path, horizon: int) -> Path:
    return Path(data_dir) / MODELS_FOLDER / f"learned-{horizon}d"


def library_versions() -> dict[str, str]:
    import lightgbm
    import pandas
    import sklearn

    return {"python": platform.python_version(), "numpy": np.__version__, "pandas": pandas.__version__,
            "scikit-learn": sklearn.__version__, "lightgbm": lightgbm.__version__}


def _ridge_json(model: LearnedModel) -> str:
    return json.dumps({"intercept": model.intercept, "coef": dict(zip(model.features, model.coef.tolist())),
                       **model.manifest}, indent=1)


def save_fit(data_dir: Path, fit, spec, source_id: str, oos: dict | None = None) -> Path:
    """Write one walk-forward Fit (pipeline/evaluation/learned.Fit) with its manifest; returns the folder."""
    folder = models_root(data_dir, fit.horizon) / fit.applies_from
    atomic_write_text(folder / FILES["ridge"], _ridge_json(fit.models["ridge"]))
    atomic_write_bytes(folder / FILES["lgbm"], fit.blobs["lgbm"])
    manifest = {
        "horizon": fit.horizon, "applies_from": fit.applies_from, "train_start": fit.train_start,
        "train_end": fit.train_end, "labels_end": fit.labels_end, "rows": fit.rows, "chosen": fit.chosen,
        "selection": fit.selection, "features": {k: list(m.features) for k, m in fit.models.items()},
        "cutoffs": {k: m.cutoffs for k, m in fit.models.items()}, "files": FILES,
        "walk_forward": dataclasses.asdict(spec), "source": source_id, "versions": library_versions(),
        "oos": oos or {}, "written_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }
    atomic_write_text(folder / MANIFEST, json.dumps(manifest, indent=1, default=_json_default))
    return folder


def _json_default(v):
    if isinstance(v, float | np.floating):
        return None if not np.isfinite(v) else float(v)
    raise TypeError(f"not JSON: {type(v)}")


def load_model(folder: Path, kind: str | None = None) -> LearnedModel:
    """The model of `folder` (its chosen kind unless `kind`), with the manifest attached."""
    manifest = json.loads((Path(folder) / MANIFEST).read_text())
    kind = kind or manifest["chosen"]
    features = tuple(manifest["features"][kind])
    cutoffs = {k: (float(v) if v is not None else float("nan")) for k, v in manifest["cutoffs"][kind].items()}
    if kind == "ridge":
        data = json.loads((Path(folder) / FILES["ridge"]).read_text())
        coef = np.array([data["coef"][f] for f in features], dtype=np.float64)
        return LearnedModel(kind, features, cutoffs, intercept=float(data["intercept"]), coef=coef, manifest=manifest)
    import lightgbm as lgb

    booster = lgb.Booster(model_str=(Path(folder) / FILES["lgbm"]).read_text())
    return LearnedModel(kind, features, cutoffs, booster=booster, manifest=manifest)


def manifests(data_dir: Path, horizon: int) -> list[tuple[Path, dict]]:
    """(folder, manifest) of every complete model of `horizon`, oldest first."""
    root = models_root(data_dir, horizon)
    out = []
    for path in sorted(root.glob(f"*/{MANIFEST}")) if root.exists() else []:
        try:
            out.append((path.parent, json.loads(path.read_text())))
        except (OSError, json.JSONDecodeError):
            continue  # an unreadable manifest is an unusable model, never a half-read one
    return sorted(out, key=lambda fm: (fm[1]["labels_end"], fm[1]["applies_from"]))


def latest_model(data_dir: Path, horizon: int, as_of: dt.date, source_id: str) -> LearnedModel | None:
    """The newest model of `source_id` whose last training label closed before `as_of`; None when none does."""
    day = as_of.isoformat()
    usable = [(f, m) for f, m in manifests(data_dir, horizon)
              if m.get("source") == source_id and m["labels_end"] < day and m["applies_from"] <= day]
    return load_model(usable[-1][0]) if usable else None

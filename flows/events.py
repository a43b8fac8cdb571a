"""Prefect events `technic.screen.changed`: one per published screen whose members changed, so a Prefect Automation
can notify (README "Seeing and being told" has a sample). The resource is the screen and its configuration; the
payload lists new, dropped and flipped symbols with their Signal and TechRating."""

from __future__ import annotations

from collections.abc import Sequence

from prefect.events import emit_event

from technic_v4.pipeline.alerts import EVENT_NAME, ScreenChange


def emit_screen_changes(changes: Sequence[ScreenChange]) -> list[str]:
    """Emit one event per changed screen; returns the event ids (an event the client could not queue is left out)."""
    ids = []
    for change in changes:
        if not change.changed:
            continue
        try:
            event = emit_event(
                event=EVENT_NAME,
                resource={"prefect.resource.id": change.resource_id, "prefect.resource.name": change.screen,
                          "technic.config-key": change.config_key, "technic.as-of": change.as_of},
                payload=change.payload(),
            )
        except Exception:  # noqa: BLE001 - an event the client cannot queue is left out (the scan goes on)
            event = None
        if event is not None:
            ids.append(str(event.id))
    return ids

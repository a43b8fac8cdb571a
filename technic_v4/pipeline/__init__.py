"""Plain, testable steps of a scan (no Prefect, no Ray). flows/ wraps them as tasks."""

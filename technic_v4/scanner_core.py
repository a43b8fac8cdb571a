"""The seed's public name, kept importable: `from technic_v4.scanner_core import run_scan, ScanConfig`."""

from technic_v4.api import ScanConfig, run_scan, run_scan_output

__all__ = ["ScanConfig", "run_scan", "run_scan_output"]

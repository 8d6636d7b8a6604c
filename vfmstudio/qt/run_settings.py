"""Run settings of the window: the time limit, background prefetch, and the devices in use."""

from __future__ import annotations

import logging
from typing import Any

from PySide6.QtWidgets import QMessageBox

log = logging.getLogger(__name__)


class RunSettings:
    def __init__(self, window: Any):
        self.w = window
        self.settings = window.settings

    def make_prefetcher(self):
        """Features of the next images are computed in the background (docs/adr/0090). Setting
        ``prefetch/enabled`` (default on, or ``$VFMSTUDIO_PREFETCH``) and ``prefetch/ahead`` (1-3)."""
        from vfmstudio.prefetch import DEFAULT_AHEAD, Prefetcher, env_enabled

        enabled = str(self.settings.value("prefetch/enabled", env_enabled())).lower() not in (
            "false",
            "0",
            "no",
        )
        try:
            ahead = int(self.settings.value("prefetch/ahead", DEFAULT_AHEAD))
        except (TypeError, ValueError):
            ahead = DEFAULT_AHEAD
        return Prefetcher(
            self.w.runner.runner,
            self.w.images.load,
            services=self.w._services,
            ahead=ahead,
            enabled=enabled,
            timeout=self.tool_timeout_s(),
        )

    def tool_timeout_s(self) -> float | None:
        """Seconds a run may take before it is abandoned: setting ``run/timeout_s``, else
        ``$VFMSTUDIO_TOOL_TIMEOUT_S``, else 900; 0 means no limit (docs/reliability.md)."""
        from vfmstudio.execution import DEFAULT_TOOL_TIMEOUT_S, tool_timeout_s

        value = self.settings.value("run/timeout_s")
        try:
            return tool_timeout_s(value if value not in (None, "") else None)
        except ValueError as exc:
            log.warning("using a %g s run time limit: %s", DEFAULT_TOOL_TIMEOUT_S, exc)
            return DEFAULT_TOOL_TIMEOUT_S

    def set_tool_timeout(self, seconds: float) -> None:
        """Store the run time limit (``run/timeout_s``); 0 means no limit. Applies to the next run."""
        from vfmstudio.execution import tool_timeout_s

        tool_timeout_s(seconds)  # refuses a negative or non-finite value
        self.settings.setValue("run/timeout_s", float(seconds))

    def ask_tool_timeout(self) -> None:
        from PySide6.QtWidgets import QInputDialog

        current = self.tool_timeout_s() or 0
        seconds, ok = QInputDialog.getInt(
            self.w,
            "Run time limit",
            "Abandon a run after this many seconds (0: no limit). A hung plugin tool then gives an error.",
            int(current),
            0,
            7 * 24 * 3600,
        )
        if ok:
            self.set_tool_timeout(seconds)
            self.w.messages.post(
                "info", f"run time limit: {seconds} s" if seconds else "run time limit: none"
            )

    def show_probe_device(self) -> None:
        try:
            from vfmstudio.ml.devices import probe_device_without_torch

            device = probe_device_without_torch()["device"]
        except Exception:  # noqa: BLE001 - only a hint for the status bar
            device = "cpu"
        self.w.device_status.setText(f"device: {device} (auto)")
        self.w.tools.show_device(device, "auto", "until the first run")

    def show_devices(self) -> None:
        """What torch sees, asked on the inference thread (importing torch takes a moment)."""
        from vfmstudio.qt.devices_dialog import describe_torch_devices_job

        self.w.runner.submit(
            describe_torch_devices_job, key="devices", source="devices", on_done=self._on_devices
        )
        self.w.statusBar().showMessage("asking torch about devices…", 3000)

    def _on_devices(self, result) -> None:
        from vfmstudio.qt.devices_dialog import describe

        if result.status != "done":
            if result.error is not None:
                self.w.messages.post("error", f"devices: {result.error.message}", result.error.traceback)
            return
        self.w.device_report = info = result.value
        box = QMessageBox(QMessageBox.Icon.Information, "Devices", describe(info), parent=self.w)
        box.setModal(False)
        box.show()
        self.w.device_status.setText(f"device: {info.get('default_device')} (auto)")

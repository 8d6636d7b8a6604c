"""Plugin loading for the window, off the GUI thread, and Help › Plugins / About."""

from __future__ import annotations

from typing import Any

from PySide6.QtWidgets import QMessageBox


class WindowPlugins:
    def __init__(self, window: Any):
        self.w = window

    def load(self) -> None:
        """Load plugins off the GUI thread (their imports must not hold up the first image); the
        tools panel fills in when they are in."""
        host, safe_mode = self.w._host, self.w._safe_mode
        if self.w.tasks.runner.closed:
            return  # closed before the first event-loop turn

        def work(_ctx) -> tuple[Any, list, str | None]:
            try:
                loaded = host
                if loaded is None:
                    from vfmstudio._plugin_host import get_host

                    loaded = get_host(safe_mode=safe_mode or None)
                return loaded, loaded.list_statuses(), None
            except Exception as exc:  # noqa: BLE001 - the window must come up without plugins too
                return host, [], f"plugins could not be loaded: {type(exc).__name__}: {exc}"

        self.w.tasks.submit(
            work, source="plugins", on_done=lambda r: r.ok and self._on_plugins_loaded(*r.value)
        )

    def _on_plugins_loaded(self, host: Any, statuses: list, error: str | None) -> None:
        self.w._host = host
        if error is not None:
            self.w.messages.post("error", error)
        for st in statuses:
            if st.status == "failed":
                self.w.messages.post(
                    "error", f"plugin {st.name} failed to load: {st.error}", st.traceback or ""
                )
            elif st.status in ("disabled", "skipped"):
                self.w.messages.post("info", f"plugin {st.name} {st.status}: {st.error or ''}".rstrip(": "))
        tools = list(host.tools.values()) if host is not None else []
        self.w.session.set_tools(tools)
        self.w.tools.set_tools(tools)
        self.w.tool_memory.restore_last_tool()
        self.w.controller.freeze_long_lived_objects()
        self.w.messages.post(
            "info", f"{len(tools)} tools from {sum(s.status == 'loaded' for s in statuses)} plugins"
        )

    def show(self) -> None:
        if self.w._host is None:
            return
        lines = [
            f"{s.name} [{s.source}] {s.status}{': ' + s.error if s.error else ''}"
            for s in self.w._host.list_statuses()
        ]
        box = QMessageBox(
            QMessageBox.Icon.Information, "Plugins", "\n".join(lines) or "no plugins", parent=self.w
        )
        box.setModal(False)
        box.show()

    def about(self) -> None:
        from vfmstudio import __version__

        QMessageBox.about(
            self.w,
            "About vfmstudio",
            f"vfmstudio {__version__}\nA studio for vision foundation "
            "models: DINOv2, CLIP/SigLIP and PaliGemma 2.",
        )

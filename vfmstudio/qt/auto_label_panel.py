"""The status-bar panel of a folder run: done/total, images per second, time left, failures, and
Pause / Resume / Cancel; also the offer to resume a run a closed or crashed window left unfinished
(never a modal dialog at start-up). Only paints: :mod:`vfmstudio.qt.auto_label` decides."""

from __future__ import annotations

from PySide6.QtWidgets import (
    QDialog,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)


def progress_text(tool: str, counts: dict) -> str:
    """``batchfake.detect · 12/40 · 5.3 img/s · 00:05 left`` (skipped images are not counted)."""
    from vfmstudio.engines.progress import format_duration

    todo = max(0, counts["images"] - counts["skipped"])
    done = counts["done"] + counts["failed"]
    skipped = f" ({counts['skipped']} done before)" if counts["skipped"] else ""
    return (
        f"{tool} · {done}/{todo}{skipped} · {counts['rate']:.1f} img/s · "
        f"{format_duration(counts['eta'])} left"
    )


class AutoLabelPanel(QWidget):
    """Hidden until a run starts or an unfinished run is found."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("auto_label_panel")
        row = QHBoxLayout(self)
        row.setContentsMargins(4, 0, 4, 0)
        self.text = QLabel("", self)
        self.bar = QProgressBar(self)
        self.bar.setFixedWidth(110)
        self.bar.setTextVisible(False)
        self.failures = QPushButton("", self)
        self.failures.setFlat(True)
        self.failures.setToolTip("the images this run could not do, with the reason")
        self.pause = QPushButton("Pause", self)
        self.pause.setToolTip("stop after the batch in progress; Resume continues where it stopped")
        self.resume = QPushButton("Resume", self)
        self.resume.setToolTip("continue the run: images already done are skipped")
        self.cancel = QPushButton("Cancel", self)
        self.dismiss = QPushButton("Dismiss", self)
        self.dismiss.setToolTip("do not offer this run again (its predictions stay pending)")
        for w in (self.text, self.bar, self.failures, self.pause, self.resume, self.cancel, self.dismiss):
            row.addWidget(w)
        self.setVisible(False)

    def _buttons(self, *, pause: bool, resume: bool, cancel: bool, dismiss: bool) -> None:
        self.pause.setVisible(pause)
        self.resume.setVisible(resume)
        self.cancel.setVisible(cancel)
        self.dismiss.setVisible(dismiss)

    def _failed(self, n: int) -> None:
        self.failures.setText(f"{n} failed")
        self.failures.setVisible(n > 0)

    def show_running(self, tool: str, counts: dict, *, pausing: bool = False) -> None:
        todo = max(1, counts["images"] - counts["skipped"])
        self.bar.setRange(0, todo)
        self.bar.setValue(min(todo, counts["done"] + counts["failed"]))
        self.bar.setVisible(True)
        self.text.setText(progress_text(tool, counts) + (" · pausing after this batch…" if pausing else ""))
        self._failed(counts["failed"])
        self._buttons(pause=not pausing, resume=False, cancel=True, dismiss=False)
        self.setVisible(True)

    def show_stopped(self, text: str, failed: int, *, resumable: bool) -> None:
        self.text.setText(text)
        self.bar.setVisible(False)
        self._failed(failed)
        self._buttons(pause=False, resume=resumable, cancel=False, dismiss=True)
        self.setVisible(True)

    def show_offer(self, text: str) -> None:
        """An unfinished run found when the project opened."""
        self.show_stopped(text, 0, resumable=True)


class FailuresDialog(QDialog):
    """The images a run could not do: image, stage (read / run / write) and the reason."""

    def __init__(self, title: str, failures: list[dict], parent: QWidget | None = None):
        super().__init__(parent)
        self.setWindowTitle(title)
        self.setModal(False)
        self.resize(640, 300)
        self.table = QTableWidget(len(failures), 3, self)
        self.table.setHorizontalHeaderLabels(["Image", "Stage", "Reason"])
        for row, f in enumerate(failures):
            for col, key in enumerate(("rel", "stage", "reason")):
                item = QTableWidgetItem(
                    str(f.get(key, f.get("path", "")) if key == "rel" else f.get(key, ""))
                )
                item.setToolTip(item.text())
                self.table.setItem(row, col, item)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.resizeColumnToContents(0)
        layout = QVBoxLayout(self)
        layout.addWidget(self.table)

    def rows(self) -> list[tuple[str, str, str]]:
        return [
            tuple(self.table.item(r, c).text() for c in range(3))  # type: ignore[misc]
            for r in range(self.table.rowCount())
        ]

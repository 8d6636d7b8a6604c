"""Results that are not drawn on the image: scores as bars, text with streaming and a per-image
history, tables, and rankings with thumbnails."""

from __future__ import annotations

import html
from collections.abc import Callable

from PySide6.QtCore import QRectF, QSize, Qt, Signal
from PySide6.QtGui import QColor, QIcon, QPainter
from PySide6.QtWidgets import (
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QTableWidget,
    QTableWidgetItem,
    QTabWidget,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

from vfmstudio.core.results import Classification, Prediction, Ranking, Table, Text

MAX_BARS = 20


class ScoreBars(QWidget):
    """Classification scores as horizontal bars, best first."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.result: Classification | None = None
        self.caption = ""  # the image and tool the scores belong to
        self.setMinimumHeight(60)

    def set_result(self, result: Classification | None, caption: str = "") -> None:
        self.result = result
        self.caption = caption if result is not None else ""
        n = 0 if result is None else min(MAX_BARS, len(result.labels))
        self.setMinimumHeight(max(60, 22 * n + 30))
        self.update()

    def fraction(self, score: float) -> float:
        """How much of a full bar ``score`` fills. Probabilities (softmax) and SigLIP's independent
        sigmoid scores are both on a 0-1 scale: a full bar is 1.0, so a low best score looks low
        (never stretched to the top score)."""
        top = (
            max(1.0, float(self.result.scores.max()))
            if self.result is not None and len(self.result.labels)
            else 1.0
        )
        return max(0.0, score) / top

    def paintEvent(self, event) -> None:
        p = QPainter(self)
        p.fillRect(self.rect(), self.palette().base())
        r = self.result
        if r is None or not r.labels:
            p.setPen(self.palette().mid().color())
            p.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter, "no scores yet")
            return
        label_w = min(180, self.width() // 3)
        p.setPen(self.palette().text().color())
        p.drawText(
            QRectF(4, 2, self.width() - 8, 20),
            Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignLeft,
            self.caption,
        )
        for i, (label, score) in enumerate(zip(r.labels[:MAX_BARS], r.scores[:MAX_BARS])):
            y = 26 + i * 22
            bar_w = (self.width() - label_w - 70) * self.fraction(float(score))
            p.setPen(self.palette().text().color())
            p.drawText(
                QRectF(4, y, label_w - 8, 20),
                Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignRight,
                label,
            )
            p.fillRect(QRectF(label_w, y + 3, bar_w, 14), QColor(70, 130, 200) if i else QColor(230, 140, 40))
            p.drawText(
                QRectF(label_w + bar_w + 6, y, 64, 20), Qt.AlignmentFlag.AlignVCenter, f"{float(score):.3f}"
            )


class TextHistory(QTextBrowser):
    """Per-image questions and answers; the running job's text streams into the last entry."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.entries: dict[str, list[tuple[str, str, str]]] = {}  # image id -> (tool, prompt, text)
        self.streaming: dict[str, tuple[str, str, str]] = {}  # image id -> entry being generated
        self.image_id: str | None = None

    def show_image(self, image_id: str | None) -> None:
        self.image_id = image_id
        self._render()

    def add(self, image_id: str, tool: str, text: Text) -> None:
        self.streaming.pop(image_id, None)
        self.entries.setdefault(image_id, []).append((tool, text.prompt, text.text))
        if image_id == self.image_id:
            self._render()

    def stream(self, image_id: str, tool: str, piece: object) -> None:
        """``piece``: a :class:`Text` (the whole text so far) or a str (new tokens to append)."""
        _, prompt, so_far = self.streaming.get(image_id, (tool, "", ""))
        if isinstance(piece, Text):
            prompt, so_far = piece.prompt or prompt, piece.text
        else:
            so_far += str(piece)
        self.streaming[image_id] = (tool, prompt, so_far)
        if image_id == self.image_id:
            self._render()

    def keep_stream(self, image_id: str, note: str) -> None:
        """A generation stopped early (cancelled): what was streamed so far stays, marked."""
        entry = self.streaming.pop(image_id, None)
        if entry is None:
            return
        tool, prompt, text = entry
        self.entries.setdefault(image_id, []).append((tool, prompt, f"{text} {note}".strip()))
        if image_id == self.image_id:
            self._render()

    def drop_stream(self, image_id: str) -> None:
        if self.streaming.pop(image_id, None) is not None and image_id == self.image_id:
            self._render()

    def current_text(self) -> str:
        return self.toPlainText()

    def _render(self) -> None:
        items = list(self.entries.get(self.image_id, [])) if self.image_id else []
        pending = self.streaming.get(self.image_id) if self.image_id else None
        parts = []
        for tool, prompt, text in items + ([pending] if pending else []):
            ask = f"<b>{html.escape(prompt)}</b><br>" if prompt else ""
            cursor = " ▌" if pending is not None and (tool, prompt, text) == pending else ""
            parts.append(
                f"<p><small style='color:gray'>{html.escape(tool)}</small><br>{ask}"
                f"{html.escape(text)}{cursor}</p>"
            )
        self.setHtml("".join(parts) or "<p style='color:gray'>Captions, answers and OCR appear here.</p>")
        self.verticalScrollBar().setValue(self.verticalScrollBar().maximum())


class ResultsPanel(QTabWidget):
    asked = Signal(str)  # a question typed under the text history
    open_image = Signal(str)  # image id of a ranking row double-clicked

    def __init__(
        self,
        thumbnail_for: Callable[[str], QIcon | None],
        parent: QWidget | None = None,
        *,
        name_for: Callable[[str], str | None] | None = None,
    ):
        super().__init__(parent)
        self.thumbnail_for = thumbnail_for
        self.name_for = name_for or (lambda _id: None)
        self.scores = ScoreBars(self)
        self.text = TextHistory(self)
        self.ask_edit = QLineEdit(self)
        self.ask_edit.setPlaceholderText("Ask about this image… (Enter runs the selected tool with it)")
        self.ask_edit.returnPressed.connect(self._on_ask)
        text_page = QWidget(self)
        text_layout = QVBoxLayout(text_page)
        text_layout.setContentsMargins(0, 0, 0, 0)
        text_layout.addWidget(self.text, 1)
        text_layout.addWidget(self.ask_edit)
        self.table = QTableWidget(self)
        self.ranking = QListWidget(self)
        self.ranking.setIconSize(QSize(48, 48))
        self.ranking.setToolTip("Double-click a row to open its image")
        self.ranking.itemDoubleClicked.connect(self._on_ranking_row)
        self.addTab(self.scores, "Scores")
        self.addTab(text_page, "Text")
        self.text_page = text_page
        self.addTab(self.table, "Table")
        self.addTab(self.ranking, "Ranking")
        self._by_image: dict[str, dict[str, object]] = {}  # image id -> kind -> latest result
        self.image_id: str | None = None

    def add_prediction(self, prediction: Prediction) -> bool:
        """Show what ``prediction`` holds for this dock; True when a tab here came forward."""
        switch_to = None
        for r in prediction.results:
            image_id = getattr(r, "image_id", None) or (
                prediction.image_ids[0] if prediction.image_ids else ""
            )
            if isinstance(r, Text):
                self.text.add(image_id, prediction.tool, r)
                switch_to = self.text_page
            elif isinstance(r, Classification | Table):
                self._by_image.setdefault(image_id, {})[r.kind] = r
                self._by_image[image_id][f"{r.kind}-tool"] = prediction.tool
                switch_to = self.scores if isinstance(r, Classification) else self.table
            elif isinstance(r, Ranking):
                self._show_ranking(r)
                switch_to = self.ranking
        self._refresh()
        if switch_to is not None:
            self.setCurrentWidget(switch_to)
        return switch_to is not None

    def show_image(self, image_id: str | None) -> None:
        self.image_id = image_id
        self.text.show_image(image_id)
        self._refresh()

    def _on_ask(self) -> None:
        question = self.ask_edit.text().strip()
        if question:
            self.asked.emit(question)
            self.ask_edit.clear()

    def _refresh(self) -> None:
        latest = self._by_image.get(self.image_id or "", {})
        name = self.name_for(self.image_id) if self.image_id else None
        caption = f"{name or 'this image'} · {latest.get('classification-tool', '')}".rstrip(" ·")
        self.scores.set_result(latest.get("classification"), caption)  # type: ignore[arg-type]
        table = latest.get("table")
        self.table.clear()
        if isinstance(table, Table):
            self.table.setColumnCount(len(table.columns))
            self.table.setRowCount(len(table.rows))
            self.table.setHorizontalHeaderLabels(list(table.columns))
            for i, row in enumerate(table.rows):
                for j, cell in enumerate(row):
                    text = f"{cell:.4g}" if isinstance(cell, float) else str(cell)
                    self.table.setItem(i, j, QTableWidgetItem(text))
        else:
            self.table.setRowCount(0)
            self.table.setColumnCount(0)

    def _on_ranking_row(self, item: QListWidgetItem) -> None:
        image_id = item.data(Qt.ItemDataRole.UserRole)
        if image_id:
            self.open_image.emit(str(image_id))

    def _show_ranking(self, r: Ranking) -> None:
        self.ranking.clear()
        if r.query:
            head = QListWidgetItem(f"query: {r.query}")
            head.setFlags(Qt.ItemFlag.NoItemFlags)
            self.ranking.addItem(head)
        for i, (image_id, name, score) in enumerate(zip(r.image_ids, r.names, r.scores)):
            item = QListWidgetItem(f"{i + 1}. {name}   {float(score):.3f}")
            item.setData(Qt.ItemDataRole.UserRole, image_id)
            icon = self.thumbnail_for(image_id)
            if icon is not None:
                item.setIcon(icon)
            self.ranking.addItem(item)

"""Getting a missing model from inside the window: the offer made when Run needs a model that is not
downloaded (one click: download, then run), its progress (bytes, speed, Cancel, resume), and the access
token prompt for gated models (stored where huggingface_hub reads it, never in a project)."""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from vfmstudio.core.jobs import JobResult
from vfmstudio.qt.model_downloads import ModelDownloads

TOKENS_URL = "https://huggingface.co/settings/tokens"


def needs_download(ref: str | None) -> bool:
    """True for a hub id that is not in the cache while downloads are possible (not offline)."""
    from vfmstudio.ml.errors import ModelError
    from vfmstudio.ml.hub import is_cached, is_offline
    from vfmstudio.ml.refs import parse_model_ref

    if not ref:
        return False
    try:
        parsed = parse_model_ref(ref)
    except ModelError:
        return False
    return parsed.local_dir is None and not is_offline() and not is_cached(parsed)


def offer_download(parent: QWidget, ref: str | None, then: Callable[[], object]) -> bool:
    """If ``ref`` must be downloaded first, open the offer and return True (``then`` runs once the model
    is in the cache); return False when there is nothing to download and the caller can go ahead."""
    if not needs_download(ref):
        return False
    assert ref is not None
    DownloadDialog(parent, ref, then).open()
    return True


def offer_after_failure(window: QWidget, request, message: str) -> bool:
    """RunController.on_model_missing: a run failed because its model is missing or gated (e.g. the
    hub refused it on the inference thread). Offer the download with the reason shown; the same request
    is submitted again once the model is in the cache. False (the error is posted) when nothing can be
    downloaded: offline, a local folder, or a model that is in the cache after all."""
    if not needs_download(request.model):
        return False
    dialog = DownloadDialog(window, request.model, lambda: window.controller.submit(request))
    dialog.detail.setText(message)
    if "gated" in message:
        dialog.token_button.setVisible(True)
    dialog.open()
    return True


def _describe_model(ref: str) -> str:
    from vfmstudio.ml.catalog import get_known

    known = get_known(ref)
    if known is None:
        return f"<b>{ref}</b>"
    gated = (
        " It is <b>gated</b>: accept its licence on the hub and add an access token." if known.gated else ""
    )
    return f"<b>{known.title}</b> ({ref}, {known.size} parameters).{gated}"


class TokenDialog(QDialog):
    """Asks for a Hugging Face access token and stores it (hub_auth.store_token) when Saved."""

    def __init__(self, parent: QWidget | None, ref: str) -> None:
        super().__init__(parent)
        self.setWindowTitle("Hugging Face access token")
        text = QLabel(
            f"<b>{ref}</b> is gated. Accept its licence on "
            f'<a href="https://huggingface.co/{ref}">huggingface.co/{ref}</a>, create a <i>read</i> token on '
            f'<a href="{TOKENS_URL}">{TOKENS_URL}</a> and paste it here. It is stored where huggingface_hub '
            "reads it (your Hugging Face folder), never in a project.",
            self,
        )
        text.setWordWrap(True)
        text.setOpenExternalLinks(True)
        self.edit = QLineEdit(self)
        self.edit.setEchoMode(QLineEdit.EchoMode.Password)
        self.edit.setPlaceholderText("hf_…")
        self.error = QLabel(self)
        self.error.setStyleSheet("color: palette(highlight);")
        self.error.setWordWrap(True)
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Save | QDialogButtonBox.StandardButton.Cancel
        )
        buttons.accepted.connect(self.save)
        buttons.rejected.connect(self.reject)
        self.save_button = buttons.button(QDialogButtonBox.StandardButton.Save)
        layout = QVBoxLayout(self)
        layout.addWidget(text)
        layout.addWidget(self.edit)
        layout.addWidget(self.error)
        layout.addWidget(buttons)
        self.resize(460, self.sizeHint().height())

    def save(self) -> None:
        from vfmstudio.ml.errors import ModelError
        from vfmstudio.ml.hub_auth import store_token

        try:
            store_token(self.edit.text())
        except ModelError as exc:
            self.error.setText(str(exc))
            return
        self.accept()


class DownloadDialog(QDialog):
    """Offers a model download, then shows its progress; ``then`` runs after a successful download.

    Closing the dialog cancels the download; what was fetched is kept and the next attempt resumes it.
    """

    def __init__(self, parent: QWidget, ref: str, then: Callable[[], object] | None = None) -> None:
        from vfmstudio.ml.download import partial_bytes
        from vfmstudio.ml.errors import format_bytes
        from vfmstudio.ml.hub import hub_cache_dir

        super().__init__(parent)
        self.setWindowTitle("Download model")
        self.setWindowModality(Qt.WindowModality.WindowModal)
        self.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        self.ref, self._then = ref, then
        self.downloads = ModelDownloads.of(parent.window())
        kept = partial_bytes(ref) if "/" in ref else 0
        resume = f" {format_bytes(kept)} from an earlier attempt will be reused." if kept else ""
        intro = QLabel(
            f"{_describe_model(ref)}<br>It is not downloaded yet. It goes to the Hugging Face cache "
            f"({hub_cache_dir()}); an interrupted download resumes where it stopped.{resume}",
            self,
        )
        intro.setWordWrap(True)
        self.progress = QProgressBar(self)
        self.progress.setRange(0, 1000)
        self.progress.setVisible(False)
        self.detail = QLabel(self)
        self.detail.setWordWrap(True)
        self.detail.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.download_button = QPushButton("Download and run" if then is not None else "Download", self)
        self.download_button.setDefault(True)
        self.download_button.clicked.connect(self.start)
        self.token_button = QPushButton("Access token…", self)
        self.token_button.clicked.connect(self.ask_token)
        self.token_button.setVisible(_is_gated(ref))
        self.cancel_button = QPushButton("Cancel", self)
        self.cancel_button.clicked.connect(self.reject)
        row = QHBoxLayout()
        row.addWidget(self.token_button)
        row.addStretch(1)
        row.addWidget(self.download_button)
        row.addWidget(self.cancel_button)
        layout = QVBoxLayout(self)
        layout.addWidget(intro)
        layout.addWidget(self.progress)
        layout.addWidget(self.detail)
        layout.addLayout(row)
        self.resize(480, self.sizeHint().height())
        self.downloads.progressed.connect(self._on_progress)
        self.downloads.finished.connect(self._on_finished)
        if self.downloads.is_active(ref):
            self._show_running()

    @property
    def running(self) -> bool:
        return self.downloads.is_active(self.ref)

    def start(self) -> None:
        self.downloads.start(self.ref)
        self._show_running()

    def _show_running(self) -> None:
        self.progress.setVisible(True)
        self.progress.setRange(0, 0)
        self.detail.setText("connecting…")
        self.download_button.setEnabled(False)
        self.cancel_button.setText("Cancel download")

    def ask_token(self) -> TokenDialog:
        dialog = TokenDialog(self, self.ref)
        dialog.accepted.connect(self.start)
        dialog.open()
        return dialog

    def reject(self) -> None:
        if self.running:
            self.downloads.cancel(self.ref)  # the partial files stay for the next attempt
        super().reject()

    def _on_progress(self, ref: str, p) -> None:
        if ref != self.ref:
            return
        if p.fraction is None:
            self.progress.setRange(0, 0)
        else:
            self.progress.setRange(0, 1000)
            self.progress.setValue(int(p.fraction * 1000))
        files = (
            f" · file {min(p.files_done + 1, p.files_total)} of {p.files_total}: {p.file}" if p.file else ""
        )
        self.detail.setText(p.describe() + files)

    def _on_finished(self, ref: str, result: JobResult) -> None:
        if ref != self.ref or not self.isVisible():
            return
        self.progress.setRange(0, 1000)
        self.download_button.setEnabled(True)
        self.cancel_button.setText("Close")
        if result.status == "done":
            self.progress.setValue(1000)
            self.accept()
            if self._then is not None:
                self._then()
            return
        if result.status == "cancelled":
            self.detail.setText("Cancelled. What was fetched is kept: Download resumes it.")
        else:
            message = result.error.message if result.error is not None else result.status
            self.detail.setText(message)
            if result.error is not None and result.error.kind == "GatedModelError":
                self.token_button.setVisible(True)
        self.download_button.setText("Resume download" if result.status == "cancelled" else "Try again")


def _is_gated(ref: str) -> bool:
    from vfmstudio.ml.catalog import get_known

    known = get_known(ref)
    return bool(known is not None and known.gated)

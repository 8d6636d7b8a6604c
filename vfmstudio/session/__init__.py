"""The window's state and rules, without Qt (docs/adr/0120).

:class:`~vfmstudio.session.model.Session` holds what the user has open (folder, images, the image
on view, the selection), the predictions per image and the rerun rules; each rule returns a
:class:`~vfmstudio.session.requests.RunRequest` (or a :class:`~vfmstudio.session.requests.Refusal`
saying what is missing) that the Qt controller submits. Everything here is testable without a
window; import-linter keeps Qt, torch and transformers out.
"""

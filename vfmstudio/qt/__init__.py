"""The studio window: the only package that imports Qt (PySide6) and paints.

- ``app``: ``run_gui`` (what ``vfmstudio gui`` calls): bare window first, the rest on the next turn
- ``main_window``: ``MainWindow``, the docks and the wiring between them
- ``runner``: ``QtJobRunner``, core.jobs callbacks forwarded to the GUI thread as queued signals
- ``canvas``, ``grid_view``, ``pair_view``: one image, a set in a grid, a pair with match lines
- ``layers``, ``layers_panel``, ``painters``, ``overlays``: results drawn as layers (colours from core/render.py)
- ``histogram``: the draggable threshold; ``results_panel``: scores, text, tables, rankings
- ``browser``, ``thumbnails``, ``image_loader``: the image list and off-thread decoding
- ``tools_panel``, ``param_form``: tools from their declarations; ``messages``, ``theme``, ``imaging``
- ``editing``: labelling wired into the window (``Labelling``): ``project_session`` (project, undo
  stack, autosave, recovery), ``edit_tools`` + ``annotation_item`` (canvas tools and drawing),
  ``labels_dock``, ``accept_dialog``, ``export_dialog``, ``import_dialog`` (ADR 0070)
"""

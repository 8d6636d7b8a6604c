"""What an import adds to a project, as one undoable core command (no Qt: the Import dialog reads
the dataset off the GUI thread, the window pushes this command)."""

from __future__ import annotations

from vfmstudio.core import commands as cmd
from vfmstudio.core.project import Project


def merge_command(before: Project, merged: Project) -> tuple[cmd.Command | None, dict, dict]:
    """The edit that turns ``before``'s labels into ``merged``'s, plus the image records that are new
    and the counts. ``merged`` is ``before`` after :meth:`Project.merge`."""
    old, new = before.labels, merged.labels
    commands: list[cmd.Command] = []
    for c in new.classes:
        if old.get_class(c.name) is None:
            commands.append(cmd.AddClass(c.name, c.color))
    added = [a for a in new.annotations() if a.id not in old]
    if added:
        commands.append(cmd.AddAnnotations(added))
    for key in new.images():
        if new.tags.get(key, ()) != old.tags.get(key, ()):
            commands.append(cmd.SetTags(key, new.tags.get(key, ())))
        if new.captions.get(key, "") != old.captions.get(key, ""):
            commands.append(cmd.SetCaption(key, new.captions.get(key, "")))
    images = {k: r for k, r in merged.images.items() if k not in before.images}
    counts = {
        "annotations": len(added),
        "images": len(images),
        "classes": sum(isinstance(c, cmd.AddClass) for c in commands),
    }
    if not commands:
        return None, images, counts
    return cmd.Macro(commands, f"Import {counts['annotations']} annotations"), images, counts

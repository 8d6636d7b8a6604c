"""The one YAML reader: ``yaml.safe_load`` with bounds on aliases and on the expanded size.

``safe_load`` builds no arbitrary objects, but an alias bomb (``b: [*a, *a, ...]`` nested a few
levels deep) is a few hundred bytes whose result, once anything walks it (``str()``, JSON, a
list of class names), is gigabytes. The document's node graph is measured as it would be walked,
aliases expanded, before any Python object is built, and refused above :data:`MAX_NODES`.
"""

from __future__ import annotations

from typing import Any

__all__ = ["MAX_ALIASES", "MAX_NODES", "YAMLRefused", "load_yaml"]

#: Most alias references (``*name``) one document may use.
MAX_ALIASES = 1000
#: Most nodes (scalars, lists, mappings) the document may stand for once its aliases are expanded.
MAX_NODES = 1_000_000


class YAMLRefused(ValueError):
    """The text is not YAML, or YAML this reader will not build; ``str(e)`` is one line."""


def load_yaml(text: str, *, max_aliases: int = MAX_ALIASES, max_nodes: int = MAX_NODES) -> Any:
    """Parse ``text`` like ``yaml.safe_load``; raises :class:`YAMLRefused` (one line) on bad YAML,
    more than ``max_aliases`` aliases or more than ``max_nodes`` nodes once aliases are expanded."""
    import yaml

    class _Loader(yaml.SafeLoader):
        aliases = 0

        def compose_node(self, parent: Any, index: Any) -> Any:
            if self.check_event(yaml.AliasEvent):
                self.aliases += 1
                if self.aliases > max_aliases:
                    raise YAMLRefused(f"more than {max_aliases} YAML aliases; refused")
            return super().compose_node(parent, index)

    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        size = _expanded_size(node, max_nodes)
        if size > max_nodes:
            raise YAMLRefused(
                f"the YAML expands to more than {max_nodes} values through its aliases "
                f"(an alias bomb?); refused"
            )
        return loader.construct_document(node)
    except yaml.YAMLError as exc:
        raise YAMLRefused(" ".join(str(exc).split())) from None
    finally:
        loader.dispose()


def _expanded_size(root: Any, limit: int) -> int:
    """Nodes under ``root`` counted as a walk would meet them (a shared node once per reference),
    computed once per distinct node; stops counting above ``limit``. Cycles count as one node."""
    import yaml

    sizes: dict[int, int] = {}
    stack: list[tuple[Any, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        key = id(node)
        if key in sizes and not children_done:
            continue
        if isinstance(node, yaml.SequenceNode):
            children = list(node.value)
        elif isinstance(node, yaml.MappingNode):
            children = [n for pair in node.value for n in pair]
        else:
            sizes[key] = 1
            continue
        if not children_done:
            sizes[key] = 1  # provisional: a cycle back to this node counts 1
            stack.append((node, True))
            stack.extend((c, False) for c in children if id(c) not in sizes)
            continue
        sizes[key] = min(limit + 1, 1 + sum(sizes[id(c)] for c in children))
    return sizes[id(root)]

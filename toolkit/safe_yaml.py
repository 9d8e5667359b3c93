"""YAML that can't blow up: `safe_load` refuses a document whose aliases go beyond a small budget.

PyYAML's `safe_load` shares an aliased node rather than copying it, so a 751-byte "billion
laughs" document loads in an instant; then whatever walks it (validation, a JSON dump, a hash,
printing) expands it a billion times and the process hangs until memory runs out. Manifests,
specs and configs have no need for more than a few aliases, so a document with more than
`MAX_ALIASES` alias uses, or whose expansion would hold more than `MAX_EXPANDED_NODES` nodes, is
refused with a YAMLError before anything walks it.
"""

from __future__ import annotations

from typing import Any

import yaml

MAX_ALIASES = 64
MAX_EXPANDED_NODES = 200_000


class _BudgetLoader(yaml.SafeLoader):
    def __init__(self, stream: Any) -> None:
        super().__init__(stream)
        self.alias_uses = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            self.alias_uses += 1
            if self.alias_uses > MAX_ALIASES:
                event = self.peek_event()
                raise yaml.YAMLError(
                    f"more than {MAX_ALIASES} aliases (at line {event.start_mark.line + 1}); "
                    "refused as a possible alias bomb"
                )
        return super().compose_node(parent, index)


def _expanded_size(node: yaml.Node, sizes: dict[int, int]) -> int:
    """Nodes in the tree the graph expands to; each distinct node is sized once."""
    known = sizes.get(id(node))
    if known is not None:
        return known
    sizes[id(node)] = 1  # a node reached again while being sized (a recursive alias) counts once
    total = 1
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            total += _expanded_size(key, sizes) + _expanded_size(value, sizes)
            if total > MAX_EXPANDED_NODES:
                break
    elif isinstance(node, yaml.SequenceNode):
        for item in node.value:
            total += _expanded_size(item, sizes)
            if total > MAX_EXPANDED_NODES:
                break
    sizes[id(node)] = total
    return total


def load(text: str) -> Any:
    """Like `yaml.safe_load` (one document), with the alias budget. Raises yaml.YAMLError."""
    loader = _BudgetLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        if loader.alias_uses and _expanded_size(node, {}) > MAX_EXPANDED_NODES:
            raise yaml.YAMLError(
                f"its aliases expand to more than {MAX_EXPANDED_NODES:,} nodes; refused as a possible alias bomb"
            )
        return loader.construct_document(node)
    finally:
        loader.dispose()

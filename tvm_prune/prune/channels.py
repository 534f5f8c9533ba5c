"""Channel pruning of a :class:`Model`: check a plan against the dependency graph, then remove."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence

from ..model import Model, TransformRecord
from ..transform.remove_channels import RemoveChannels
from .depgraph import build_depgraph


def prune_channels(
    model: Model, plan: Mapping[str, Sequence[int]], *, report: Mapping | None = None
) -> Model:
    """``model`` with the output channels in ``plan`` (and everything coupled) removed.

    The plan is checked first (:class:`~tvm_prune.prune.depgraph.ChannelPlanError`, a
    ``TvmPruneError``), so a bad plan fails with a one-line message before any rewrite. The
    weights stay dense in ``Model.params``; the build folds the slicing into smaller constants.
    ``report`` adds entries to the transform's report (how the plan was made).
    """
    graph = build_depgraph(model.mod, model.params)
    graph.removed_roots(plan)
    mod = RemoveChannels(plan, model.params)(model.mod)
    groups = graph.groups()
    report = {
        **(report or {}),
        "removed": {name: len(channels) for name, channels in plan.items() if len(channels)},
        "plan": {name: sorted(int(c) for c in chs) for name, chs in plan.items() if len(chs)},
        "channels": {name: p.channels for name, p in graph.producers.items()},
        "groups": len(groups),
        "pinned": dict(Counter(r for group in groups for r in group.pinned.values())),
    }
    return model.with_transform(mod, TransformRecord("RemoveChannels", report))

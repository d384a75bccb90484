"""Start a new model from a trained one's weights (``train.init_from``).

Layers are matched by name. A layer whose weights all have the same shapes is
copied whole. The output head (``head``, one 1x1 convolution, a column per
class) is matched class by class: a class both models have keeps its trained
column and bias, a class the trained model lacks (a newly appended class) keeps
its fresh initialisation. Everything else (a layer the trained model lacks, or
whose shapes differ) is left as initialised and reported.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from segnet.model import model_class_names

HEAD = "head"


@dataclass
class Transfer:
    """What ``transfer_weights`` did, by layer name."""

    copied: list[str] = field(default_factory=list)
    head_classes: list[str] = field(default_factory=list)   # classes whose head column was copied
    new_classes: list[str] = field(default_factory=list)    # classes left at their initialisation
    skipped: list[str] = field(default_factory=list)        # layers left at their initialisation

    def summary(self) -> str:
        return (f"{len(self.copied)} layers copied; head: {', '.join(self.head_classes) or 'none'} copied, "
                f"{', '.join(self.new_classes) or 'none'} new; "
                f"{len(self.skipped)} layers not copied{': ' + ', '.join(self.skipped) if self.skipped else ''}")


def transfer_weights(source, target) -> Transfer:
    """Copy ``source``'s weights into ``target`` (both built by ``build_segnet``) where they fit."""
    report = Transfer()
    by_name = {layer.name: layer for layer in source.layers}
    source_classes = list(model_class_names(source))
    target_classes = list(model_class_names(target))
    for layer in target.layers:
        weights = layer.get_weights()
        if not weights:
            continue
        other = by_name.get(layer.name)
        if other is None:
            report.skipped.append(layer.name)
            continue
        theirs = other.get_weights()
        if layer.name == HEAD and theirs[0].shape[:-1] == weights[0].shape[:-1]:
            kernel, bias = (np.array(w) for w in weights)
            for k, name in enumerate(target_classes):
                if name in source_classes:
                    j = source_classes.index(name)
                    kernel[..., k], bias[k] = theirs[0][..., j], theirs[1][j]
                    report.head_classes.append(name)
                else:
                    report.new_classes.append(name)
            layer.set_weights([kernel, bias])
        elif len(theirs) == len(weights) and all(a.shape == b.shape for a, b in zip(theirs, weights)):
            layer.set_weights(theirs)
            report.copied.append(layer.name)
        else:
            report.skipped.append(layer.name)
    return report

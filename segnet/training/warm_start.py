"""Start a new model from a trained one's weights (``train.init_from``).

Layers are matched by name. A layer whose weights all have the same shapes is
copied whole. The output head (``head``, one 1x1 convolution, a column per
class) is matched class by class: a class both models have keeps its trained
column and bias, a class the trained model lacks (a newly appended class) keeps
its fresh initialisation. Everything else (a layer the trained model lacks, or
whose shapes differ) is left as initialised and reported.

A narrower target (fewer filters per level, same depth, convolutions per level and
kernel size) starts from the source's strongest channels: each convolution keeps the
output channels with the largest L1 norm of their (batch-normalisation-scaled)
filters, and its input channels follow what the layer before it kept. The channels
a pooling switch carries are chosen once per level, from the encoder's last
convolution, and the decoder convolution that feeds that level's unpooling keeps the
same ones, since unpooling pairs decoder channel c with encoder channel c's switches.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from segnet.network.model import model_class_names

HEAD = "head"


@dataclass
class Transfer:
    """What ``transfer_weights`` did, by layer name."""

    copied: list[str] = field(default_factory=list)
    head_classes: list[str] = field(default_factory=list)  # classes whose head column was copied
    new_classes: list[str] = field(default_factory=list)  # classes left at their initialisation
    skipped: list[str] = field(default_factory=list)  # layers left at their initialisation
    pruned: list[str] = field(default_factory=list)  # layers copied from the source's strongest channels

    def summary(self) -> str:
        pruned = f"{len(self.pruned)} layers from the strongest channels; " if self.pruned else ""
        return (
            f"{len(self.copied)} layers copied; {pruned}head: {', '.join(self.head_classes) or 'none'} copied, "
            f"{', '.join(self.new_classes) or 'none'} new; "
            f"{len(self.skipped)} layers not copied{': ' + ', '.join(self.skipped) if self.skipped else ''}"
        )


def _levels(model) -> tuple[int, int]:
    names = {layer.name for layer in model.layers}
    depth = sum(1 for n in names if n.startswith("enc") and n.endswith("_pool"))
    return depth, sum(1 for n in names if n.startswith("enc1_conv"))


def _filter_strength(model, conv_name: str) -> np.ndarray:
    """L1 norm of each output filter of a convolution, times its batch normalisation's scale if any."""
    kernel = model.get_layer(conv_name).get_weights()[0]
    strength = np.abs(kernel).sum(axis=(0, 1, 2))
    bn_name = conv_name.replace("_conv", "_bn")
    if bn_name in {layer.name for layer in model.layers}:
        gamma, _, _, var = model.get_layer(bn_name).get_weights()
        strength = strength * np.abs(gamma) / np.sqrt(var + model.get_layer(bn_name).epsilon)
    return strength


def channel_selection(source, target) -> dict[str, tuple[np.ndarray | None, np.ndarray | None]]:
    """Conv/BN layer name -> (input channels, output channels) of ``source`` that ``target`` keeps.

    Empty if the two have the same widths or differ in anything but the filters per level.
    """
    depth, convs = _levels(source)
    if _levels(target) != (depth, convs):
        return {}
    widths = [source.get_layer(f"enc{k}_conv1").filters for k in range(1, depth + 1)]
    wanted = [target.get_layer(f"enc{k}_conv1").filters for k in range(1, depth + 1)]
    if widths == wanted or any(w > s for w, s in zip(wanted, widths)):
        return {}

    def strongest(name: str, n: int) -> np.ndarray:
        return np.sort(np.argsort(-_filter_strength(source, name), kind="stable")[:n])

    level = {k: strongest(f"enc{k}_conv{convs}", wanted[k - 1]) for k in range(1, depth + 1)}
    out: dict[str, np.ndarray] = {}
    for k in range(1, depth + 1):
        for j in range(1, convs + 1):
            name = f"enc{k}_conv{j}"
            out[name] = level[k] if j == convs else strongest(name, wanted[k - 1])
            name = f"dec{k}_conv{j}"
            if j < convs:
                out[name] = strongest(name, wanted[k - 1])
            else:  # feeds the unpooling of level k - 1 (or, at level 1, the head)
                out[name] = level[k - 1] if k > 1 else strongest(name, wanted[0])
    selection = {}
    for k in range(1, depth + 1):
        for j in range(1, convs + 1):
            enc_in = (None if k == 1 else level[k - 1]) if j == 1 else out[f"enc{k}_conv{j - 1}"]
            dec_in = level[k] if j == 1 else out[f"dec{k}_conv{j - 1}"]
            for prefix, inputs in (("enc", enc_in), ("dec", dec_in)):
                conv = f"{prefix}{k}_conv{j}"
                selection[conv] = (inputs, out[conv])
                selection[f"{prefix}{k}_bn{j}"] = (None, out[conv])
    selection[HEAD] = (out[f"dec1_conv{convs}"], None)
    return selection


def _select(weights, inputs, outputs):
    """A layer's weights cut to the kept channels: conv kernel (kh, kw, in, out), vectors (out,)."""
    cut = []
    for w in weights:
        w = np.asarray(w)
        if w.ndim == 4:
            w = w if inputs is None else w[:, :, inputs, :]
            w = w if outputs is None else w[..., outputs]
        elif outputs is not None:
            w = w[outputs]
        cut.append(w)
    return cut


def transfer_weights(source, target) -> Transfer:
    """Copy ``source``'s weights into ``target`` (both built by ``build_segnet``) where they fit."""
    report = Transfer()
    selection = channel_selection(source, target)
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
        pruned = layer.name in selection
        if pruned:
            theirs = _select(theirs, *selection[layer.name])
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
            (report.pruned if pruned else report.copied).append(layer.name)
        else:
            report.skipped.append(layer.name)
    return report

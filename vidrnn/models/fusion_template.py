"""Where to fuse space and time, learned: the template network of Zhou, Sun, Zha, Zeng,
"Spatiotemporal Fusion in 3D CNNs: A Probabilistic View", CVPR 2020.

A network is a list of triplets ``(l, v, u)``: layer ``l``, a binary vector ``v`` saying which
earlier layers of its stage feed it (dense connections; index 0 is the stage's input), and a set
of fusion units ``u`` whose outputs are summed, written like ``"S+ST"``. Units (each a
convolution, BatchNorm and ReLU at constant width):

* ``S``  -- 1x3x3, spatial only;
* ``T``  -- 3x1x1, temporal only;
* ``ST`` -- 1x3x3 then 3x1x1 (spatial followed by temporal, the (2+1)D factorisation);
* ``3D`` -- 3x3x3.

Every such network is a sub-network of one **template** in which every layer has every unit of
the unit set and every dense input, each behind a
:class:`~vidrnn.layers.conv3d.VariationalDropPath` whose drop rate ``p`` is learned with the
weights (the variational posterior over strategies). :attr:`FusionTemplate.aux_losses` adds
their eq. 5 regulariser; after training, a path's marginal probability of being used is ``1 -
sqrt(p)`` (eq. 7). A strategy is sampled by keeping each path with that probability, evaluated
with the template's weights, and the best fine-tuned (``vidrnn fusion-search``).

``FusionTemplate(strategy=...)`` builds the fixed network of a strategy instead (only its units
and inputs, no DropPath): a preset name (``"all-S"``, ``"all-ST"``, ``"all-S+ST"``, ``"all-3D"``,
``"all-T"``: every layer those units, fed by the layer before it) or a list of triplets. Its
module names are the template's, so template weights load into it (``weights=PATH``).

Layout: a 2D stem (1x5x5, stride ``(1, 2, 2)``), stages of layers at constant width and
resolution, a transition between stages (1x1x1 to the next width, spatial stride 2), global
average pooling, dropout and the classifier. Deviation: the paper's templates are built on
ResNet/Inception-sized backbones; this one is small (widths and layers in the config) and has
no residual connections besides the dense ones.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn

from vidrnn.layers.conv3d import VariationalDropPath
from vidrnn.models.base import ClassifierOutput
from vidrnn.models.cnn3d import Clip3DClassifier, load_weights
from vidrnn.registry import register_model

__all__ = ["FusionTemplate", "UNITS", "PRESETS", "fusion_unit", "preset_triplets", "unit_name"]

UNITS = ("S", "T", "ST", "3D")
PRESETS = ("all-S", "all-T", "all-ST", "all-S+ST", "all-3D")


def _conv_bn_relu(c: int, kernel, padding) -> list[nn.Module]:
    return [nn.Conv3d(c, c, kernel, padding=padding, bias=False), nn.BatchNorm3d(c), nn.ReLU(inplace=True)]


def fusion_unit(kind: str, channels: int) -> nn.Sequential:
    """One fusion unit (``"S"``, ``"T"``, ``"ST"`` or ``"3D"``) at ``channels`` in and out.

    Raises:
        ValueError: unknown kind.
    """
    s, t = ((1, 3, 3), (0, 1, 1)), ((3, 1, 1), (1, 0, 0))
    parts = {"S": [s], "T": [t], "ST": [s, t], "3D": [((3, 3, 3), (1, 1, 1))]}
    if kind not in parts:
        raise ValueError(f"unit {kind!r}: expected one of {list(UNITS)}")
    return nn.Sequential(*[m for k, p in parts[kind] for m in _conv_bn_relu(channels, k, p)])


def unit_name(units) -> str:
    """``{"S", "ST"}`` -> ``"S+ST"`` (in the order of :data:`UNITS`; ``""`` for none)."""
    return "+".join(u for u in UNITS if u in set(units))


def _parse_units(name: str, allowed) -> list[str]:
    units = [u for u in str(name).split("+") if u]
    bad = [u for u in units if u not in allowed]
    if bad or not units:
        raise ValueError(f"units {name!r}: expected a '+'-joined subset of {list(allowed)}")
    return units


def preset_triplets(name: str, layers_per_stage) -> list[dict]:
    """The triplets of a preset strategy: every layer the preset's units, fed by the previous
    layer only (a plain chain).

    Raises:
        ValueError: unknown preset.
    """
    if name not in PRESETS:
        raise ValueError(f"strategy {name!r}: expected a list of triplets or one of {list(PRESETS)}")
    units = name.removeprefix("all-")
    out, l = [], 0
    for n in layers_per_stage:
        for i in range(n):
            out.append({"layer": l, "inputs": [int(j == i) for j in range(i + 1)], "units": units})
            l += 1
    return out


class _FusionLayer(nn.Module):
    def __init__(self, channels: int, num_inputs: int, units, search: bool, p: float, temperature: float,
                 keep_inputs=None):
        super().__init__()
        self.num_inputs = num_inputs
        self.input_ids = list(range(num_inputs)) if keep_inputs is None else [j for j, k in enumerate(keep_inputs) if k]
        self.units = nn.ModuleDict({u: fusion_unit(u, channels) for u in units})
        self.search = search
        if search:
            self.input_paths = nn.ModuleList(VariationalDropPath(p, temperature=temperature) for _ in range(num_inputs))
            self.unit_paths = nn.ModuleDict({u: VariationalDropPath(p, temperature=temperature) for u in units})

    def forward(self, outputs: list[torch.Tensor]) -> torch.Tensor:
        if self.search:
            x = sum(self.input_paths[j](outputs[j]) for j in range(self.num_inputs))
            return sum(self.unit_paths[u](m(x)) for u, m in self.units.items())
        x = sum(outputs[j] for j in self.input_ids)
        return sum(m(x) for m in self.units.values())


class FusionTemplate(Clip3DClassifier):
    """The template network, or one strategy's network (see the module docstring).

    Args:
        num_classes: K.
        stages: ``[[channels, layers], ...]`` per stage.
        units: the unit set of the template (a subset of :data:`UNITS`).
        strategy: None (the template, for search), a preset name or a list of triplets
            (``{"layer": l, "inputs": [0/1 ...], "units": "S+ST"}``, one per layer).
        drop_rate: initial drop rate of every path (search).
        temperature: of the concrete relaxation (search).
        length_scale: ``k`` of the weight term; dataset_size: ``N`` (training clips).
        warmup_epochs: epochs trained without DropPath before the rates are learned (search).
        rate_lr_scale: the drop rates' learning rate as a multiple of the weights' (search; the
            rates are a few dozen scalars that must move within the few epochs of a run).
        prior_weight: multiplies the regulariser (1: eq. 5 as written). With ``N`` in the
            thousands its ``p log p`` term barely moves the rates within a short run, so the
            rates of units the data does not need stay where they started; a larger weight lets
            them rise towards ``1/e`` while the likelihood keeps the needed ones low.
        dropout: before the classifier.

    Shape: ``(B, T, 3, H, W)`` -> logits ``(B, K)``.

    Raises:
        ValueError: an unknown unit, preset, or triplets that do not match the layers.
    """

    def __init__(self, num_classes: int, *, stages=((16, 3), (32, 3)), units=("S", "ST"),
                 strategy: str | list | None = None, drop_rate: float = 0.1, temperature: float = 0.1,
                 length_scale: float = 1e-2, dataset_size: int = 2000, warmup_epochs: int = 1,
                 rate_lr_scale: float = 10.0, prior_weight: float = 1.0, dropout: float = 0.2):
        super().__init__(num_classes)
        stages = [tuple(int(v) for v in st) for st in stages]
        if not stages or any(len(st) != 2 or min(st) < 1 for st in stages):
            raise ValueError(f"stages={stages}: expected [[channels, layers], ...] with positive values")
        units = list(units)
        for u in units:
            if u not in UNITS:
                raise ValueError(f"unit {u!r}: expected one of {list(UNITS)}")
        self.unit_set, self.layers_per_stage = units, [n for _, n in stages]
        self.search = strategy is None
        self.length_scale, self.dataset_size, self.warmup_epochs = float(length_scale), int(dataset_size), warmup_epochs
        self.rate_lr_scale, self.prior_weight = float(rate_lr_scale), float(prior_weight)
        triplets = None if self.search else self._check_triplets(
            preset_triplets(strategy, self.layers_per_stage) if isinstance(strategy, str) else list(strategy))
        self.strategy = triplets
        c0 = stages[0][0]
        self.stem = nn.Sequential(nn.Conv3d(3, c0, (1, 5, 5), stride=(1, 2, 2), padding=(0, 2, 2), bias=False),
                                  nn.BatchNorm3d(c0), nn.ReLU(inplace=True))
        self.stages, self.transitions = nn.ModuleList(), nn.ModuleList()
        l, cin = 0, c0
        for s, (c, n) in enumerate(stages):
            self.transitions.append(nn.Identity() if s == 0 else nn.Sequential(
                nn.Conv3d(cin, c, 1, stride=(1, 2, 2), bias=False), nn.BatchNorm3d(c), nn.ReLU(inplace=True)))
            layers = nn.ModuleList()
            for i in range(n):
                if triplets is None:
                    layers.append(_FusionLayer(c, i + 1, units, True, drop_rate, temperature))
                else:
                    t = triplets[l]
                    layers.append(_FusionLayer(c, i + 1, _parse_units(t["units"], UNITS), False, drop_rate,
                                               temperature, keep_inputs=t["inputs"]))
                l += 1
            self.stages.append(layers)
            cin = c
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(cin, num_classes)
        self.set_epoch(0)

    def _check_triplets(self, triplets: list) -> list[dict]:
        want = sum(self.layers_per_stage)
        if len(triplets) != want:
            raise ValueError(f"strategy: {len(triplets)} triplets for {want} layers")
        l = 0
        for n in self.layers_per_stage:
            for i in range(n):
                t = triplets[l]
                if not isinstance(t, dict) or t.get("layer") != l or len(t.get("inputs", ())) != i + 1 \
                        or not any(t["inputs"]):
                    raise ValueError(f"strategy: triplet {l} must be {{layer: {l}, inputs: {i + 1} values of 0/1 "
                                     f"with at least one 1, units: 'S+ST'-like}}, got {t!r}")
                _parse_units(t["units"], UNITS)
                l += 1
        return [dict(t, inputs=[int(bool(v)) for v in t["inputs"]]) for t in triplets]

    # -- the variational posterior --------------------------------------------------------
    def paths(self):
        """``(layer, kind, name, VariationalDropPath, unit module or None)`` for every path of
        the template (kind ``"unit"`` or ``"input"``)."""
        l = 0
        for layers in self.stages:
            for layer in layers:
                if layer.search:
                    for u, vdp in layer.unit_paths.items():
                        yield l, "unit", u, vdp, layer.units[u]
                    for j, vdp in enumerate(layer.input_paths):
                        yield l, "input", j, vdp, None
                l += 1

    def set_epoch(self, epoch: int) -> None:
        """DropPath off during the first ``warmup_epochs`` epochs, on after (the task calls it)."""
        for _, _, _, vdp, _ in self.paths():
            vdp.enabled = epoch >= self.warmup_epochs

    def marginals(self) -> list[dict]:
        """Per layer: the marginal probability ``1 - sqrt(p)`` of each unit and dense input."""
        out = [{"layer": l, "units": {}, "inputs": {}} for l in range(sum(self.layers_per_stage))]
        for l, kind, name, vdp, _ in self.paths():
            out[l]["units" if kind == "unit" else "inputs"][name] = vdp.marginal()
        return out

    def sample_strategy(self, rng: np.random.Generator) -> list[dict]:
        """Triplets drawn from the learned marginals (each path kept with ``1 - sqrt(p)``; a
        layer that draws no unit or no input keeps its most probable one)."""
        out = []
        for m in self.marginals():
            units = [u for u, q in m["units"].items() if rng.random() < q] or [max(m["units"], key=m["units"].get)]
            ins = {j: int(rng.random() < q) for j, q in m["inputs"].items()}
            if not any(ins.values()):
                ins[max(m["inputs"], key=m["inputs"].get)] = 1
            out.append({"layer": m["layer"], "inputs": [ins[j] for j in sorted(ins)], "units": unit_name(units)})
        return out

    def to_triplets(self) -> list[dict]:
        """The network as triplets: a strategy network's own; the template's evaluation masks."""
        if not self.search:
            return [dict(t) for t in self.strategy]
        out = [{"layer": l, "inputs": [], "units": []} for l in range(sum(self.layers_per_stage))]
        for l, kind, name, vdp, _ in self.paths():
            if kind == "unit":
                if vdp.keep.item():
                    out[l]["units"].append(name)
            else:
                out[l]["inputs"].append(int(vdp.keep.item()))
        return [dict(t, units=unit_name(t["units"])) for t in out]

    def from_triplets(self, triplets: list) -> None:
        """Set the template's evaluation masks to a strategy (units and inputs not in it: off)."""
        triplets = self._check_triplets(list(triplets))
        for l, kind, name, vdp, _ in self.paths():
            t = triplets[l]
            vdp.set_keep(name in _parse_units(t["units"], UNITS) if kind == "unit" else bool(t["inputs"][name]))

    def param_groups(self) -> list[dict]:
        """Optimiser groups: the weights, and the drop rates (``lr_scale = rate_lr_scale``, no
        weight decay: the regulariser is their prior)."""
        rates = [vdp.p_logit for _, _, _, vdp, _ in self.paths()]
        ids = {id(p) for p in rates}
        groups = [{"params": [p for p in self.parameters() if id(p) not in ids]}]
        if rates:
            groups.append({"params": rates, "lr_scale": self.rate_lr_scale, "weight_decay": 0.0})
        return groups

    def regulariser(self) -> torch.Tensor:
        """Zhou et al.'s eq. 5 terms over all paths, divided by N (the task's loss is a mean),
        times ``prior_weight``."""
        total = self.fc.weight.new_zeros(())
        for _, _, _, vdp, unit in self.paths():
            w2 = sum(p.square().sum() for p in unit.parameters()) if unit is not None else 0.0
            total = total + vdp.regulariser(w2, self.dataset_size, self.length_scale)
        return self.prior_weight * total / self.dataset_size

    # -- forward --------------------------------------------------------------------------
    def forward_3d(self, x):
        x = self.stem(x)
        for transition, layers in zip(self.transitions, self.stages):
            outputs = [transition(x)]
            for layer in layers:
                outputs.append(layer(outputs))
            x = outputs[-1]
        return self.fc(self.dropout(x.mean(dim=(2, 3, 4))))

    def forward(self, video: torch.Tensor) -> ClassifierOutput:
        out = super().forward(video)
        if self.search and self.training and any(vdp.enabled for _, _, _, vdp, _ in self.paths()):
            out.aux_losses["droppath"] = self.regulariser()
        return out


@register_model
def fusion_template(num_classes: int = 4, *, stages: list[list[int]] = ((32, 3), (64, 3)),
                    units: list[str] = ("S", "ST"), strategy: str | list | None = None,
                    drop_rate: float = 0.1, temperature: float = 0.1, length_scale: float = 1e-2,
                    dataset_size: int = 2000, warmup_epochs: int = 1, rate_lr_scale: float = 10.0,
                    prior_weight: float = 1.0, dropout: float = 0.2, weights: str | None = None) -> FusionTemplate:
    """Template network with variational DropPath over fusion units and dense inputs (Zhou et al. 2020)"""
    m = FusionTemplate(num_classes, stages=stages, units=units, strategy=strategy, drop_rate=drop_rate,
                       temperature=temperature, length_scale=length_scale, dataset_size=dataset_size,
                       warmup_epochs=warmup_epochs, rate_lr_scale=rate_lr_scale,
                       prior_weight=prior_weight, dropout=dropout)
    return load_weights(m, weights, subset=True)


@register_model
def fusion_template_tiny(num_classes: int = 4, *, stages: list[list[int]] = ((8, 2), (16, 2)),
                         units: list[str] = ("S", "ST"), strategy: str | list | None = None,
                         drop_rate: float = 0.1, temperature: float = 0.1, length_scale: float = 1e-2,
                         dataset_size: int = 2000, warmup_epochs: int = 0, rate_lr_scale: float = 10.0,
                         prior_weight: float = 1.0, dropout: float = 0.0,
                         weights: str | None = None) -> FusionTemplate:
    """Template network with 2 + 2 layers of 8 and 16 channels, for tests"""
    m = FusionTemplate(num_classes, stages=stages, units=units, strategy=strategy, drop_rate=drop_rate,
                       temperature=temperature, length_scale=length_scale, dataset_size=dataset_size,
                       warmup_epochs=warmup_epochs, rate_lr_scale=rate_lr_scale,
                       prior_weight=prior_weight, dropout=dropout)
    return load_weights(m, weights, subset=True)

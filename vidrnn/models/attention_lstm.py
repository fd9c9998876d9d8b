"""Attention LSTMs and convolutional-recurrent classifiers for video classification.

* :class:`SoftAttentionLSTM` -- Sharma, Kiros, Salakhutdinov, "Action Recognition using Visual
  Attention", ICLR 2016 workshop, arXiv:1511.04119. The frame encoder's last conv map gives
  ``K x K`` region features ``X_{t,i}``; a location softmax from the previous hidden state,
  ``l_{t,i} = exp(W_i^T h_{t-1}) / Σ_j exp(W_j^T h_{t-1})``, weights them,
  ``x_t = Σ_i l_{t,i} X_{t,i}``; an LSTM reads ``x_t``; ``h_0, c_0`` come from MLPs (tanh) of the
  features averaged over time and regions; a softmax at every step, averaged over time; the
  loss adds the doubly stochastic penalty ``λ Σ_i (1 − Σ_t l_{t,i})²`` (Xu et al. 2015).
  ``attention="hard"`` samples one location per step (Xu et al.'s stochastic "hard"
  attention), trained with REINFORCE: reward ``log p(y)``, a moving-average baseline
  ``b ← 0.9 b + 0.1 mean(r)`` (started at the first batch's mean reward), an entropy bonus, and with probability ``soft_prob`` (0.5 in
  the paper) the expectation (soft attention) instead of a sample. At evaluation: the
  expectation. Deviation: the penalty is averaged over the batch, and the paper's λ is 1
  per video of 30 frames; we keep ``Σ_t`` over the clip's own T frames. Option (not in Sharma
  et al.): ``score="content"`` scores each region from its features and the hidden state (Xu
  et al.'s ``f_att``), with ``motion_keys=True`` also from its change since the last frame.
* :class:`TemporalAttentionLSTM` -- in the manner of MultiLSTM (Yeung, Russakovsky, Jin,
  Andriluka, Mori, Fei-Fei, "Every Moment Counts: Dense Detailed Labeling of Actions in
  Complex Videos", IJCV 2017, arXiv:1507.05738): at each step the previous hidden state
  queries a window of the N most recent frame features (additive attention); the LSTM reads
  the attended context (deviation: together with the current frame's features); a
  prediction at every frame, or with ``output_window=M`` the paper's multiple outputs (step t
  predicts frames t−M+1..t, each frame's logits averaged over the steps that predicted it). ``multilabel=True`` makes per-frame
  outputs independent sigmoids (:meth:`forward_frames` gives their logits; the video-level
  output is the logit of their mean), trained against per-frame multi-hot labels
  (``data.source: multilabel_digits``, the task's ``frame_mAP``).
* :class:`ConvRNNClassifier` -- ConvLSTM (Shi et al. 2015) or ConvGRU (Ballas et al. 2016,
  "Delving Deeper into Convolutional Networks for Learning Video Representations", ICLR 2016,
  arXiv:1511.06432, GRU-RCN) over the encoder's conv maps; each step's hidden state is
  average-pooled and classified, predictions averaged over time. ``levels`` gives several
  encoder levels, each with its own recurrent stack and classifier, their predictions averaged
  (GRU-RCN on VGG-16 pool2..pool5; here any blocks of the frame encoder). Deviation: the
  levels' predictions are averaged at every step, then over time. ``stacked=True`` is the
  stacked GRU-RCN: the unit at level l also reads level l−1's hidden state of the same step,
  max-pooled to level l's resolution; only the top level classifies (our choice: it has seen
  every level below).

Models with attention accept ``return_attention=True`` in :meth:`forward` /
:meth:`forward_frames` and then also return the weights: spatial ``(B, T, N)`` or temporal
``(B, T, W)`` (W = window); the last forward's weights are also kept in ``last_attention``.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from vidrnn.layers.attention import AdditiveAttention
from vidrnn.layers.cells import ConvGRU, ConvLSTM
from vidrnn.layers.encoders import FrameEncoder
from vidrnn.models.base import FrameOutputClassifier, build_encoder
from vidrnn.registry import register_model

__all__ = ["SoftAttentionLSTM", "TemporalAttentionLSTM", "ConvRNNClassifier", "attention_penalty",
           "reinforce_surrogate"]


def attention_penalty(weights: torch.Tensor) -> torch.Tensor:
    """Doubly stochastic regulariser ``Σ_i (1 − Σ_t l_{t,i})²`` per sample (Xu et al. 2015, eq. 14).

    Shape:
        weights ``(B, T, N)`` -> ``(B,)``.
    """
    return (1.0 - weights.sum(dim=1)).square().sum(dim=-1)


def reinforce_surrogate(log_prob: torch.Tensor, reward: torch.Tensor, baseline: torch.Tensor | float = 0.0,
                        entropy: torch.Tensor | None = None, entropy_weight: float = 0.0) -> torch.Tensor:
    """Loss whose gradient is the REINFORCE estimate of ``−∇ E[reward]`` (Williams 1992), per sample.

    ``−(r − b) · log π(s)`` with ``r`` and ``b`` treated as constants, minus an entropy bonus.

    Shape:
        log_prob ``(B, ...)`` summed over the trailing axes; reward ``(B,)`` -> ``(B,)``.
    """
    lp = log_prob.flatten(1).sum(1) if log_prob.dim() > 1 else log_prob
    loss = -(reward - baseline).detach() * lp
    if entropy is not None and entropy_weight:
        ent = entropy.flatten(1).sum(1) if entropy.dim() > 1 else entropy
        loss = loss - entropy_weight * ent
    return loss


class SoftAttentionLSTM(FrameOutputClassifier):
    """Spatial soft (or hard) attention LSTM (Sharma et al. 2015).

    Args:
        encoder: frame encoder; its last conv map must be ``map_size x map_size``.
        num_classes: K.
        map_size: K x K regions (the location softmax has ``map_size²`` outputs).
        hidden_size: LSTM units (paper: 1024).
        dropout: on the LSTM output before the classifier.
        attention: ``"soft"`` or ``"hard"``.
        penalty: λ of the attention penalty (paper: 1).
        soft_prob: hard attention: probability of using the expectation in training (0.5).
        entropy_weight: hard attention: weight of the entropy bonus.
        baseline_decay: hard attention: moving-average decay of the reward baseline (0.9).
        score: ``"location"`` -- Sharma et al.'s location softmax ``W_i^T h_{t-1}``, blind to the
            regions' content; ``"content"`` -- Xu et al.'s ``v^T tanh(W h_{t-1} + U X_{t,i})``.
        motion_keys: content scores also see ``X_{t,i} − X_{t−1,i}`` (what changed at each
            region; a deviation for tasks where motion says where to look).
        attention_size: hidden size of the content scorer.
        reinforce_scope: hard attention: ``"all"`` (Xu et al.) -- the REINFORCE term reaches
            the attention scorer, the LSTM and the encoder (through the query and the keys);
            ``"attention"`` -- it trains the attention scorer only (query state and keys
            detached, as the location network of Mnih et al. 2014's RAM). On the distractor
            task both learn (20 epochs, one seed each: test top-1 0.64 all, 0.71 attention;
            the configs use ``attention``).

    Shape:
        video ``(B, T, 3, H, W)`` -> logits ``(B, K)``; ``forward_frames`` -> ``(B, T, K)``;
        attention ``(B, T, map_size²)``, row-major over the map.

    Raises:
        ValueError: a map of another size than ``map_size``, unknown ``attention``.
    """

    input_kind = "map"

    def __init__(self, encoder: FrameEncoder, num_classes: int, *, map_size: int = 7, hidden_size: int = 512,
                 dropout: float = 0.5, attention: str = "soft", penalty: float = 1.0, soft_prob: float = 0.5,
                 entropy_weight: float = 0.01, baseline_decay: float = 0.9, score: str = "location",
                 motion_keys: bool = False, attention_size: int = 128, reinforce_scope: str = "all"):
        super().__init__(encoder, num_classes, "mean")
        if attention not in ("soft", "hard"):
            raise ValueError(f"attention={attention!r}: expected 'soft' or 'hard'")
        if score not in ("location", "content"):
            raise ValueError(f"score={score!r}: expected 'location' (Sharma et al.) or 'content' (Xu et al.)")
        if reinforce_scope not in ("attention", "all"):
            raise ValueError(f"reinforce_scope={reinforce_scope!r}: expected 'attention' or 'all'")
        self.reinforce_scope = reinforce_scope
        D, N = encoder.map_channels, map_size * map_size
        self.map_size, self.attention, self.penalty = map_size, attention, penalty
        self.score, self.motion_keys = score, motion_keys
        if score == "content":  # Xu et al.'s f_att: v^T tanh(W h + U a_i), keys optionally with X_t - X_{t-1}
            self.att = AdditiveAttention(hidden_size, 2 * D if motion_keys else D, attention_size)
        self.soft_prob, self.entropy_weight, self.baseline_decay = soft_prob, entropy_weight, baseline_decay
        self.cell = nn.LSTMCell(D, hidden_size)
        self.loc = nn.Linear(hidden_size, N) if score == "location" else None  # W_i^T h_{t-1}: location logits
        self.init_h = nn.Linear(D, hidden_size)
        self.init_c = nn.Linear(D, hidden_size)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(hidden_size, num_classes)
        self.register_buffer("reward_baseline", torch.zeros(()))
        self.register_buffer("baseline_initialised", torch.zeros((), dtype=torch.bool), persistent=False)
        self.last_attention: torch.Tensor | None = None
        self._log_probs = self._entropy = None

    def forward_features(self, maps: torch.Tensor) -> torch.Tensor:
        """Conv maps ``(B, T, D, h, w)`` -> LSTM outputs ``(B, T, H)``; sets ``last_attention``."""
        B, T, D, h, w = maps.shape
        if (h, w) != (self.map_size, self.map_size):
            raise ValueError(f"{type(self).__name__} was built for {self.map_size}x{self.map_size} feature maps, got "
                             f"{h}x{w}: set map_size={h} or change the input size")
        X = maps.flatten(3).transpose(2, 3)  # (B, T, N, D) region features
        mean = X.mean(dim=(1, 2))  # (B, D)
        state = (torch.tanh(self.init_h(mean)), torch.tanh(self.init_c(mean)))
        hard = self.attention == "hard" and self.training
        if self.score == "content":
            keys = X
            if self.motion_keys:  # what changed since the previous frame (zero at t = 0)
                keys = torch.cat([X, X - torch.cat([X[:, :1], X[:, :-1]], dim=1)], dim=-1)  # (B, T, N, 2D)
            uk = self.att.project_keys(keys)  # (B, T, N, A): all steps at once
            if hard and self.reinforce_scope == "attention":  # the policy's own keys, cut from the encoder
                uk_policy = self.att.project_keys(keys.detach())
        outs, weights, log_probs, entropies = [], [], [], []
        for t in range(T):
            logits = self._scores(state[0], uk[:, t] if self.score == "content" else None)  # (B, N)
            l_t = logits.softmax(-1)
            if hard:
                if self.reinforce_scope == "attention":  # REINFORCE reaches the attention scorer only
                    logits = self._scores(state[0].detach(), uk_policy[:, t] if self.score == "content" else None)
                dist = torch.distributions.Categorical(logits=logits)
                s = dist.sample()  # (B,)
                use_soft = torch.rand(B, device=maps.device) < self.soft_prob
                x_hard = X[torch.arange(B, device=maps.device), t, s]  # (B, D)
                x_soft = torch.einsum("bn,bnd->bd", l_t, X[:, t])
                x_t = torch.where(use_soft[:, None], x_soft, x_hard)
                log_probs.append(torch.where(use_soft, torch.zeros_like(s, dtype=l_t.dtype), dist.log_prob(s)))
                entropies.append(dist.entropy())
            else:
                x_t = torch.einsum("bn,bnd->bd", l_t, X[:, t])  # expectation over locations
            state = self.cell(x_t, state)
            outs.append(state[0])
            weights.append(l_t)
        self.last_attention = torch.stack(weights, dim=1)  # (B, T, N)
        self._log_probs = torch.stack(log_probs, 1) if hard else None  # (B, T)
        self._entropy = torch.stack(entropies, 1) if hard else None
        return torch.stack(outs, dim=1)  # (B, T, H)

    def _scores(self, h: torch.Tensor, keys_t: torch.Tensor | None) -> torch.Tensor:
        """Location logits ``(B, N)`` from the query ``h (B, H)`` (and projected keys ``(B, N, A)``)."""
        if self.score == "location":
            return self.loc(h)
        return self.att.v(torch.tanh(self.att.W(h)[:, None] + keys_t)).squeeze(-1)

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.dropout(x))

    def forward_frames(self, video: torch.Tensor, return_attention: bool = False):
        out = super().forward_frames(video)
        return (out, self.last_attention) if return_attention else out

    def forward(self, video: torch.Tensor, return_attention: bool = False):
        out = self.aggregate(super().forward_frames(video))
        return (out, self.last_attention) if return_attention else out

    def auxiliary_loss(self, nll: torch.Tensor) -> tuple[torch.Tensor, dict]:
        """Extra training loss after a forward pass: λ·penalty, plus REINFORCE for hard attention.

        Args:
            nll: per-sample negative log-likelihood of the true class ``(B,)`` (the reward is
                ``−nll``).

        Returns:
            ``(loss scalar, {"attention_penalty": ..., "reward_baseline": ...})`` for logging.
        """
        logs = {}
        loss = nll.new_zeros(())
        if self.last_attention is not None and self.penalty:
            pen = attention_penalty(self.last_attention).mean()
            loss = loss + self.penalty * pen
            logs["attention_penalty"] = pen.detach()
        if self._log_probs is not None:
            reward = -nll.detach()
            if not bool(self.baseline_initialised):  # start the baseline at the first rewards, not at 0
                self.reward_baseline.fill_(float(reward.mean()))
                self.baseline_initialised.fill_(True)
            loss = loss + reinforce_surrogate(self._log_probs, reward, self.reward_baseline, self._entropy,
                                              self.entropy_weight).mean()
            with torch.no_grad():
                self.reward_baseline.mul_(self.baseline_decay).add_((1 - self.baseline_decay) * reward.mean())
            logs["reward_baseline"] = self.reward_baseline.clone()
        return loss, logs


class TemporalAttentionLSTM(FrameOutputClassifier):
    """LSTM that attends over the N most recent frame features at every step (MultiLSTM-style).

    Args:
        encoder: frame encoder (pooled features D).
        num_classes: K.
        window: N, the frames attended (the current one and N−1 before it).
        hidden_size: LSTM units.
        attention_size: hidden size of the additive attention.
        dropout: on the LSTM output.
        multilabel: per-frame sigmoids instead of a softmax (see module docstring).
        output_window: M, MultiLSTM's multiple outputs: the output at step t predicts the
            M frames t−M+1..t, and each frame's score is the mean of the logits predicted for
            it (at steps s..s+M−1, those inside the clip); a frame's score thus also uses up to
            M−1 later frames (offline labelling, as the paper). 1: step t predicts frame t.

    Shape:
        video ``(B, T, 3, H, W)`` -> logits ``(B, K)``; ``forward_frames`` -> ``(B, T, K)``;
        attention ``(B, T, N)``: weight of frame ``t − N + 1 + j`` at step t (0 before the video
        starts).
    """

    def __init__(self, encoder: FrameEncoder, num_classes: int, *, window: int = 5, hidden_size: int = 256,
                 attention_size: int = 128, dropout: float = 0.0, multilabel: bool = False,
                 output_window: int = 1):
        super().__init__(encoder, num_classes, "mean")
        if window < 1:
            raise ValueError(f"window must be >= 1, got {window}")
        if output_window < 1:
            raise ValueError(f"output_window must be >= 1, got {output_window}")
        D = encoder.feature_dim
        self.window, self.multilabel, self.output_window = window, multilabel, output_window
        self.attn = AdditiveAttention(hidden_size, D, attention_size)
        self.cell = nn.LSTMCell(2 * D, hidden_size)  # [attended context; current frame]
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(hidden_size, num_classes * output_window)
        self.last_attention: torch.Tensor | None = None

    def forward_features(self, feats: torch.Tensor) -> torch.Tensor:
        """Frame features ``(B, T, D)`` -> LSTM outputs ``(B, T, H)``; sets ``last_attention``."""
        B, T, D = feats.shape
        N = self.window
        padded = F.pad(feats, (0, 0, N - 1, 0))  # (B, N-1+T, D)
        windows = padded.unfold(1, N, 1).transpose(2, 3)  # (B, T, N, D): frames t-N+1..t
        pad_mask = (torch.arange(N, device=feats.device)[None, :] + torch.arange(T, device=feats.device)[:, None]
                    < N - 1)  # (T, N) True before the video starts
        keys_proj = self.attn.project_keys(windows)  # (B, T, N, A), one projection for all steps
        h = feats.new_zeros(B, self.cell.hidden_size)
        state = (h, h)
        outs, weights = [], []
        for t in range(T):
            ctx, w = self.attn(state[0], windows[:, t], key_padding_mask=pad_mask[t].expand(B, N),
                               projected_keys=keys_proj[:, t])
            state = self.cell(torch.cat([ctx, feats[:, t]], dim=-1), state)
            outs.append(state[0])
            weights.append(w)
        self.last_attention = torch.stack(weights, dim=1)  # (B, T, N)
        return torch.stack(outs, dim=1)

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        """LSTM outputs ``(B, T, H)`` -> per-frame logits ``(B, T, K)``."""
        z = self.fc(self.dropout(x))
        M = self.output_window
        if M == 1:
            return z
        B, T, _ = z.shape
        z = z.view(B, T, M, -1)  # slot m of step t predicts frame t - (M - 1) + m
        shifted, counts = [], []
        for m in range(M):
            d = M - 1 - m  # frame s gets slot m from step s + d
            if d < T:
                shifted.append(F.pad(z[:, d:, m], (0, 0, 0, d)))
                counts.append(F.pad(z.new_ones(T - d), (0, d)))
        return torch.stack(shifted).sum(0) / torch.stack(counts).sum(0)[None, :, None]

    def forward_frames(self, video: torch.Tensor, return_attention: bool = False):
        out = super().forward_frames(video)
        return (out, self.last_attention) if return_attention else out

    def forward(self, video: torch.Tensor, return_attention: bool = False):
        out = self.aggregate(super().forward_frames(video))
        return (out, self.last_attention) if return_attention else out


class ConvRNNClassifier(FrameOutputClassifier):
    """ConvLSTM / ConvGRU layers over the encoder's conv maps, per-step predictions averaged.

    Args:
        encoder: frame encoder (maps ``(B, T, C, h, w)``).
        num_classes: K.
        cell: ``"convlstm"`` or ``"convgru"``.
        hidden_channels: channels per recurrent layer.
        kernel_size: state-to-state and input-to-state kernel side.
        dropout: on the pooled states.
        levels: encoder levels (block indices, ``-1`` = the final map) each with its own
            recurrent stack and classifier; the levels' predictions are averaged (GRU-RCN).
            List them from the lowest (largest map) to the highest.
        stacked: stacked GRU-RCN: level l's first recurrent layer also reads the top state of
            level l−1 at the same step (adaptive max pooling to level l's map size); one
            classifier, on the top level. Needs two or more levels.

    Shape:
        video ``(B, T, 3, H, W)`` -> logits ``(B, K)``; ``forward_frames`` -> ``(B, T, K)``.
    """

    input_kind = "map"

    def __init__(self, encoder: FrameEncoder, num_classes: int, *, cell: str = "convgru",
                 hidden_channels=(64,), kernel_size: int = 3, dropout: float = 0.0, levels=(-1,),
                 stacked: bool = False):
        super().__init__(encoder, num_classes, "mean")
        Layer = {"convlstm": ConvLSTM, "convgru": ConvGRU}.get(cell)
        if Layer is None:
            raise ValueError(f"cell={cell!r}: expected 'convlstm' or 'convgru'")
        self.levels = [int(lv) for lv in levels]
        if not self.levels:
            raise ValueError("levels must name at least one encoder level")
        if stacked and len(self.levels) < 2:
            raise ValueError(f"stacked=True needs two or more levels, got levels={self.levels}")
        self.stacked = stacked
        chans_in = self._level_channels(encoder)
        self.stacks = nn.ModuleList()
        for k, c_in in enumerate(chans_in):
            chans = [c_in + (hidden_channels[-1] if stacked and k > 0 else 0), *hidden_channels]
            self.stacks.append(nn.ModuleList(Layer(chans[i], chans[i + 1], kernel_size=kernel_size)
                                             for i in range(len(hidden_channels))))
        self.dropout = nn.Dropout(dropout)
        self.fcs = nn.ModuleList(nn.Linear(hidden_channels[-1], num_classes)
                                 for _ in (self.levels[-1:] if stacked else self.levels))
        self.hidden = hidden_channels[-1]

    def _level_channels(self, encoder: FrameEncoder) -> list[int]:
        if self.levels == [-1]:
            return [encoder.map_channels]
        with torch.no_grad():  # channels of each level from a small dry run (works on the meta device)
            was = encoder.training
            encoder.eval()
            probe = torch.zeros(1, 1, 3, 64, 64, device=encoder.mean.device)
            maps = encoder.forward_levels(probe, self.levels)
            encoder.train(was)
        sizes = [tuple(m.shape[-2:]) for m in maps]
        if self.stacked and any(b[0] > a[0] or b[1] > a[1] for a, b in zip(sizes, sizes[1:])):
            raise ValueError(f"stacked=True reads each level's state into the next, so levels must go from the "
                             f"largest map to the smallest; levels={self.levels} give maps {sizes}")
        return [m.shape[2] for m in maps]

    def encode(self, video: torch.Tensor):
        if self.levels == [-1]:
            return super().encode(video)
        return self.encoder.forward_levels(video, self.levels)  # [(B, T, C_l, h_l, w_l)]

    def check_cached(self, feats) -> None:
        if self.levels != [-1]:
            raise ValueError(f"{type(self).__name__} with levels={self.levels} needs the encoder's intermediate maps; "
                             "a feature cache holds the last map only")
        super().check_cached(feats)

    def forward_features(self, maps) -> torch.Tensor:
        """Maps ``(B, T, C, h, w)`` (or one per level) -> pooled top-layer states ``(B, T, L*F)``
        (stacked: the top level's, ``(B, T, F)``)."""
        maps = [maps] if torch.is_tensor(maps) else list(maps)
        pooled, below = [], None
        for x, stack in zip(maps, self.stacks):
            if below is not None:  # stacked: h^{l-1}_t, max-pooled to this level's map size
                B, T = below.shape[:2]
                h = F.adaptive_max_pool2d(below.flatten(0, 1), x.shape[-2:]).unflatten(0, (B, T))
                x = torch.cat([x, h], dim=2)
            for layer in stack:
                x, _ = layer(x)  # (B, T, F, h, w)
            below = x if self.stacked else None
            pooled.append(x.mean(dim=(-2, -1)))  # (B, T, F)
        return pooled[-1] if self.stacked else torch.cat(pooled, dim=-1)

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, T, L*F)`` -> per-step logits ``(B, T, K)``: log of the levels' averaged softmax
        (GRU-RCN averages the levels' predictions); one level: plain logits."""
        parts = x.split(self.hidden, dim=-1)
        logits = [fc(self.dropout(p)) for fc, p in zip(self.fcs, parts)]
        if len(logits) == 1:
            return logits[0]
        logp = torch.stack([z.log_softmax(-1) for z in logits])  # (L, B, T, K)
        return logp.logsumexp(0) - torch.log(torch.tensor(float(len(logits))))


# ============================================================================ builders
def _tiny_map_encoder():
    return {"name": "tiny", "channels": [8, 16, 32], "pool": "avg"}


@register_model
def soft_attention_lstm(num_classes: int = 101, *, encoder="efficientnet_lite0", pretrained: bool = True,
                        trainable="none", map_size: int = 7, hidden_size: int = 512, **kw) -> SoftAttentionLSTM:
    """Sharma et al. 2015: soft spatial attention over 7x7 regions of an ImageNet CNN (EfficientNet-Lite0, 224 px)."""
    return SoftAttentionLSTM(build_encoder(encoder, pretrained, trainable), num_classes, map_size=map_size,
                             hidden_size=hidden_size, **kw)


@register_model
def soft_attention_lstm_tiny(num_classes: int = 4, *, encoder=None, pretrained: bool = False, trainable="all",
                             map_size: int = 4, hidden_size: int = 32, **kw) -> SoftAttentionLSTM:
    """Soft attention LSTM with the tiny CNN (4x4 maps of 32x32 frames; tests, embedded data)."""
    return soft_attention_lstm(num_classes, encoder=encoder or _tiny_map_encoder(), pretrained=pretrained,
                               trainable=trainable, map_size=map_size, hidden_size=hidden_size, **{"dropout": 0.0, **kw})


@register_model
def hard_attention_lstm(num_classes: int = 101, **kw) -> SoftAttentionLSTM:
    """Sharma et al. 2015 / Xu et al. 2015: hard (sampled) spatial attention trained with REINFORCE."""
    return soft_attention_lstm(num_classes, attention="hard", **kw)


@register_model
def hard_attention_lstm_tiny(num_classes: int = 4, **kw) -> SoftAttentionLSTM:
    """Hard attention LSTM with the tiny CNN (tests, embedded data)."""
    return soft_attention_lstm_tiny(num_classes, attention="hard", **kw)


@register_model
def temporal_attention_lstm(num_classes: int = 101, *, encoder="efficientnet_lite0", pretrained: bool = True,
                            trainable="none", window: int = 5, hidden_size: int = 256, **kw) -> TemporalAttentionLSTM:
    """MultiLSTM-style temporal attention over the 5 most recent frame features."""
    return TemporalAttentionLSTM(build_encoder(encoder, pretrained, trainable), num_classes, window=window,
                                 hidden_size=hidden_size, **kw)


@register_model
def temporal_attention_lstm_tiny(num_classes: int = 4, *, encoder=None, pretrained: bool = False, trainable="all",
                                 window: int = 3, hidden_size: int = 32, **kw) -> TemporalAttentionLSTM:
    """Temporal attention LSTM with the tiny CNN (tests, embedded data)."""
    return temporal_attention_lstm(num_classes, encoder=encoder or {"name": "tiny", "feature_dim": 64,
                                                                    "channels": [8, 16, 32]},
                                   pretrained=pretrained, trainable=trainable, window=window, hidden_size=hidden_size,
                                   attention_size=32, **kw)


@register_model
def convgru_rcn(num_classes: int = 101, *, encoder="efficientnet_lite0", pretrained: bool = True, trainable="none",
                cell: str = "convgru", hidden_channels=(256,), **kw) -> ConvRNNClassifier:
    """GRU-RCN (Ballas et al. 2016): a ConvGRU over an ImageNet CNN's last conv map (one level)."""
    return ConvRNNClassifier(build_encoder(encoder, pretrained, trainable), num_classes, cell=cell,
                             hidden_channels=hidden_channels, **kw)


@register_model
def convgru_rcn_tiny(num_classes: int = 4, *, encoder=None, pretrained: bool = False, trainable="all",
                     hidden_channels=(16,), **kw) -> ConvRNNClassifier:
    """ConvGRU classifier with the tiny CNN (tests, embedded data)."""
    return convgru_rcn(num_classes, encoder=encoder or _tiny_map_encoder(), pretrained=pretrained, trainable=trainable,
                       hidden_channels=hidden_channels, **kw)


@register_model
def stacked_convgru_rcn(num_classes: int = 101, *, levels=(-5, -3, -1), hidden_channels=(128,),
                        **kw) -> ConvRNNClassifier:
    """Stacked GRU-RCN (Ballas et al. 2016): ConvGRUs on three EfficientNet-Lite0 levels, each
    reading the level below."""
    return convgru_rcn(num_classes, levels=levels, hidden_channels=hidden_channels, stacked=True, **kw)


@register_model
def stacked_convgru_rcn_tiny(num_classes: int = 4, *, levels=(-2, -1), **kw) -> ConvRNNClassifier:
    """Stacked GRU-RCN with the tiny CNN on its last two levels (tests, embedded data)."""
    return convgru_rcn_tiny(num_classes, levels=levels, stacked=True, **kw)


@register_model
def convlstm_rcn(num_classes: int = 101, **kw) -> ConvRNNClassifier:
    """ConvLSTM (Shi et al. 2015) over an ImageNet CNN's last conv map, per-step predictions averaged."""
    return convgru_rcn(num_classes, cell="convlstm", **kw)


@register_model
def convlstm_rcn_tiny(num_classes: int = 4, **kw) -> ConvRNNClassifier:
    """ConvLSTM classifier with the tiny CNN (tests, embedded data)."""
    return convgru_rcn_tiny(num_classes, cell="convlstm", **kw)

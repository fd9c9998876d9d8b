"""Caption metrics computed the COCO way: BLEU-1..4, METEOR 1.5, ROUGE-L and CIDEr-D, through
``pycocoevalcap`` (the MS-COCO caption evaluation code: the Stanford PTB tokenizer and METEOR
run on Java), installed with the ``captioning`` extra (``pip install -e ".[captioning]"``).

The scorers are called one by one (SPICE is left out: it downloads Stanford CoreNLP at first
use). Without ``pycocoevalcap`` only BLEU is available, from torchmetrics (its corpus BLEU on
the words of :func:`vidrnn.data.captions.tokenize`: close to, not equal to, the COCO numbers; on the
Karpathy COCO test predictions of ``../shared/data/captions`` 0.562 / 0.127 for BLEU-1 / BLEU-4
against the COCO 0.568 / 0.129), and asking for the other metrics raises a clear error.

Keys follow the COCO evaluation: ``Bleu_1`` .. ``Bleu_4``, ``METEOR``, ``ROUGE_L``, ``CIDEr``
(CIDEr-D, as the COCO server computes it).
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
from typing import Hashable, Mapping, Sequence

from vidrnn.errors import DataError

__all__ = ["COCO_METRICS", "caption_metrics", "have_coco_evaluation"]

COCO_METRICS = ("Bleu_1", "Bleu_2", "Bleu_3", "Bleu_4", "METEOR", "ROUGE_L", "CIDEr")


def have_coco_evaluation() -> bool:
    """Whether ``pycocoevalcap`` (the ``captioning`` extra) is installed."""
    try:
        import pycocoevalcap.tokenizer.ptbtokenizer  # noqa: F401
    except ImportError:
        return False
    return True


def _check(references: Mapping, predictions: Mapping) -> None:
    missing = [k for k in references if k not in predictions]
    extra = [k for k in predictions if k not in references]
    if missing or extra:
        raise DataError(f"captions: {len(missing)} items have references but no prediction (e.g. {missing[:3]}), "
                        f"{len(extra)} have a prediction but no references (e.g. {extra[:3]})")
    if not references:
        raise DataError("captions: nothing to score")
    for k, refs in references.items():
        if isinstance(refs, str) or not refs or not all(isinstance(r, str) and r.strip() for r in refs):
            raise DataError(f"captions: item {k!r} needs a list of non-empty reference captions, got {refs!r}")
        if not isinstance(predictions[k], str):
            raise DataError(f"captions: the prediction of item {k!r} is not a string: {predictions[k]!r}")


def caption_metrics(references: Mapping[Hashable, Sequence[str]], predictions: Mapping[Hashable, str],
                    metrics: Sequence[str] = COCO_METRICS) -> dict[str, float]:
    """Corpus-level caption metrics of ``predictions`` against ``references``.

    Args:
        references: item -> its reference captions (COCO: 5 per image).
        predictions: item -> the generated caption (an empty string scores 0).
        metrics: which of :data:`COCO_METRICS`.

    Returns:
        ``{metric: score}`` (scores in [0, 1]; CIDEr in [0, 10]).

    Raises:
        DataError: items without references or predictions, an empty reference.
        ValueError: an unknown metric.
        ImportError: METEOR, ROUGE_L or CIDEr asked for without ``pycocoevalcap`` (the message
            says how to install it).
    """
    bad = [m for m in metrics if m not in COCO_METRICS]
    if bad:
        raise ValueError(f"unknown caption metrics {bad}; expected some of {COCO_METRICS}")
    _check(references, predictions)
    if not have_coco_evaluation():
        if any(not m.startswith("Bleu") for m in metrics):
            raise ImportError("METEOR, ROUGE_L and CIDEr need the COCO caption evaluation: "
                              "pip install -e \".[captioning]\" (pycocoevalcap; METEOR and its tokenizer need Java)")
        return _torchmetrics_bleu(references, predictions, metrics)
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.meteor.meteor import Meteor
    from pycocoevalcap.rouge.rouge import Rouge
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

    keys = {k: i for i, k in enumerate(references)}  # the scorers sort ids: plain ints are safe
    gts = {keys[k]: [{"caption": r} for r in refs] for k, refs in references.items()}
    res = {keys[k]: [{"caption": predictions[k]}] for k in references}
    with contextlib.redirect_stdout(io.StringIO()), _quiet_stderr():  # the scorers (and Java) print their internals
        tok = PTBTokenizer()
        gts, res = tok.tokenize(gts), tok.tokenize(res)
        out: dict[str, float] = {}
        if any(m.startswith("Bleu") for m in metrics):
            scores, _ = Bleu(4).compute_score(gts, res, verbose=0)
            out.update({f"Bleu_{n}": float(s) for n, s in enumerate(scores, 1)})
        for name, scorer in (("METEOR", Meteor), ("ROUGE_L", Rouge), ("CIDEr", Cider)):
            if name in metrics:
                out[name] = float(scorer().compute_score(gts, res)[0])
    return {m: out[m] for m in metrics}


@contextlib.contextmanager
def _quiet_stderr():
    """File descriptor 2 sent to /dev/null (the PTB tokenizer's Java process writes there)."""
    try:
        fd = sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):  # no real stderr (e.g. captured): nothing to silence
        yield
        return
    sys.stderr.flush()
    saved = os.dup(fd)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), fd)
            yield
    finally:
        os.dup2(saved, fd)
        os.close(saved)


def _torchmetrics_bleu(references, predictions, metrics) -> dict[str, float]:
    from torchmetrics.functional.text import bleu_score

    from vidrnn.data.captions import tokenize

    preds = [" ".join(tokenize(predictions[k])) for k in references]
    refs = [[" ".join(tokenize(r)) for r in references[k]] for k in references]
    return {m: float(bleu_score(preds, refs, n_gram=int(m[-1]))) for m in metrics}

"""Caption data (tokenisation, vocabulary, the readers) and the COCO caption metrics, on the real
captions in ../shared/data/captions."""

import json

import pytest
import torch

from vidrnn.data.captions import (CaptionVocabulary, read_caption_list, read_coco_captions, read_karpathy_split,
                                  tokenize)
from vidrnn.errors import DataError
from vidrnn.metrics import captioning
from vidrnn.metrics.captioning import caption_metrics


@pytest.fixture(scope="module")
def captions_dir(shared_data):
    return shared_data / "captions"


@pytest.fixture(scope="module")
def magic(captions_dir):
    return json.loads((captions_dir / "magic_mscoco_test_predictions.json").read_text())


def test_metrics_match_the_published_coco_numbers(magic):
    """Golden test: re-scoring the MAGIC predictions on the Karpathy COCO test split gives the
    numbers published beside them (COCO caption evaluation, ../shared/data/README.md)."""
    refs = {x["image_name"]: x["captions"] for x in magic}
    preds = {x["image_name"]: x["prediction"] for x in magic}
    assert len(refs) == 4982
    got = caption_metrics(refs, preds)
    published = {"Bleu_1": 0.568, "Bleu_2": 0.358, "Bleu_3": 0.214, "Bleu_4": 0.129, "METEOR": 0.174,
                 "ROUGE_L": 0.399, "CIDEr": 0.493}
    assert {k: round(v, 3) for k, v in got.items()} == published


def test_without_the_coco_evaluation_bleu_comes_from_torchmetrics(magic, monkeypatch):
    monkeypatch.setattr(captioning, "have_coco_evaluation", lambda: False)
    refs = {x["image_name"]: x["captions"] for x in magic[:500]}
    preds = {x["image_name"]: x["prediction"] for x in magic[:500]}
    bleu = caption_metrics(refs, preds, ("Bleu_1", "Bleu_4"))
    assert 0.5 < bleu["Bleu_1"] < 0.65 and 0.08 < bleu["Bleu_4"] < 0.2
    with pytest.raises(ImportError, match='pip install -e ".\\[captioning\\]"'):
        caption_metrics(refs, preds, ("CIDEr",))


def test_metrics_refuse_mismatched_or_empty_input():
    with pytest.raises(DataError, match="have references but no prediction"):
        caption_metrics({"a": ["a dog"], "b": ["a cat"]}, {"a": "a dog"})
    with pytest.raises(DataError, match="item 'a' needs a list of non-empty reference captions"):
        caption_metrics({"a": [""]}, {"a": "a dog"})
    with pytest.raises(ValueError, match="unknown caption metrics"):
        caption_metrics({"a": ["a dog"]}, {"a": "a dog"}, ("SPICE",))
    perfect = caption_metrics({"a": ["a dog runs on the grass"], "b": ["two cats sleep on a red sofa"]},
                              {"a": "a dog runs on the grass", "b": "two cats sleep on a red sofa"}, ("Bleu_4",))
    assert perfect["Bleu_4"] == pytest.approx(1.0, abs=1e-6)


def test_tokenize_and_vocabulary(tmp_path):
    assert tokenize("A man's red moped, on 2 wheels!") == ["a", "man's", "red", "moped", "on", "2", "wheels"]
    vocab = CaptionVocabulary.build(["a dog runs", "a dog sleeps", "a cat"], min_count=2)
    assert vocab.itos == ["<pad>", "<start>", "<end>", "<unk>", "a", "dog"]
    ids = vocab.encode("A dog jumps.")
    assert ids.tolist() == [1, 4, 5, 3, 2]
    assert vocab.decode(ids.tolist() + [0, 0]) == "a dog <unk>"
    assert vocab.decode([1, 5, 2, 4]) == "dog"  # stops at <end>
    vocab.save(tmp_path / "vocab.json")
    assert CaptionVocabulary.load(tmp_path / "vocab.json") == vocab
    with pytest.raises(DataError, match="empty caption '...'"):
        vocab.encode("...")


def test_the_twelve_coco_images_and_their_references(captions_dir):
    found = read_caption_list(captions_dir / "magic_mscoco_test_predictions.json", captions_dir / "coco_examples")
    assert len(found.items) == 12 and len(found.missing) == 4982 - 12
    assert all(len(it.captions) == 5 and it.path.is_file() for it in found.items)
    with pytest.raises(DataError, match="4970 of 4982 media files are missing"):
        read_caption_list(captions_dir / "magic_mscoco_test_predictions.json", captions_dir / "coco_examples",
                          on_missing="raise")


def test_karpathy_and_coco_formats(captions_dir, magic, tmp_path):
    """Karpathy's split file and COCO's captions file, written from the real references of the
    12 example images, read back with the real image folder."""
    have = sorted(p.name for p in (captions_dir / "coco_examples").iterdir())
    refs = {x["image_name"]: x["captions"] for x in magic if x["image_name"] in have}
    names = sorted(refs)
    karpathy = {"images": [{"filepath": "coco_examples", "filename": n, "cocoid": i,
                            "split": ["train", "restval", "val", "test"][i % 4],
                            "sentences": [{"raw": c, "tokens": tokenize(c)} for c in refs[n]]}
                           for i, n in enumerate(names)]
                + [{"filepath": "coco_examples", "filename": "COCO_val2014_missing.jpg", "cocoid": 99,
                    "split": "train", "sentences": [{"raw": "a missing photo"}]}]}
    (tmp_path / "dataset_coco.json").write_text(json.dumps(karpathy))
    found = read_karpathy_split(tmp_path / "dataset_coco.json", captions_dir)
    assert len(found.items) == 12 and found.missing == [str(captions_dir / "coco_examples/COCO_val2014_missing.jpg")]
    assert len(found.split("train")) == 6 and len(found.split("test")) == 3  # restval counts as train
    coco = {"images": [{"id": i, "file_name": n} for i, n in enumerate(names)],
            "annotations": [{"image_id": i, "caption": c} for i, n in enumerate(names) for c in refs[n]]}
    (tmp_path / "captions_val2014.json").write_text(json.dumps(coco))
    found = read_coco_captions(tmp_path / "captions_val2014.json", captions_dir / "coco_examples", split="val")
    assert [it.captions for it in found.items] == [refs[n] for n in names]
    coco["annotations"] = [a for a in coco["annotations"] if a["image_id"] != 3]
    (tmp_path / "bad.json").write_text(json.dumps(coco))
    with pytest.raises(DataError, match="item 3 has no non-empty caption"):
        read_coco_captions(tmp_path / "bad.json", captions_dir / "coco_examples")
    with pytest.raises(FileNotFoundError, match="COCO captions file not found"):
        read_coco_captions(tmp_path / "nope.json", captions_dir)


# ---------------------------------------------------------------------------- embedded digit scenes
def test_digit_scenes_are_deterministic_and_captions_say_what_is_where():
    from vidrnn.data.digit_captions import CELL_NAMES, DigitScenes

    ds = DigitScenes("train", 50, seed=3)
    a, b = ds[7], DigitScenes("train", 50, seed=3)[7]
    assert torch.equal(a["image"], b["image"]) and a["captions"] == b["captions"]
    assert not torch.equal(a["image"], DigitScenes("train", 50, seed=4)[7]["image"])
    cell = ds.size // 3
    counts = set()
    for i in range(50):
        item = ds[i]
        img, cells, digits, refs = item["image"], item["cells"], item["digits"], item["captions"]
        counts.add(len(cells))
        assert len(refs) == 3 and len(set(refs)) == 3  # paraphrases
        for c, d in zip(cells, digits):
            # every stated place holds ink, and every digit and its place are in the first caption
            block = img[:, (c // 3) * cell:(c // 3 + 1) * cell, (c % 3) * cell:(c % 3 + 1) * cell]
            assert block.max() > 0.3
            place = "in the middle" if CELL_NAMES[c] == "middle" else f"at the {CELL_NAMES[c]}"
            assert f"a {d} {place}" in refs[0]
        for c in set(range(9)) - set(cells):  # empty cells stay dark
            assert img[:, (c // 3) * cell:(c // 3 + 1) * cell, (c % 3) * cell:(c % 3 + 1) * cell].max() == 0
    assert counts == {2, 3, 4}


def test_digit_scene_grammar():
    from vidrnn.data.digit_captions import scene_captions

    assert scene_captions([4, 0], [7, 3]) == ["a 3 at the top left and a 7 in the middle",
                                              "a 7 in the middle and a 3 at the top left",
                                              "two digits : a 3 above a 7"]
    assert scene_captions([5, 3], [1, 2])[2] == "two digits : a 2 left of a 1"
    assert scene_captions([8, 0, 2], [5, 6, 7])[2] == "three digits : 6 , 7 and 5 from top to bottom"
    vocab = CaptionVocabulary.build([c for cells, ds in (([0, 4], [3, 7]), ([8, 1, 5], [1, 2, 9]))
                                     for c in scene_captions(cells, ds)])
    assert "<unk>" not in vocab.decode(vocab.encode("a 3 at the top left and a 7 in the middle"))

import pytest
import torch
import torch.nn.functional as F

from vidrnn.layers.encoders import create_frame_encoder, efficientnet_lite0_state_dict


def _imagenet_probs(img):
    import timm

    full = timm.create_model("efficientnet_lite0", pretrained=False)
    full.load_state_dict(efficientnet_lite0_state_dict())
    full.eval()
    x = torch.from_numpy(img).permute(2, 0, 1).float()[None] / 255
    x = F.interpolate(x, size=(224, 224), mode="bilinear", antialias=True, align_corners=False)
    with torch.no_grad():
        return full((x - 0.5) / 0.5).softmax(-1)[0]


def test_offline_efficientnet_lite0_labels_cat_and_espresso():
    skd = pytest.importorskip("skimage.data")
    cat = _imagenet_probs(skd.chelsea())
    assert 281 <= int(cat.argmax()) <= 285  # ImageNet domestic cats
    coffee = _imagenet_probs(skd.coffee())
    assert int(coffee.argmax()) == 967  # espresso


def test_encoder_views_and_normalisation_buffers():
    enc = create_frame_encoder("efficientnet_lite0", pretrained=True, trainable="none").eval()
    video = torch.rand(2, 3, 3, 96, 96)
    with torch.no_grad():
        v = enc(video)
        maps = enc.forward_maps(video)
        sp = enc.forward_spatial(video)
    assert v.shape == (2, 3, 1280)
    assert maps.shape == (2, 3, 1280, 3, 3) and sp.shape == (2, 3, 9, 1280)
    torch.testing.assert_close(sp[:, :, 4], maps[:, :, :, 1, 1])  # row-major regions
    torch.testing.assert_close(v, maps.mean((-2, -1)))
    assert {"mean", "std"} <= set(enc.state_dict())


def test_trainable_modes_freeze_blocks_and_batchnorm():
    enc = create_frame_encoder("efficientnet_lite0", pretrained=False, trainable="none")
    assert not any(p.requires_grad for p in enc.parameters())
    enc.train()
    assert all(not m.training for m in enc.trunk.modules() if isinstance(m, torch.nn.BatchNorm2d))
    enc.set_trainable(2)
    trainable = {n.split(".")[2] for n, p in enc.named_parameters() if p.requires_grad}
    assert trainable == {"blocks", "conv_head", "bn2"}
    assert all(p.requires_grad for p in enc.trunk.model.blocks[6].parameters())
    assert not any(p.requires_grad for p in enc.trunk.model.blocks[5].parameters())
    enc.set_trainable("all")
    assert all(p.requires_grad for p in enc.parameters())
    with pytest.raises(ValueError, match="trainable"):
        enc.set_trainable(99)


def test_torchvision_and_timm_backbones_by_name():
    tv = create_frame_encoder("torchvision/resnet18")
    assert tv.map_channels == 512 and tv(torch.rand(1, 2, 3, 64, 64)).shape == (1, 2, 512)
    tm = create_frame_encoder("timm/resnet18")
    assert tm(torch.rand(1, 2, 3, 64, 64)).shape == (1, 2, 512)
    with pytest.raises(ValueError, match="unknown frame encoder"):
        create_frame_encoder("no_such_net")


def test_tiny_encoder_strides_keep_the_map_and_widen_what_each_cell_sees():
    from vidrnn.layers.encoders import create_frame_encoder
    enc = create_frame_encoder("tiny", channels=[8, 8, 8, 8], strides=[2, 2, 2, 1], map_size=6, pool="avg")
    x = torch.zeros(1, 1, 3, 48, 48, requires_grad=True)
    maps = enc.forward_maps(x)
    assert maps.shape == (1, 1, 8, 6, 6)
    maps[0, 0, :, 0, 0].sum().backward()  # the top-left cell now sees beyond 15 pixels
    seen = x.grad[0, 0].abs().sum(0).nonzero()
    assert seen[:, 0].max() > 15 and seen[:, 1].max() > 15
    assert create_frame_encoder(**enc.config).config == enc.config  # rebuilt from its config (checkpoints)
    with pytest.raises(ValueError, match="strides"):
        create_frame_encoder("tiny", channels=[8, 8], strides=[2, 3])

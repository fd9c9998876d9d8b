import pytest
import torch
import torch.nn.functional as F

from vidrnn.layers.encoders import create_frame_encoder, efficientnet_lite0_state_dict


def _imagenet_probs(img, bf16: bool = False):
    import timm

    full = timm.create_model("efficientnet_lite0", pretrained=False)
    full.load_state_dict(efficientnet_lite0_state_dict())
    full.eval()
    x = torch.from_numpy(img).permute(2, 0, 1).float()[None] / 255
    x = F.interpolate(x, size=(224, 224), mode="bilinear", antialias=True, align_corners=False)
    if bf16:  # the fast inference path: channels_last + bf16 autocast
        full.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    with torch.inference_mode(), torch.autocast("cpu", torch.bfloat16, enabled=bf16):
        return full((x - 0.5) / 0.5).float().softmax(-1)[0]


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


def test_channels_last_is_the_default_for_real_backbones_and_gives_the_same_features():
    torch.manual_seed(0)
    cl = create_frame_encoder("efficientnet_lite0", pretrained=True, trainable="none").eval()
    plain = create_frame_encoder("efficientnet_lite0", pretrained=True, trainable="none", channels_last=False).eval()
    assert cl.channels_last and not plain.channels_last
    assert cl.trunk.model.conv_stem.weight.is_contiguous(memory_format=torch.channels_last)
    assert not create_frame_encoder("tiny").channels_last  # small maps: contiguous is faster
    video = torch.rand(2, 3, 3, 96, 96)
    with torch.no_grad():
        torch.testing.assert_close(cl(video), plain(video), atol=1e-4, rtol=1e-4)
    cl.load_state_dict(plain.state_dict())  # checkpoints load into either layout
    assert cl.trunk.model.conv_stem.weight.is_contiguous(memory_format=torch.channels_last)


def test_frozen_encoder_records_no_autograd_graph_while_training():
    enc = create_frame_encoder("tiny", trainable="none").train()
    head = torch.nn.Linear(enc.feature_dim, 2)
    video = torch.rand(2, 3, 3, 32, 32)
    maps = enc.forward_maps(video)
    assert maps.grad_fn is None and not maps.requires_grad  # nothing traced for the frozen trunk
    feats = enc(video)  # the tiny encoder's pooling layer (flatten -> linear) still trains
    assert feats.requires_grad
    head(feats).sum().backward()
    assert head.weight.grad is not None
    video.requires_grad_(True)  # a saliency map still gets its gradient
    enc(video).sum().backward()
    assert video.grad is not None and video.grad.abs().sum() > 0
    enc.set_trainable(1)
    assert enc.forward_maps(torch.rand(1, 2, 3, 32, 32)).grad_fn is not None


def test_bf16_autocast_keeps_the_imagenet_labels_and_features_within_tolerance():
    skd = pytest.importorskip("skimage.data")
    for img in (skd.chelsea(), skd.coffee()):
        p32, p16 = _imagenet_probs(img), _imagenet_probs(img, bf16=True)
        assert int(p16.argmax()) == int(p32.argmax())
        assert (p16 - p32).abs().max() < 0.05
    enc = create_frame_encoder("efficientnet_lite0", pretrained=True, trainable="none").eval()
    frames = torch.stack([torch.from_numpy(i).permute(2, 0, 1) for i in (skd.chelsea()[:300, :400],
                                                                         skd.coffee()[:300, :400])]).float() / 255
    video = F.interpolate(frames, size=(224, 224), mode="bilinear", antialias=True)[None]
    with torch.inference_mode():
        f32 = enc(video)
        with torch.autocast("cpu", torch.bfloat16):
            f16 = enc(video).float()
    rel = (f16 - f32).norm(dim=-1) / f32.norm(dim=-1)
    assert rel.max() < 0.05, rel  # stated tolerance: 5% relative L2 error per pooled vector (measured 2.5-3.7%)
    cos = F.cosine_similarity(f16, f32, dim=-1)
    assert cos.min() > 0.999

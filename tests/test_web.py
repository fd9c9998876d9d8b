"""vidrnn serve: the API with FastAPI's test client (every endpoint, the three kinds of
checkpoint, streamed progress, examples, bad uploads, the size limit, concurrent requests)."""

import json
import threading

import pytest

from vidrnn.cli import main

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402

from vidrnn.web.app import create_app  # noqa: E402


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    run = tmp_path_factory.mktemp("web") / "run"
    assert main(["fit", "--run-dir", str(run), "trainer.max_epochs=1", "data.num_workers=0",
                 "data.digits.num_train=16", "data.digits.num_val=8", "data.digits.num_test=8"]) == 0
    return run / "checkpoints" / "last.ckpt"


@pytest.fixture(scope="module")
def client(ckpt):
    return TestClient(create_app([str(ckpt), str(ckpt)], max_upload_mb=2))


def test_page_and_models(client):
    page = client.get("/")
    assert page.status_code == 200 and "<form" in page.text and "/api/predict" in page.text
    assert "http://" not in page.text and "https://" not in page.text  # works offline: nothing from the internet
    models = client.get("/api/models").json()
    assert [m["id"] for m in models] == ["m0", "m1"] and models[0]["model"] == "lrcn_tiny" and models[0]["classes"] == 4


def test_predict_a_real_clip(client, shared_data):
    clip = shared_data / "videos" / "clips" / "arm_wrestling.mp4"  # 10 s: no timeline below 10 s
    r = client.post("/api/predict?model=m0", files={"file": ("../../etc/arm wrestling.mp4", clip.read_bytes())})
    assert r.status_code == 200, r.text
    j = r.json()
    assert j["video"] == "arm wrestling.mp4"  # only the base name, shown back; never used as a path
    assert len(j["topk"]) == 4 and abs(sum(t["prob"] for t in j["topk"]) - 1) < 1e-4
    long = shared_data / "videos" / "clips" / "bottle-detection.mp4"  # 40 s: a label per second
    j = client.post("/api/predict?model=m1", files={"file": ("bottle.mp4", long.read_bytes())}).json()
    assert len(j["timeline"]) == 40 and j["timeline"][0]["start"] == 0.0


def test_bad_uploads_get_an_error_and_the_server_goes_on(client, shared_data, tmp_path):
    r = client.post("/api/predict?model=m0", files={"file": ("video.mp4", b"this is not a video" * 100)})
    assert r.status_code == 422 and "video.mp4" in r.json()["error"] and "/tmp" not in r.json()["error"]
    truncated = (shared_data / "videos" / "clips" / "arm_wrestling.mp4").read_bytes()[:2000]
    assert client.post("/api/predict?model=m0", files={"file": ("t.mp4", truncated)}).status_code == 422
    r = client.post("/api/predict?model=nope", files={"file": ("a.mp4", b"x")})
    assert r.status_code == 404 and "no model 'nope'" in r.json()["error"]
    big = (shared_data / "videos" / "clips" / "one-by-one-person-detection.mp4").read_bytes()
    assert len(big) > 2 * 2**20
    r = client.post("/api/predict?model=m0", files={"file": ("big.mp4", big)})
    assert r.status_code == 413 and "more than the limit of 2 MB" in r.json()["error"]
    assert client.get("/api/models").status_code == 200  # still serving


def test_concurrent_requests_do_not_mix(client, shared_data):
    names = ["arm_wrestling.mp4", "flipping_pancake.mkv", "ucf101_xvid_320x240.avi", "bottle-detection.mp4"]
    alone = {n: client.post("/api/predict?model=m0", files={"file": (n, (shared_data / "videos" / "clips" / n)
                                                                     .read_bytes())}).json() for n in names}
    got = {}

    def ask(n):
        got[n] = client.post("/api/predict?model=m0", files={"file": (n, (shared_data / "videos" / "clips" / n)
                                                                      .read_bytes())}).json()

    threads = [threading.Thread(target=ask, args=(n,)) for n in names]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for n in names:
        assert got[n]["video"] == n and json.dumps(got[n]["topk"]) == json.dumps(alone[n]["topk"])


def test_long_videos_stream_progress_then_the_same_result(client, shared_data):
    long = (shared_data / "videos" / "clips" / "bottle-detection.mp4").read_bytes()  # 40 s: 3 chunks of 16 s
    whole = client.post("/api/predict?model=m0", files={"file": ("bottle.mp4", long)}).json()
    r = client.post("/api/predict?model=m0&stream=true", files={"file": ("bottle.mp4", long)})
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/x-ndjson")
    events = [json.loads(line) for line in r.text.splitlines()]
    progress = [e for e in events if "progress" in e]
    assert [e["progress"]["done"] for e in progress] == [0, 16, 32, 40]
    assert all(e["progress"]["total"] == 40 for e in progress)
    assert progress[0]["partial"]["topk"] == whole["topk"]  # the labels come before the timeline
    streamed = [s for e in progress for s in e["timeline"]]  # each event adds only the new seconds
    assert streamed == whole["timeline"] and events[-1]["result"] == whole
    bad = client.post("/api/predict?model=m0&stream=true", files={"file": ("bad.mp4", b"\x00" * 5000)})
    assert bad.status_code == 422 and "bad.mp4" in bad.json()["error"]  # fails before streaming: a plain error


def test_the_upload_folder_is_removed_after_each_request(client, shared_data, monkeypatch, tmp_path):
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    clip = (shared_data / "videos" / "clips" / "arm_wrestling.mp4").read_bytes()
    assert client.post("/api/predict?model=m0", files={"file": ("a.mp4", clip)}).status_code == 200
    assert client.post("/api/predict?model=m0", files={"file": ("a.mp4", b"junk")}).status_code == 422
    assert list(tmp_path.iterdir()) == []


def test_serve_refuses_other_checkpoints_clearly(tmp_path, capsys):
    with pytest.raises(ValueError, match="at least one checkpoint"):
        create_app([])
    assert main(["serve", str(tmp_path / "missing.ckpt")]) == 2
    assert "missing.ckpt" in capsys.readouterr().err


def test_attention_models_show_where_they_look(tmp_path, shared_data):
    import base64

    run = tmp_path / "att"
    assert main(["fit", "--run-dir", str(run), "trainer.max_epochs=1", "data.num_workers=0",
                 "model.name=soft_attention_lstm_tiny", "data.digits.num_train=16", "data.digits.num_val=8",
                 "data.digits.num_test=8"]) == 0
    client = TestClient(create_app([str(run / "checkpoints" / "last.ckpt")]))
    assert client.get("/api/models").json()[0]["attention"] is True
    clip = shared_data / "videos" / "clips" / "arm_wrestling.mp4"
    j = client.post("/api/predict?model=m0", files={"file": ("arm.mp4", clip.read_bytes())}).json()
    head, data = j["attention_gif"].split(",", 1)
    assert head == "data:image/gif;base64" and base64.b64decode(data)[:6] == b"GIF89a"


# ------------------------------------------------------------------------------- captioning
@pytest.fixture(scope="module")
def captioner(tmp_path_factory):
    run = tmp_path_factory.mktemp("cap") / "run"
    assert main(["fit", "model.name=show_attend_tell_tiny", "data.source=digit_scenes", "data.num_train=32",
                 "data.num_val=8", "data.num_test=8", "data.batch_size=16", "trainer.max_epochs=1", "--no-test",
                 "--run-dir", str(run)]) == 0
    return run / "checkpoints" / "last.ckpt"


def test_a_captioner_describes_an_image_with_its_attention_figure(captioner, tmp_path, shared_data, png_declaring):
    import base64

    from torchvision.utils import save_image

    from vidrnn.data.digit_captions import DigitScenes
    from vidrnn.inference.caption import caption_files

    ckpt, captioner = captioner, TestClient(create_app([str(captioner)]))
    m = captioner.get("/api/models").json()[0]
    assert m["task"] == "captioning" and m["media"] == "image" and m["accept"] == "image/*" and m["examples"] == []
    image = tmp_path / "scene.png"
    save_image(DigitScenes("test", 1)[0]["image"], image)
    # checked by content, not by name: a PNG called .mp4 is still an image
    r = captioner.post("/api/predict?model=m0", files={"file": ("scene.mp4", image.read_bytes())})
    assert r.status_code == 200, r.text
    j = r.json()
    assert j["task"] == "captioning" and j["input"] == "scene.mp4"
    offline = next(caption_files(ckpt, [image], beam_size=3))  # what vidrnn predict --beam 3 says
    assert j["caption"] == offline["caption"] and j["words"] == offline["words"]
    head, data = j["attention_png"].split(",", 1)
    assert head == "data:image/png;base64" and base64.b64decode(data)[:4] == b"\x89PNG"
    clip = (shared_data / "videos" / "clips" / "arm_wrestling.mp4").read_bytes()
    r = captioner.post("/api/predict?model=m0", files={"file": ("clip.jpg", clip)})
    assert r.status_code == 422 and "captions images, not videos" in r.json()["error"]
    truncated = image.read_bytes()[:60]
    r = captioner.post("/api/predict?model=m0", files={"file": ("t.png", truncated)})
    assert r.status_code == 422 and "t.png" in r.json()["error"]
    r = captioner.post("/api/predict?model=m0", files={"file": ("bomb.png", png_declaring(100_000, 100_000))})
    assert r.status_code == 422 and "decompression bomb" in r.json()["error"]


# ------------------------------------------------------------------------------ forecasting
@pytest.fixture(scope="module")
def radar(tmp_path_factory, shared_data):
    run = tmp_path_factory.mktemp("radar") / "run"
    root = shared_data / "radar"
    assert main(["fit", "-c", "convlstm_radar_fmi", "--run-dir", str(run), "model={name: convlstm_tiny}",
                 "trainer.max_epochs=1", "data.num_workers=0", "data.batch_size=4", "data.num_input=3",
                 "data.num_output=2", "data.radar.downsample=8", "data.radar.crop=16", "data.radar.num_train=4",
                 "data.radar.stride=6", "data.radar.pysteps_baseline=false", "--no-test",
                 f"data.radar.train.root={root / 'knmi'}", f"data.radar.test.root={root / 'fmi'}"]) == 0
    return run / "checkpoints" / "last.ckpt"


def test_a_radar_forecast_beside_the_truth_with_units_and_scores(radar):
    from vidrnn.inference.checkpoint import load_model
    from vidrnn.inference.forecast import ForecastPredictor

    client = TestClient(create_app([str(radar)]))
    m = client.get("/api/models").json()[0]
    assert m["task"] == "forecasting" and m["radar"] and m["step_unit"] == "min" and m["accept"] == ".npy"
    assert m["examples"] and m["examples"][0]["name"].startswith("test window 0")
    r = client.get("/api/example?model=m0&example=1&stream=true")
    events = [json.loads(line) for line in r.text.splitlines()]
    assert [e["progress"]["what"] for e in events[:-1]] == ["forecasting", "scoring persistence and pysteps extrapolation"]
    j = events[-1]["result"]
    assert j["lead_times"] == [5.0, 10.0] and j["num_input"] == 3
    assert set(j["views"]) == {"mm/h", "dBZ"}
    assert j["views"]["mm/h"]["legend"]["unit"] == "rain rate (mm/h)"
    assert j["views"]["dBZ"]["legend"]["unit"] == "reflectivity (dBZ)"
    for v in j["views"].values():
        assert [len(v[k]) for k in ("input", "truth", "forecast")] == [3, 2, 2]
        assert v["forecast"][0].startswith("data:image/png;base64,")
    s = j["scores"]
    assert s["thresholds"] == [0.5, 2, 5, 10, 30]
    for method in ("nowcasting", "persistence", "pysteps_extrapolation"):  # all three on the same window
        assert len(s[method]["csi"]) == 5 and len(s[method]["csi"][0]) == 2 and len(s[method]["mae"]) == 2
    # the scores are those of this window: the same model, item and evaluation outside the server
    p = ForecastPredictor(load_model(radar))
    item = p.inputs(None)[1][1]
    ev = p.evaluation(extrapolation=False)
    ev.update(p.forecast(item)[None], item["input_rain"][None], item["target_rain"][None])
    want = ev.compute()["nowcasting"]["csi"][0]
    assert s["nowcasting"]["csi"][0] == pytest.approx(want, abs=1e-6)
    assert client.get("/api/example?model=m0&example=999").status_code == 404


def test_a_forecaster_takes_an_uploaded_npy_sequence_and_refuses_other_files(radar, tmp_path, shared_data):
    import io

    import numpy as np

    client = TestClient(create_app([str(radar)]))
    rain = np.full((5, 20, 20), 0.0, np.float32)
    rain[:, 5:12, 5:12] = 3.0  # a still rain cell of 3 mm/h
    rain[0, 0, 0] = np.nan
    buf = io.BytesIO()
    np.save(buf, rain)
    r = client.post("/api/predict?model=m0", files={"file": ("cell.npy", buf.getvalue())})
    assert r.status_code == 200, r.text
    j = r.json()
    assert j["input"] == "cell.npy" and len(j["views"]["mm/h"]["truth"]) == 2
    pers = j["scores"]["persistence"]["csi"]
    assert pers[0] == [1.0, 1.0] and pers[1] == [1.0, 1.0]  # a still cell: persistence is perfect at 0.5 and 2 mm/h
    clip = (shared_data / "videos" / "clips" / "arm_wrestling.mp4").read_bytes()
    r = client.post("/api/predict?model=m0", files={"file": ("seq.npy", clip)})
    assert r.status_code == 422 and "takes a .npy array" in r.json()["error"]
    buf = io.BytesIO()
    np.save(buf, rain[:3])  # too few frames for 3 + 2
    r = client.post("/api/predict?model=m0", files={"file": ("short.npy", buf.getvalue())})
    assert r.status_code == 422 and "short.npy" in r.json()["error"] and "/tmp" not in r.json()["error"]
    buf = io.BytesIO()
    np.save(buf, np.array([{"a": 1}], dtype=object), allow_pickle=True)  # a pickle inside: never loaded
    r = client.post("/api/predict?model=m0", files={"file": ("obj.npy", buf.getvalue())})
    assert r.status_code == 422 and "obj.npy" in r.json()["error"]


def test_a_moving_mnist_forecast_with_its_intensity_scale_and_errors(tmp_path):
    run = tmp_path / "mm"
    assert main(["fit", "-c", "convlstm_movingmnist", "--run-dir", str(run), "model.name=convlstm_tiny",
                 "trainer.max_epochs=1", "data.num_workers=0", "data.batch_size=4", "data.moving_mnist.num_train=8",
                 "data.moving_mnist.num_val=4", "data.moving_mnist.num_test=4", "data.num_input=3",
                 "data.num_output=2", "forecasting.ssim=false", "--no-test"]) == 0
    client = TestClient(create_app([str(run / "checkpoints" / "last.ckpt")]))
    m = client.get("/api/models").json()[0]
    assert not m["radar"] and m["step_unit"] == "frame" and [e["name"] for e in m["examples"]] == [
        f"test sequence {i}" for i in range(4)]
    j = client.get("/api/example?model=m0&example=3").json()
    assert list(j["views"]) == ["intensity"] and j["views"]["intensity"]["legend"]["unit"] == "intensity (0-1)"
    assert j["lead_times"] == [1.0, 2.0] and len(j["scores"]["mse"]) == 2 and 0 < j["scores"]["ssim"][0] <= 1


def test_a_video_captioner_takes_an_uploaded_clip(tmp_path):
    from vidrnn.data.digit_captions import DigitEvents
    from vidrnn.inference.caption import caption_files
    from vidrnn.io.write import write_mp4

    run = tmp_path / "run"
    assert main(["fit", "model.name=temporal_attention_captioner_tiny", "data.source=digit_events",
                 "data.num_train=16", "data.num_val=4", "data.num_test=4", "data.batch_size=8",
                 "trainer.max_epochs=1", "--no-test", "--run-dir", str(run)]) == 0
    ckpt = run / "checkpoints" / "last.ckpt"
    client = TestClient(create_app([str(ckpt)]))
    assert client.get("/api/models").json()[0]["media"] == "video"
    clip = write_mp4(DigitEvents("test", 1)[0]["video"].permute(0, 2, 3, 1), tmp_path / "clip.mp4", fps=8)
    j = client.post("/api/predict?model=m0", files={"file": ("clip", clip.read_bytes())}).json()  # no extension
    assert j["media"] == "video" and j["caption"] == next(caption_files(ckpt, [clip], beam_size=3))["caption"]
    assert j["attention_png"].startswith("data:image/png;base64,")  # the word x frame attention figure

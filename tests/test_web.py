"""vidrnn serve: the API with FastAPI's test client (every endpoint, bad uploads, the size limit,
concurrent requests)."""

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

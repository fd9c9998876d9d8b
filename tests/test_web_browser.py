"""vidrnn serve in a real browser: headless Chromium (Debian's ``chromium`` and ``chromium-driver``,
driven by Selenium through the system's driver, nothing downloaded) uploads a real clip, waits for
the labels and takes a screenshot; the assertions are on the page's content."""

import shutil
import socket
import threading
import time

import pytest

from vidrnn.cli import main

pytest.importorskip("fastapi")
webdriver = pytest.importorskip("selenium.webdriver")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    import uvicorn

    from vidrnn.web.app import create_app

    run = tmp_path_factory.mktemp("browser") / "run"
    assert main(["fit", "--run-dir", str(run), "trainer.max_epochs=1", "data.num_workers=0",
                 "data.digits.num_train=16", "data.digits.num_val=8", "data.digits.num_test=8"]) == 0
    port = _free_port()
    srv = uvicorn.Server(uvicorn.Config(create_app([str(run / "checkpoints" / "last.ckpt")]), host="127.0.0.1",
                                        port=port, log_level="warning"))
    th = threading.Thread(target=srv.run, daemon=True)
    th.start()
    for _ in range(100):
        if srv.started:
            break
        time.sleep(0.1)
    yield f"http://127.0.0.1:{port}/"
    srv.should_exit = True
    th.join(10)


def test_upload_in_headless_chromium_shows_labels_and_timeline(server, shared_data, tmp_path):
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait

    chromium, driver_path = shutil.which("chromium"), shutil.which("chromedriver")
    if not (chromium and driver_path):
        pytest.skip("needs Debian's chromium and chromium-driver (apt-get install chromium chromium-driver)")
    opts = Options()
    opts.binary_location = chromium
    for a in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1200,900"):
        opts.add_argument(a)
    driver = webdriver.Chrome(service=Service(driver_path), options=opts)
    try:
        driver.get(server)
        wait = WebDriverWait(driver, 60)
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#model option"))
        clip = shared_data / "videos" / "clips" / "bottle-detection.mp4"  # 40 s: labels and a timeline
        driver.find_element(By.ID, "file").send_keys(str(clip))
        driver.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
        wait.until(EC.visibility_of_element_located((By.ID, "result")))
        assert "bottle-detection.mp4 (39.9 s" in driver.find_element(By.ID, "title").text
        rows = driver.find_elements(By.CSS_SELECTOR, "#topk tr")
        assert len(rows) == 4 and {r.find_element(By.CLASS_NAME, "label").text for r in rows} == {
            "right", "left", "down", "up"}
        assert len(driver.find_elements(By.CSS_SELECTOR, "#timeline div")) == 40  # one block per second
        shot = tmp_path / "page.png"
        driver.save_screenshot(str(shot))
        assert shot.stat().st_size > 10_000
        # a bad upload: the error shows on the page, and the page keeps working
        bad = tmp_path / "notes.mp4"
        bad.write_bytes(b"not a video" * 50)
        driver.find_element(By.ID, "file").send_keys(str(bad))
        driver.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
        wait.until(lambda d: d.find_element(By.ID, "error").text)
        assert "notes.mp4" in driver.find_element(By.ID, "error").text
    finally:
        driver.quit()

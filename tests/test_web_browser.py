"""vidrnn serve in a real browser: headless Chromium (Debian's ``chromium`` and ``chromium-driver``,
driven by Selenium through the system's driver, nothing downloaded) uploads a real clip, waits for
the labels and takes a screenshot, then opens a radar forecast in the viewer; the assertions are
on the page's content."""

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
def server(tmp_path_factory, shared_data):
    import uvicorn

    from vidrnn.web.app import create_app

    run = tmp_path_factory.mktemp("browser") / "run"
    assert main(["fit", "--run-dir", str(run), "trainer.max_epochs=1", "data.num_workers=0",
                 "data.digits.num_train=16", "data.digits.num_val=8", "data.digits.num_test=8"]) == 0
    radar, root = run.parent / "radar", shared_data / "radar"
    assert main(["fit", "-c", "convlstm_radar_fmi", "--run-dir", str(radar), "model={name: convlstm_tiny}",
                 "trainer.max_epochs=1", "data.num_workers=0", "data.batch_size=4", "data.num_input=3",
                 "data.num_output=2", "data.radar.downsample=8", "data.radar.crop=16", "data.radar.num_train=4",
                 "data.radar.stride=6", "data.radar.pysteps_baseline=false", "--no-test",
                 f"data.radar.train.root={root / 'knmi'}", f"data.radar.test.root={root / 'fmi'}"]) == 0
    app = create_app([str(run / "checkpoints" / "last.ckpt"), str(radar / "checkpoints" / "last.ckpt")])
    port = _free_port()
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    th = threading.Thread(target=srv.run, daemon=True)
    th.start()
    for _ in range(100):
        if srv.started:
            break
        time.sleep(0.1)
    yield f"http://127.0.0.1:{port}/"
    srv.should_exit = True
    th.join(10)


@pytest.fixture(scope="module")
def driver():
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    chromium, driver_path = shutil.which("chromium"), shutil.which("chromedriver")
    if not (chromium and driver_path):
        pytest.skip("needs Debian's chromium and chromium-driver (apt-get install chromium chromium-driver)")
    opts = Options()
    opts.binary_location = chromium
    for a in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1200,1100"):
        opts.add_argument(a)
    d = webdriver.Chrome(service=Service(driver_path), options=opts)
    yield d
    d.quit()


def test_upload_in_headless_chromium_shows_labels_and_timeline(server, driver, shared_data, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(server)
    wait = WebDriverWait(driver, 60)
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#model option"))
    clip = shared_data / "videos" / "clips" / "bottle-detection.mp4"  # 40 s: labels and a timeline
    driver.find_element(By.ID, "file").send_keys(str(clip))
    driver.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    wait.until(EC.visibility_of_element_located((By.ID, "cls")))  # the labels come first, then the timeline grows
    wait.until(lambda d: not d.find_element(By.ID, "status-text").text)  # done
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


def test_the_radar_forecast_viewer_in_headless_chromium(server, driver, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import Select, WebDriverWait

    driver.get(server)
    wait = WebDriverWait(driver, 60)
    wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#model option")) == 2)
    Select(driver.find_element(By.ID, "model")).select_by_value("m1")
    examples = Select(driver.find_element(By.ID, "example"))
    assert examples.options[1].text.startswith("test window 0")
    examples.select_by_index(2)
    driver.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    wait.until(EC.visibility_of_element_located((By.ID, "fc")))
    assert driver.find_element(By.ID, "lbl-input").text == "input +0 min"  # the slider starts at the first lead
    assert driver.find_element(By.ID, "lbl-forecast").text == "forecast +5 min"
    assert "colour scale: rain rate (mm/h)" in driver.find_element(By.ID, "fc-legend").text
    head = [c.text for c in driver.find_elements(By.CSS_SELECTOR, "#scores tr th")]
    assert head[:4] == ["lead (min)", "model \u22650.5 mm/h", "persistence \u22650.5 mm/h", "pysteps \u22650.5 mm/h"]
    rows = driver.find_elements(By.CSS_SELECTOR, "#scores tr")
    assert [r.find_element(By.TAG_NAME, "td").text for r in rows[1:]] == ["5", "10"]
    src = driver.find_element(By.ID, "img-forecast").get_attribute("src")
    slider = driver.find_element(By.ID, "slider")
    driver.execute_script("arguments[0].value = 4; arguments[0].dispatchEvent(new Event('input'))", slider)
    assert driver.find_element(By.ID, "slider-label").text == "lead time +10 min"
    assert driver.find_element(By.ID, "img-forecast").get_attribute("src") != src
    driver.find_element(By.CSS_SELECTOR, "input[name=scale][value=dBZ]").click()
    assert "colour scale: reflectivity (dBZ)" in driver.find_element(By.ID, "fc-legend").text
    shot = tmp_path / "forecast.png"
    driver.save_screenshot(str(shot))
    assert shot.stat().st_size > 10_000

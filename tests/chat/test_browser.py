"""A real browser: Debian's chromium, headless, driven by selenium through Debian's chromedriver.

`make test` installs both (apt) before pytest runs; nothing is installed or downloaded here. Set
FACR_SCREENSHOT=path to keep the screenshot (the README's picture is made that way on the demo models).
"""

import os
import shutil
from pathlib import Path

import pytest
from PIL import Image
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not Path(p).exists()]
    if missing:
        pytest.fail(f"{', '.join(missing)} missing: `make test` installs Debian's chromium and chromium-driver")
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", "--window-size=1500,1150",
                 f"--user-data-dir={tmp_path_factory.mktemp('chromium')}"):
        opts.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    try:
        yield driver
    finally:
        driver.quit()


def chat_text(driver) -> str:
    return driver.find_element(By.ID, "chat").text


def test_a_person_picks_a_face_uploads_a_photo_and_asks_a_what_if(browser, served, astronaut, explainer, tmp_path):
    from facr.chat import prepare_face

    url, _ = served
    wait = WebDriverWait(browser, 120)
    browser.get(url)
    wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, "#gallery button, #gallery img")))

    browser.find_elements(By.CSS_SELECTOR, "#gallery img")[0].click()  # a benchmark face from the gallery
    wait.until(lambda d: "gallery face 0" in chat_text(d) and "▌" not in chat_text(d))

    upload = browser.find_element(By.CSS_SELECTOR, "#face-input input[type=file]")
    upload.send_keys(str(astronaut))  # a real photo: detected, cropped, read
    expected = explainer.read(prepare_face(astronaut, explainer.image_size).pixels)
    wait.until(lambda d: "cropped" in chat_text(d) and "▌" not in chat_text(d) and "Ask me" in chat_text(d))
    assert f"I see {expected.predicted}" in chat_text(browser)
    assert expected.predicted in browser.find_element(By.ID, "emotion").text

    box = browser.find_element(By.CSS_SELECTOR, "#ask textarea")
    box.send_keys("what if AU12 were absent?", Keys.ENTER)
    wait.until(lambda d: "do(AU12 = 0)" in chat_text(d) and "reset" in chat_text(d))
    after = explainer.what_if(expected, {"AU12": 0.0})
    verdict = "changes" if after.predicted != expected.predicted else f"stays {after.predicted}"
    assert f"The prediction {verdict}" in chat_text(browser)

    shot = tmp_path / "chat.png"
    assert browser.save_screenshot(str(shot))
    w, h = Image.open(shot).size
    assert w >= 1200 and h >= 900
    if os.environ.get("FACR_SCREENSHOT"):
        shutil.copyfile(shot, os.environ["FACR_SCREENSHOT"])

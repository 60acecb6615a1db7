"""The SillyTavern extension (clients/sillytavern) inside the real SillyTavern 1.12.6 (the vendored tarball),
in headless Chromium, against a real Greenroom (talkinghead low_compute, classify, tts) started with --secure.

No LLM: messages go into the chat through SillyTavern's public API (getContext().chat, addOneMessage and
the events SillyTavern itself emits). Checks: the feed shows frames, a message changes that character's
emotion on the server (or the Expressions extension's label does), speech plays while the instance's
lip-sync utterance is playing and stopping generation stops both, a settings change reaches the instance,
old _animator.json files load (unknown filters dropped and named), an avatar the server lost is created again
with its settings and its feed resumes (and one lost after each re-creation is given up on, visibly), a
two-member group gives two instances,
slash commands work, a hidden tab pauses its instances, disabling the extension or leaving the page leaves no instance behind, a wrong key or a
stopped server gives a visible error, and it reconnects when a server comes up.
Screenshots go to test-artifacts/sillytavern/ (docs/sillytavern/ has copies).
"""
from __future__ import annotations

import io
import json
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
from PIL import Image

from .server_process import ROOT, ServerProcess, free_port
from .sillytavern_harness import SillyTavernProcess, prepare

pytestmark = pytest.mark.slow

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
ARTIFACTS = ROOT / "test-artifacts" / "sillytavern"
KEY = "st-test-key-1234"
GROUP_ID = "1700000000000"
# An _animator.json as SillyTavern-Extras users wrote them: old filter and parameter names.
OLD_ANIMATOR = {"target_fps": 10, "sway_macro_strength": 0.0,
                "postprocessor_chain": [["bloom", {"luma_threshold": 0.7, "hdr_exposure": 0.8}],
                                        ["alphanoise", {"magnitude": 0.1, "sigma": 0.0}],
                                        ["crt_warp", {"amount": 3}]]}


def character_png(name: str) -> bytes:
    out = io.BytesIO()
    Image.open(ROOT / "assets" / "characters" / f"{name}.png").save(out, "PNG")
    return out.getvalue()


@pytest.fixture(scope="module")
def greenroom_starting(tmp_path_factory):
    """Greenroom starting in the background (its models take a while) while SillyTavern and Chromium start."""
    folder = tmp_path_factory.mktemp("greenroom")
    (folder / "api_key.txt").write_text(KEY)
    config = folder / "plugins.toml"
    config.write_text(f'[modules.talkinghead]\ncache_dir = "{folder / "cache"}"\nmode = "low_compute"\n'
                      f'precompute_emotions = false\nmax_instances = 6\n\n'
                      f'[modules.talkinghead.animator]\ntarget_fps = 10\n')
    args = ["--config", str(config), "--secure", "--api-key-file", str(folder / "api_key.txt"),
            "--enable-modules=talkinghead,classify,tts"]
    with ThreadPoolExecutor(1) as pool:
        starting = pool.submit(ServerProcess, args)
        yield starting
        if starting.exception() is None:
            starting.result().stop()


@pytest.fixture(scope="module")
def greenroom(greenroom_starting):
    return greenroom_starting.result()


@pytest.fixture(scope="module")
def sillytavern(tmp_path_factory, greenroom_starting):
    home = prepare()
    data = tmp_path_factory.mktemp("st") / "data"
    lambda_00, lambda_01 = character_png("lambda_00"), character_png("lambda_01")
    extension = {"url": "http://127.0.0.1:5100", "apiKey": KEY, "enabled": True}  # the URL: see tavern
    st = SillyTavernProcess(home, data, extension_settings={"greenroom": extension})
    st.add_character("Alice", lambda_00, {"talkinghead.png": lambda_00, "fear.png": lambda_00,
                                          "_animator.json": json.dumps(OLD_ANIMATOR).encode()})
    st.add_character("Bob", lambda_01)
    st.add_group(GROUP_ID, "Duo", ["Alice.png", "Bob.png"])
    yield st
    st.stop()


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium (setup.sh does it: apt-get install chromium)")
    from playwright.sync_api import sync_playwright
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


class Tavern:
    """One SillyTavern tab; ``errors`` collects console errors and uncaught exceptions from our extension."""

    def __init__(self, browser, url: str) -> None:
        self.page = browser.new_page(viewport={"width": 1400, "height": 900})
        self.errors: list[str] = []
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(f"pageerror: {e}"))
        self.page.goto(url)
        self.page.wait_for_selector("#greenroom_settings", state="attached", timeout=120_000)
        self.page.wait_for_function("SillyTavern.getContext().characters.length >= 2", timeout=60_000)
        self.page.mouse.click(5, 5)  # a user gesture: the page may play audio from now on

    def ours(self) -> list[str]:
        return [e for e in self.errors if "greenroom" in e.lower()]

    def js(self, script: str, arg=None):
        return self.page.evaluate(script, arg)

    def open_chat(self, name: str) -> None:
        """A character's or a group's chat, by name (the /go command, as a user would type it)."""
        self.js("(name) => SillyTavern.getContext().executeSlashCommandsWithOptions(`/go ${name}`)", name)

    def say(self, name: str, text: str) -> None:
        """A character message, arriving as SillyTavern delivers a generated one."""
        self.js("""async ([name, text]) => { const c = SillyTavern.getContext();
            const ch = c.characters.find(x => x.name === name);
            const message = { name, is_user: false, is_system: false, send_date: new Date().toISOString(),
                              mes: text, original_avatar: ch.avatar, force_avatar: `/thumbnail?type=avatar&file=${encodeURIComponent(ch.avatar)}`, extra: {} };
            c.chat.push(message);
            const id = c.chat.length - 1;
            c.addOneMessage(message);
            await c.eventSource.emit(c.eventTypes.MESSAGE_RECEIVED, id);
            await c.eventSource.emit(c.eventTypes.CHARACTER_MESSAGE_RENDERED, id); }""", [name, text])

    def avatar(self, name: str):
        return self.page.locator(f"#greenroom_holder figure[data-character={name}]")

    def instance_id(self, name: str) -> str:
        self.avatar(name).wait_for(timeout=60_000)
        return self.avatar(name).get_attribute("data-instance-id")

    def wait_frames(self, name: str) -> None:
        self.page.wait_for_function(
            """(name) => { const img = document.querySelector(`#greenroom_holder figure[data-character=${name}] img`);
                           return img && img.naturalWidth >= 256; }""", arg=name, timeout=120_000)

    def open_settings(self) -> None:
        if not self.page.locator("#greenroom_url").is_visible():
            self.page.click("#extensionsMenuButton, #extensions-settings-button .drawer-toggle", timeout=10_000)
            self.page.locator("#greenroom_settings .inline-drawer-toggle").click()
        self.page.locator("#greenroom_url").wait_for(state="visible", timeout=10_000)

    def shot(self, name: str) -> None:
        """The page, and the avatar holder alone (docs/sillytavern/ has copies of these)."""
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(ARTIFACTS / f"{name}.png"))
        holder = self.page.locator("#greenroom_holder")
        if holder.is_visible():
            holder.screenshot(path=str(ARTIFACTS / f"{name}-holder.png"))


class Greenroom:
    def __init__(self, url: str) -> None:
        self.url = url
        self.headers = {"Authorization": f"Bearer {KEY}"}

    def get(self, path: str, **params):
        r = requests.get(self.url + path, params=params, headers=self.headers, timeout=30)
        r.raise_for_status()
        return r.json()

    def post(self, path: str, body: dict):
        r = requests.post(self.url + path, json=body, headers=self.headers, timeout=60)
        r.raise_for_status()
        return r.json() if r.headers.get("Content-Type", "").startswith("application/json") else r.text

    def instances(self) -> set[str]:
        return {i["instance_id"] for i in self.get("/api/talkinghead/instances")["instances"]}

    def status(self, iid: str) -> dict:
        return self.get("/api/talkinghead/status", instance_id=iid)

    def wait(self, what, timeout: float = 60, message: str = ""):
        deadline = time.monotonic() + timeout
        value = None
        while time.monotonic() < deadline:
            value = what()
            if value:
                return value
            time.sleep(0.25)
        raise AssertionError(f"{message or 'condition'} not met in {timeout} s (last: {value!r})")


@pytest.fixture(scope="module")
def server(greenroom):
    return Greenroom(greenroom.url)


@pytest.fixture(scope="module")
def tavern(sillytavern, browser, greenroom):
    sillytavern.set_extension_settings("greenroom", url=greenroom.url)  # SillyTavern reads them at page load
    tab = Tavern(browser, sillytavern.url)
    yield tab
    tab.page.close()


def test_one_character_gets_a_live_feed_from_its_sprite_folder(tavern, server):
    tavern.open_chat("Alice")
    iid = tavern.instance_id("Alice")
    assert iid.startswith("st-Alice-")
    tavern.wait_frames("Alice")
    assert iid in server.instances()
    status = server.status(iid)
    assert status["character"] == "talkinghead.png" and status["feeds"] >= 1
    sent = status["frames"]["sent"]
    server.wait(lambda: server.status(iid)["frames"]["sent"] >= sent + 5, 60, "the feed keeps sending frames")
    assert tavern.page.locator("#greenroom_status").get_attribute("data-state") == "ok"
    time.sleep(1.0)
    tavern.shot("01-one-avatar")


def test_old_animator_json_loads_with_unknown_filters_dropped_and_named(tavern, server):
    iid = tavern.instance_id("Alice")
    settings = server.get("/api/talkinghead/animator_settings", instance_id=iid)
    assert settings["target_fps"] == 10
    names = [entry[0] for entry in settings["postprocessor_chain"]]
    assert names == ["bloom", "noise"], names  # alphanoise translated, crt_warp dropped
    bloom, noise = (entry[1] for entry in settings["postprocessor_chain"])
    assert bloom["threshold"] == 0.7 and bloom["exposure"] == 0.8
    assert noise["channel"] == "A" and noise["strength"] == 0.1
    # the reply named the dropped entry; the extension shows it to the user (a toast, the avatar's tooltip)
    assert "unknown filter 'crt_warp' dropped" in tavern.avatar("Alice").get_attribute("title")


def test_a_message_sets_that_characters_emotion_on_the_server(tavern, server):
    iid = tavern.instance_id("Alice")
    text = "Thank you so much, I really appreciate your help! I am so grateful."
    expected = server.post("/api/classify", {"text": text})["classification"][0]["label"]
    assert expected != "neutral"
    server.post("/api/talkinghead/set_emotion", {"emotion_name": "neutral", "instance_id": iid})
    tavern.say("Alice", text)
    server.wait(lambda: server.status(iid)["emotion"] == expected, 60, f"emotion {expected}")
    assert tavern.avatar("Alice").get_attribute("data-emotion") == expected


def test_speech_plays_and_the_lip_sync_utterance_is_playing(tavern, server):
    iid = tavern.instance_id("Alice")
    tavern.js("""() => { window.__greenroomAudio = null;
        const play = HTMLMediaElement.prototype.play;
        HTMLMediaElement.prototype.play = function () {
            this.playbackRate = 0.5;  // long enough that the stop below always finds it playing
            this.addEventListener('playing', () => { window.__greenroomAudio = this; }, { once: true });
            return play.call(this); }; }""")
    tavern.open_settings()
    tavern.page.select_option("#greenroom_character", "Alice.png")
    tavern.page.locator("#greenroom_speak").check()
    tavern.say("Alice", '*waves happily* "Hello there, my friend! It is lovely to see you again."')
    tavern.page.wait_for_function("window.__greenroomAudio !== null", timeout=180_000)
    tavern.page.wait_for_function(
        "document.querySelector('#greenroom_holder figure[data-character=Alice]').dataset.lipsync === 'playing'",
        timeout=30_000)
    # the server agrees: a probe with another utterance id reads the state without stopping it
    probe = server.post("/api/talkinghead/speak/stop", {"instance_id": iid, "utterance_id": "probe"})["lipsync"]
    assert probe["utterance"]["state"] == "playing"
    tavern.shot("02-speaking")
    # the user stops generation: the audio and the mouth stop
    stopped = tavern.js("""() => { const fig = document.querySelector('#greenroom_holder figure[data-character=Alice]');
        if (fig.dataset.lipsync !== 'playing') return false;
        const c = SillyTavern.getContext(); c.eventSource.emit(c.eventTypes.GENERATION_STOPPED); return true; }""")
    assert stopped, "the speech ended before the stop"
    server.wait(lambda: server.post("/api/talkinghead/speak/stop", {"instance_id": iid, "utterance_id": "probe"})
                ["lipsync"]["cancelled"] == probe["cancelled"] + 1, 20, "speak/stop sent")
    assert tavern.js("() => window.__greenroomAudio.paused")
    assert tavern.avatar("Alice").get_attribute("data-lipsync") is None
    tavern.page.locator("#greenroom_speak").uncheck()


def test_the_emotion_can_come_from_the_expressions_extension(tavern, server):
    iid = tavern.instance_id("Alice")
    tavern.open_settings()
    tavern.page.select_option("#greenroom_character", "Alice.png")
    tavern.page.locator("#greenroom_speak").uncheck()
    tavern.page.select_option("#greenroom_emotion_source", "expressions")
    try:
        tavern.say("Alice", "The train leaves at nine tomorrow morning.")
        # Expressions labels the message (here the user forces its sprite); the avatar follows that label
        tavern.js("() => SillyTavern.getContext().executeSlashCommandsWithOptions('/sprite fear')")
        server.wait(lambda: server.status(iid)["emotion"] == "fear", 20, "the Expressions label")
    finally:
        tavern.page.select_option("#greenroom_emotion_source", "greenroom")


def test_a_settings_change_reaches_the_instance(tavern, server):
    iid = tavern.instance_id("Alice")
    tavern.open_settings()
    tavern.page.locator("#greenroom_animator_details summary").click()
    fps = tavern.page.locator("#greenroom_animator_target_fps")
    fps.fill("7")
    fps.dispatch_event("change")
    server.wait(lambda: server.get("/api/talkinghead/animator_settings", instance_id=iid)["target_fps"] == 7,
                20, "target_fps 7")
    # the chain editor is built from the filter catalogue
    tavern.page.locator("#greenroom_chain_details summary").click()
    tavern.page.select_option("#greenroom_chain_add_name", "desaturate")
    tavern.page.click("#greenroom_chain_add")
    server.wait(lambda: [e[0] for e in server.get("/api/talkinghead/animator_settings", instance_id=iid)
                         ["postprocessor_chain"]] == ["bloom", "noise", "desaturate"], 20, "desaturate added")
    strength = tavern.page.locator("#greenroom_chain_2_strength")
    strength.fill("0.5")
    strength.dispatch_event("change")
    server.wait(lambda: server.get("/api/talkinghead/animator_settings", instance_id=iid)
                ["postprocessor_chain"][2][1].get("strength") == 0.5, 20, "desaturate strength 0.5")
    saved = tavern.js("() => SillyTavern.getContext().extensionSettings.greenroom.characters['Alice.png'].animator")
    assert saved["target_fps"] == 7 and saved["postprocessor_chain"][2][0] == "desaturate"
    tavern.shot("03-settings")


def test_an_avatar_the_server_lost_is_created_again_with_its_settings(tavern, server):
    """A restarted server, or a replaced worker behind a balancer, answers 404 naming the instance: the extension
    loads the character again under the same id, with the same picture and animator settings, and the feed
    resumes, with nobody touching the page."""
    iid = tavern.instance_id("Alice")
    tavern.wait_frames("Alice")
    before = server.status(iid)
    settings = server.get("/api/talkinghead/animator_settings", instance_id=iid)
    assert settings["target_fps"] == 7 and settings["postprocessor_chain"][2][0] == "desaturate"
    server.post("/api/talkinghead/unload", {"instance_id": iid})  # behind the extension's back
    assert iid not in server.instances()
    server.wait(lambda: iid in server.instances(), 60, "Alice's instance created again")
    keys = ("character", "image_digest", "emotion")
    again = server.status(iid)
    assert [again[k] for k in keys[:2]] == [before[k] for k in keys[:2]]  # the load itself carries the picture
    # the emotion follows the load in a separate request: wait for it rather than race it
    server.wait(lambda: server.status(iid)["emotion"] == before["emotion"], 30, f"the emotion {before['emotion']} again")
    server.wait(lambda: server.get("/api/talkinghead/animator_settings", instance_id=iid) == settings, 30,
                "the same animator settings")
    server.wait(lambda: server.status(iid)["feeds"] >= 1, 30, "the feed reopened")
    sent = server.status(iid)["frames"]["sent"]
    server.wait(lambda: server.status(iid)["frames"]["sent"] > sent, 30, "frames flowing again")
    tavern.page.wait_for_function("document.querySelector('#greenroom_holder figure[data-character=Alice]')"
                                  ".dataset.state === 'live'", timeout=30_000)
    assert tavern.avatar("Alice").get_attribute("data-instance-id") == iid
    assert not tavern.ours(), tavern.ours()


def test_an_avatar_lost_again_after_each_re_creation_is_given_up_on(tavern, server):
    """No reload loop: the extension creates a lost avatar again a few times (with growing delays), then greys it
    out and says why in the status line; Connect loads it again."""
    iid = tavern.instance_id("Alice")
    lost = "document.querySelector('#greenroom_holder figure[data-character=Alice]').dataset.state === 'lost'"
    created_again = -1  # the first unload is of the original
    deadline = time.monotonic() + 150
    while not tavern.js(lost):
        assert time.monotonic() < deadline, f"the extension never gave up ({created_again} re-creations)"
        if iid in server.instances():
            created_again += 1
            server.post("/api/talkinghead/unload", {"instance_id": iid})
        time.sleep(0.3)
    assert created_again <= 3
    assert "could not be created again" in tavern.page.locator("#greenroom_status").text_content()
    time.sleep(8)  # longer than the longest back-off: no further try
    assert iid not in server.instances()
    tavern.open_settings()
    tavern.page.click("#greenroom_connect")
    server.wait(lambda: iid in server.instances(), 60, "Connect loads it again")
    tavern.wait_frames("Alice")
    assert not tavern.ours(), tavern.ours()


def test_a_two_member_group_gives_two_instances(tavern, server):
    tavern.open_chat("Duo")
    alice, bob = tavern.instance_id("Alice"), tavern.instance_id("Bob")
    assert alice != bob and {alice, bob} <= server.instances()
    assert server.status(bob)["character"] == "lambda_00"  # no talkinghead.png: the example character
    tavern.wait_frames("Alice")
    tavern.wait_frames("Bob")
    text = "Oh no, this is terrible. I am so sad and disappointed."
    expected = server.post("/api/classify", {"text": text})["classification"][0]["label"]
    tavern.say("Bob", text)
    server.wait(lambda: server.status(bob)["emotion"] == expected, 60, f"Bob's emotion {expected}")
    assert "greenroom-speaking" in tavern.avatar("Bob").get_attribute("class")
    assert "greenroom-speaking" not in tavern.avatar("Alice").get_attribute("class")
    time.sleep(1.0)
    tavern.shot("04-group")


def test_slash_commands_set_emotion_and_pose(tavern, server):
    bob = tavern.instance_id("Bob")
    result = tavern.js("""async () => (await SillyTavern.getContext()
        .executeSlashCommandsWithOptions('/greenroom-emotion char=Bob surprise')).pipe""")
    assert result == "surprise"
    server.wait(lambda: server.status(bob)["emotion"] == "surprise", 20, "surprise")
    tavern.js("async () => SillyTavern.getContext().executeSlashCommandsWithOptions('/greenroom-pose char=Bob look_left')")
    server.wait(lambda: server.status(bob)["hint"] == "look_left", 20, "pose hint")
    tavern.js("async () => SillyTavern.getContext().executeSlashCommandsWithOptions('/greenroom-talk char=Bob start')")
    server.wait(lambda: server.status(bob)["talking"], 20, "talking")
    tavern.js("async () => SillyTavern.getContext().executeSlashCommandsWithOptions('/greenroom-talk char=Bob stop')")
    server.wait(lambda: not server.status(bob)["talking"], 20, "not talking")


def test_a_hidden_tab_pauses_its_instances_and_closes_its_feeds(tavern, server):
    ids = [tavern.instance_id("Alice"), tavern.instance_id("Bob")]
    hide = """(hidden) => { Object.defineProperty(document, 'hidden', { configurable: true, get: () => hidden });
                            document.dispatchEvent(new Event('visibilitychange')); }"""
    tavern.js(hide, True)
    try:
        for iid in ids:
            server.wait(lambda: (s := server.status(iid))["paused"] and s["feeds"] == 0, 20, f"{iid} paused")
    finally:
        tavern.js(hide, False)
    for iid in ids:
        server.wait(lambda: not (s := server.status(iid))["paused"] and s["feeds"] >= 1, 20, f"{iid} running")


def test_disabling_the_extension_leaves_no_instance_behind(tavern, server):
    ours = {tavern.instance_id("Alice"), tavern.instance_id("Bob")}
    tavern.open_settings()
    tavern.page.locator("#greenroom_enabled").uncheck()
    server.wait(lambda: not (ours & server.instances()), 20, "instances unloaded")
    assert tavern.page.locator("#greenroom_holder figure").count() == 0
    tavern.page.locator("#greenroom_enabled").check()
    server.wait(lambda: ours <= server.instances(), 60, "instances back")
    assert not tavern.ours(), tavern.ours()


def test_leaving_the_page_leaves_no_instance_behind(sillytavern, browser, server, tavern):
    bob = tavern.instance_id("Bob")
    tavern.open_chat("Alice")  # the first tab lets go of Bob (instance ids are per character, not per tab)
    server.wait(lambda: bob not in server.instances(), 20, "Bob unloaded by the chat change")
    tab = Tavern(browser, sillytavern.url)
    try:
        tab.open_chat("Bob")
        iid = tab.instance_id("Bob")
        tab.wait_frames("Bob")
        assert iid in server.instances()
        tab.page.goto("about:blank")  # SillyTavern reloads the page to disable an extension: same path
        server.wait(lambda: iid not in server.instances(), 20, "Bob unloaded on pagehide")
    finally:
        tab.page.close()
        tavern.open_chat("Duo")


def test_a_wrong_key_or_a_stopped_server_gives_a_visible_error(tavern):
    tavern.open_settings()
    page = tavern.page
    page.fill("#greenroom_key", "wrong-key")
    page.click("#greenroom_connect")
    status = page.locator("#greenroom_status")
    page.wait_for_function("document.getElementById('greenroom_status').dataset.state === 'error'", timeout=20_000)
    assert "API key" in status.inner_text() and "401" in status.inner_text()
    assert status.is_visible()
    tavern.shot("05-wrong-key")
    nobody = f"http://127.0.0.1:{free_port()}"
    page.fill("#greenroom_key", KEY)
    page.fill("#greenroom_url", nobody)
    page.click("#greenroom_connect")
    page.wait_for_function("document.getElementById('greenroom_status').textContent.includes('not reachable')",
                           timeout=20_000)
    assert page.locator("#greenroom_status_dot").get_attribute("data-state") == "error"


def test_it_reconnects_when_the_server_comes_back(tavern, tmp_path):
    """A server that is down at first: the status says so, and when it starts the avatars come back by themselves."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    page = tavern.page
    tavern.open_settings()
    page.fill("#greenroom_key", KEY)
    page.fill("#greenroom_url", url)
    page.click("#greenroom_connect")
    page.wait_for_function("document.getElementById('greenroom_status').textContent.includes('not reachable')",
                           timeout=20_000)
    config = tmp_path / "plugins.toml"
    config.write_text(f'[modules.talkinghead]\ncache_dir = "{tmp_path / "cache"}"\nmode = "low_compute"\n'
                      'precompute_emotions = false\n')
    log = open(tmp_path / "greenroom.log", "wb")
    proc = subprocess.Popen([sys.executable, str(ROOT / "server.py"), "--port", str(port), "--config", str(config),
                             "--enable-modules=talkinghead"], cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    try:
        page.wait_for_function("document.getElementById('greenroom_status').dataset.state === 'ok'", timeout=180_000)
        assert "Without classify and tts" in page.locator("#greenroom_status").inner_text()
        tavern.wait_frames("Alice")
        tavern.wait_frames("Bob")
        ids = {i["instance_id"] for i in requests.get(f"{url}/api/talkinghead/instances").json()["instances"]}
        assert tavern.instance_id("Alice") in ids and tavern.instance_id("Bob") in ids
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()

"""The real SillyTavern 1.12.6 (the vendored tarball), installed once and run headless for browser tests.

``prepare()`` unpacks the tarball and runs ``npm ci`` into a cache folder keyed by the tarball's hash
(``~/.cache/greenroom-st/<hash>/sillytavern``), so CI pays for the install once. ``SillyTavernProcess``
starts ``node server.js`` from there on a free port with a private data folder: config and settings made
for unattended runs (no onboarding popup, no autorun, no auto-update), our extension linked into the
user's extensions folder, and whatever characters, chats and groups a test seeds.

``python -m tests.sillytavern_harness`` prepares the cache (CI can run it as a separate step).
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import tarfile
import time
from pathlib import Path

import requests

from .server_process import ROOT, free_port

TARBALL = ROOT.parent / "shared" / "vendor" / "sillytavern-1.12.6.tar.gz"
EXTENSION = ROOT / "clients" / "sillytavern"
CACHE = Path(os.environ.get("GREENROOM_ST_CACHE", Path.home() / ".cache" / "greenroom-st"))
DONE = ".greenroom-npm-ci-done"
CONFIG = """dataRoot: ./data
listen: false
port: {port}
whitelistMode: true
enableForwardedWhitelist: true
whitelist:
  - ::1
  - 127.0.0.1
basicAuthMode: false
enableUserAccounts: false
autorun: false
skipContentCheck: true
enableExtensions: true
enableExtensionsAutoUpdate: false
disableThumbnails: true
extras:
  disableAutoDownload: true
  classificationModel: Cohee/distilbert-base-uncased-go-emotions-onnx
  captioningModel: Xenova/vit-gpt2-image-captioning
  embeddingModel: Cohee/jina-embeddings-v2-base-en
  promptExpansionModel: Cohee/fooocus_expansion-onnx
  speechToTextModel: Xenova/whisper-small
  textToSpeechModel: Xenova/speecht5_tts
"""


def tarball() -> Path:
    """The vendored tarball: beside the repository (``../shared/vendor``) or named by GREENROOM_ST_TARBALL."""
    path = Path(os.environ.get("GREENROOM_ST_TARBALL", TARBALL))
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: the SillyTavern tests need the vendored 1.12.6 tarball "
                                "(set GREENROOM_ST_TARBALL to its path)")
    return path


def prepare() -> Path:
    """The installed SillyTavern folder (unpacked and ``npm ci``-ed on first use; later calls reuse it)."""
    tar = tarball()
    missing = [tool for tool in ("node", "npm") if shutil.which(tool) is None]
    if missing:
        raise FileNotFoundError(f"{' and '.join(missing)} not found: the SillyTavern tests need Node.js 20 and npm")
    key = hashlib.sha256(tar.read_bytes()).hexdigest()[:16]
    home = CACHE / key / "sillytavern"
    if (home / DONE).exists():
        return home
    staging = CACHE / key / "staging"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    with tarfile.open(tar) as archive:
        archive.extractall(staging, filter="data")
    unpacked = staging / "sillytavern"
    subprocess.run(["npm", "ci", "--no-audit", "--no-fund", "--omit=dev", "--loglevel=error"], cwd=unpacked,
                   check=True, timeout=900, env={**os.environ, "npm_config_update_notifier": "false"})
    (unpacked / DONE).write_text(key)
    shutil.rmtree(home, ignore_errors=True)
    unpacked.rename(home)
    shutil.rmtree(staging, ignore_errors=True)
    return home


class SillyTavernProcess:
    """``node server.js`` on a free 127.0.0.1 port with its own data root; ``url`` is its base URL."""

    def __init__(self, home: Path, data_root: Path, extension_settings: dict | None = None,
                 startup_timeout: float = 120) -> None:
        self.home, self.data_root = home, data_root
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.user = data_root / "default-user"
        self._seed_user(extension_settings or {})
        (home / "config.yaml").write_text(CONFIG.format(port=self.port))
        self.log_path = data_root.parent / f"sillytavern-{self.port}.log"
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            ["node", "server.js", "--port", str(self.port), "--dataRoot", str(data_root), "--listen", "false",
             "--autorun", "false"], cwd=home, stdout=self._log, stderr=subprocess.STDOUT,
            env={**os.environ, "NODE_ENV": "production"}, start_new_session=True)
        self._wait_ready(startup_timeout)

    def _seed_user(self, extension_settings: dict) -> None:
        """A user folder that starts without onboarding, with the extension installed (a symlink)."""
        for sub in ("characters", "chats", "groups", "group chats", "extensions", "User Avatars", "backgrounds"):
            (self.user / sub).mkdir(parents=True, exist_ok=True)
        settings = json.loads((self.home / "default" / "content" / "settings.json").read_text())
        settings["firstRun"] = False
        settings.setdefault("power_user", {})["auto_connect"] = False
        settings.setdefault("extension_settings", {}).update(extension_settings)
        (self.user / "settings.json").write_text(json.dumps(settings))
        link = self.user / "extensions" / "greenroom"
        if not link.exists():
            link.symlink_to(EXTENSION, target_is_directory=True)

    def set_extension_settings(self, name: str, **values) -> None:
        """Change an extension's saved settings (the page reads them when it loads)."""
        path = self.user / "settings.json"
        settings = json.loads(path.read_text())
        settings.setdefault("extension_settings", {}).setdefault(name, {}).update(values)
        path.write_text(json.dumps(settings))

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"SillyTavern exited with {self.proc.returncode}:\n{self.log()}")
            try:
                if requests.get(self.url + "/", timeout=2).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.3)
        self.stop()
        raise RuntimeError(f"SillyTavern not ready after {timeout} s:\n{self.log()}")

    def add_character(self, name: str, avatar_png: bytes, sprites: dict[str, bytes] | None = None) -> str:
        """A character card ``<name>.png`` (a PNG with a ``chara`` text chunk) and its sprite folder files."""
        from PIL import Image, PngImagePlugin
        import base64
        import io
        card = {"name": name, "description": "", "personality": "", "scenario": "", "first_mes": "",
                "mes_example": "", "spec": "chara_card_v2", "spec_version": "2.0",
                "data": {"name": name, "description": "", "personality": "", "scenario": "", "first_mes": "",
                         "mes_example": "", "tags": [], "extensions": {}}}
        info = PngImagePlugin.PngInfo()
        info.add_text("chara", base64.b64encode(json.dumps(card).encode()).decode())
        out = io.BytesIO()
        Image.open(io.BytesIO(avatar_png)).save(out, "PNG", pnginfo=info)
        (self.user / "characters" / f"{name}.png").write_bytes(out.getvalue())
        folder = self.user / "characters" / name
        folder.mkdir(exist_ok=True)
        for filename, data in (sprites or {}).items():
            (folder / filename).write_bytes(data)
        return f"{name}.png"

    def add_group(self, group_id: str, name: str, members: list[str]) -> None:
        """A group chat of ``members`` (avatar file names) with an empty chat."""
        chat_id = f"{name} - chat"
        group = {"id": group_id, "name": name, "members": members, "avatar_url": "", "allow_self_responses": False,
                 "activation_strategy": 0, "generation_mode": 0, "disabled_members": [], "chat_metadata": {},
                 "fav": False, "chat_id": chat_id, "chats": [chat_id]}
        (self.user / "groups" / f"{group_id}.json").write_text(json.dumps(group))
        (self.user / "group chats" / f"{chat_id}.jsonl").write_text("")

    def log(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        if not self._log.closed:
            self._log.close()


if __name__ == "__main__":
    print(prepare())

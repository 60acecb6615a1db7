"""Shipped assets and the user's own data (greenroom/paths.py): user files first, then the shipped ones."""
from __future__ import annotations

import json

import numpy as np
import platformdirs
import pytest
from PIL import Image

from greenroom.paths import DATA_DIR_ENV, assets_dir, cache_dir, data_dir, find
from greenroom_modules.talkinghead import pose as P
from greenroom_modules.talkinghead.images import character_names, load_named
from greenroom_modules.talkinghead.settings import TalkingheadSettings, server_defaults
from greenroom_modules.talkinghead.templates_store import SETS_DIR_ENV, StoreError, TemplateStore

from .server_process import ROOT


@pytest.fixture
def data(tmp_path, monkeypatch):
    monkeypatch.setenv(DATA_DIR_ENV, str(tmp_path / "data"))
    monkeypatch.delenv(SETS_DIR_ENV, raising=False)
    return tmp_path / "data"


def red_character(path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGBA", (512, 512), (255, 0, 0, 255)).save(path)


def test_the_checkout_ships_its_assets_folder():
    assert assets_dir() == ROOT / "assets"
    assert (assets_dir() / "characters" / "lambda_00.png").is_file()


def test_data_and_cache_folders_follow_the_environment(data, monkeypatch):
    assert data_dir() == data and cache_dir() == data / "cache"
    assert TalkingheadSettings().cache_dir == str(data / "cache" / "talkinghead")
    assert TalkingheadSettings(cache_dir="").cache_dir == ""  # "" still disables the disk cache
    monkeypatch.delenv(DATA_DIR_ENV)
    assert data_dir() == platformdirs.user_data_path("greenroom")
    assert TalkingheadSettings().cache_dir == str(platformdirs.user_cache_path("greenroom") / "talkinghead")


def test_a_users_character_comes_before_the_shipped_one_of_that_name(data):
    red_character(data / "characters" / "lambda_00.png")
    red_character(data / "characters" / "mine.png")
    assert {"lambda_00", "lambda_01", "mine"} <= set(character_names())
    assert load_named("lambda_00")[256, 256, 0] == pytest.approx(1.0)  # the user's red one
    assert load_named("lambda_01")[256, 256, 0] != pytest.approx(1.0)  # shipped
    with pytest.raises(ValueError, match="not a valid name"):
        load_named("../characters/mine")
    with pytest.raises(ValueError, match="no character named 'nobody'"):
        load_named("nobody")


def test_operator_animator_settings_in_the_user_folder_win(data):
    shipped = json.loads((assets_dir() / "settings" / "animator.json").read_text())
    assert find("settings/animator.json") == assets_dir() / "settings" / "animator.json"
    target = data / "settings" / "animator.json"
    target.parent.mkdir(parents=True)
    target.write_text(json.dumps({"target_fps": 7}))
    assert find("settings/animator.json") == target
    assert server_defaults()["target_fps"] == 7 != shipped.get("target_fps")


def test_sets_are_saved_for_the_user_and_read_before_shipped_ones(data, tmp_path):
    shipped = tmp_path / "shipped"
    shipped.mkdir()
    (shipped / "stage.json").write_text(json.dumps({"joy": {"eye_happy_wink_left_index": 0.5}}))
    store = TemplateStore(shipped=shipped)
    assert store.folder == data / "emotions" / "sets"
    assert [(s["name"], s["read_only"]) for s in store.names()] == [("stage", True)]
    assert store.load("stage")["joy"][P.INDEX["eye_happy_wink_left_index"]] == pytest.approx(0.5)
    with pytest.raises(StoreError) as refused:
        store.delete("stage")
    assert refused.value.status == 409
    store.save("stage", {"joy": np.full(len(P.MORPHS), 0.25, dtype=np.float32)})
    assert [(s["name"], s["read_only"]) for s in store.names()] == [("stage", False)]
    assert store.load("stage")["joy"][0] == pytest.approx(0.25)
    store.delete("stage")  # the user's copy goes; the shipped one is back
    assert store.load("stage")["joy"][P.INDEX["eye_happy_wink_left_index"]] == pytest.approx(0.5)
    assert (shipped / "stage.json").is_file()

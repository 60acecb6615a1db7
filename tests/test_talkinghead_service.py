"""talkinghead's Avatars service (contract.py), as another module uses it: in process, real THA3 weights on
the CPU, no HTTP. Plus the crop geometry that the feed's frames carry."""
from __future__ import annotations

import io

import pytest
from PIL import Image

from greenroom.errors import BadRequest, Error
from greenroom_modules.talkinghead.contract import MORPHS, Avatars
from greenroom_modules.talkinghead.instance import crop_box
from greenroom_modules.talkinghead.settings import AnimatorSettings

from .server_process import ROOT

CHARACTER = (ROOT / "assets" / "characters" / "lambda_00.png").read_bytes()


@pytest.fixture(scope="module")
def avatars():
    from greenroom.app import create_app
    from greenroom.config import HostConfig, ServerSettings
    app = create_app(HostConfig(server=ServerSettings(enable_modules=["talkinghead"], api_key_file="/dev/null/none"),
                                modules={"talkinghead": {"cache_dir": "", "precompute_emotions": False}}))
    service = app.extensions["greenroom"].context.service(Avatars)
    yield service
    app.extensions["greenroom"].shutdown()


def test_crop_box_in_ex_units():
    assert crop_box(512, 512, AnimatorSettings()) is None
    assert crop_box(512, 512, AnimatorSettings(crop_left=0.5, crop_bottom=0.25)) == (128, 0, 512, 448)
    assert crop_box(10, 10, AnimatorSettings(crop_left=0.9, crop_right=0.9)) is None  # under 8 pixels left


def test_service_drives_an_instance_and_its_frames_carry_the_geometry(avatars):
    assert isinstance(avatars, Avatars) and len(MORPHS) == 45
    first, second = avatars.create(CHARACTER, "lambda"), avatars.create(CHARACTER, "lambda")
    assert first != second
    try:
        warnings = avatars.load_settings(first, {"target_fps": 10, "postprocessor_chain": [], "crop_left": 0.5,
                                                 "upscale": 2.0, "upscale_method": "bilinear", "no_such": 1})
        assert warnings == ["unknown setting 'no_such' ignored"]
        avatars.set_emotion(first, "joy")
        avatars.set_talking(first, True)
        avatars.modify_overrides(first, "set", {"mouth_aaa_index": 0.5})
        avatars.modify_overrides(first, "unset", {"mouth_aaa_index": 123.0})  # unset ignores values
        frames = avatars.feed(first)
        frame = next(f for f in frames if f.crop is not None)  # frames from before the settings may come first
        assert frame.full_size == (1024, 1024) and frame.crop == (0.25, 0.0, 1.0, 1.0)
        assert (frame.width, frame.height) == (768, 1024) and frame.media_type == "image/png"
        assert Image.open(io.BytesIO(frame.data)).size == (768, 1024)
        assert frame.stats["target_fps"] == 10.0 and frame.stats["pose_ms"] > 0
        avatars.reload(first, CHARACTER, "again")
        assert avatars.delete(first) and not avatars.delete(first)
        assert next(frames, None) is None  # the feed ends with its instance
    finally:
        avatars.delete(first)
        avatars.delete(second)


def test_service_errors_name_the_field_or_the_instance(avatars):
    with pytest.raises(Error) as gone:
        avatars.set_paused("no-such", True)
    assert gone.value.status == 404 and gone.value.extra["instance_id"] == "no-such"
    with pytest.raises(Error) as no_feed:
        avatars.feed("no-such")
    assert no_feed.value.status == 404
    with pytest.raises(Error) as not_image:
        avatars.create(b"not an image")
    assert not_image.value.status == 400 and not_image.value.extra["field"] == "file"
    instance_id = avatars.create(CHARACTER, paused=True)
    try:
        with pytest.raises(BadRequest) as emotion:
            avatars.set_emotion(instance_id, "glee")
        assert emotion.value.extra["field"] == "emotion_name" and "joy" in avatars.emotions(instance_id)
        with pytest.raises(BadRequest) as morph:
            avatars.set_overrides(instance_id, {"eye_wink_left_index": 2.0})
        assert morph.value.extra["field"] == "eye_wink_left_index"
        with pytest.raises(BadRequest) as template:
            avatars.load_templates(instance_id, {"joy": {"no_morph": 1.0}})
        assert template.value.extra["field"] == "no_morph"
        with pytest.raises(BadRequest) as setting:
            avatars.load_settings(instance_id, {"format": "GIF"})
        assert setting.value.extra["field"] == "format"
    finally:
        avatars.delete(instance_id)

"""The kiosk's voice, in the real Kivy window under X (tests/kiosk/driver.py "voice" and
"voice_arrival"): the listen button's WAV is espeak-ng's reading of the screen's words in
the screen's language (checked against espeak-ng run here on the expected words), the cache,
a recorded file first, silence without a voice or a sound device; speak_on_arrival plays
through a real SDL audio device (SDL's disk driver writes what it plays to a file)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import wave
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from test_ui import run_scenario  # noqa: E402

from kiosk.i18n import Localizer  # noqa: E402
from kiosk.voice import Voice, spoken_text  # noqa: E402

pytestmark = pytest.mark.skipif(shutil.which("espeak-ng") is None,
                                reason="espeak-ng is not installed (scripts/setup.sh)")


def espeak(voice: str, text: str, out: Path) -> bytes:
    subprocess.run(["espeak-ng", "-v", voice, "-w", str(out), "--stdin"], input=text.encode(),
                   check=True, timeout=30)
    return out.read_bytes()


def no_sound_env(env: dict[str, str], tmp_path: Path) -> dict[str, str]:
    """ALSA with an empty configuration: there is no sound device at all."""
    empty = tmp_path / "alsa.conf"
    empty.write_text("")
    return {**env, "SDL_AUDIODRIVER": "alsa", "ALSA_CONFIG_PATH": str(empty)}


def test_listen_speaks_each_screen_in_its_language(kiosk_env: dict[str, str], artifacts: Path,
                                                   tmp_path: Path) -> None:
    run_scenario("voice", no_sound_env(kiosk_env, tmp_path), artifacts)
    spoken = json.loads((artifacts / "voice" / "voice.json").read_text())
    for lang, voice in (("fr", "fr"), ("ar", "ar")):
        L = Localizer(lang)
        for screen, words in (("welcome", ["Welcome to the Community Access Center",
                                           "Start with a voucher", "Ask the operator",
                                           "Offline library"]),
                              ("operator", ["Please go to the counter. The operator will "
                                            "start your session on this station.", "Back"])):
            ev = spoken[f"{lang}-{screen}"]
            assert ev["source"] == "espeak-ng" and ev["lang"] == lang, ev
            lines = ev["text"].split("\n")
            # the screen's words in its language, in reading order
            wanted = [L.t(w) for w in words]
            assert [ln for ln in lines if ln in wanted] == wanted, (lines, wanted)
            assert "Listen" not in lines and L.t("Larger text") not in lines
            wav = Path(ev["path"])
            assert wav.parent == artifacts / "voice" / "state" / "voice-cache"
            with wave.open(str(wav)) as w:
                assert w.getnchannels() == 1 and w.getframerate() == 22050
                assert w.getnframes() / w.getframerate() > 1.0  # seconds of speech
            # the file is espeak-ng's reading of exactly those words, with that voice
            assert wav.read_bytes() == espeak(voice, ev["text"], tmp_path / "expected.wav")
            assert wav.with_suffix(".txt").read_text(encoding="utf-8") == \
                f"{voice}\n{ev['text']}"
            # no sound device: nothing played, and no error
            assert ev["played"] is False
    assert spoken["ar-welcome-again"]["path"] == spoken["ar-welcome"]["path"]
    assert spoken["ar-welcome-again"]["detail"] == "cached"
    # Arabic and French words differ, so do their files
    assert spoken["ar-welcome"]["path"] != spoken["fr-welcome"]["path"]
    # recordings win: Tamazight (no espeak-ng voice) and French (which has one)
    rec = artifacts / "voice" / "recorded-voice"
    assert spoken["zgh-welcome"]["source"] == "recorded"
    assert spoken["zgh-welcome"]["path"] == str(rec / "zgh" / "welcome.wav")
    assert spoken["fr-operator-recorded"]["source"] == "recorded"
    assert spoken["fr-operator-recorded"]["path"] == str(rec / "fr" / "operator.wav")
    # Tamazight without a recording: silent, said in the trace only
    assert spoken["zgh-operator"]["source"] == "no-voice"
    assert spoken["zgh-operator"]["path"] is None
    # an open dialog speaks its own words, not the screen under it
    notice = spoken["fr-notice"]
    fr = Localizer("fr")
    assert notice["screen"] == "notice"
    assert fr.t("This application could not be opened. Please ask the operator.") \
        in notice["text"].split("\n")
    assert fr.t("Welcome to the Community Access Center") not in notice["text"]


def test_speak_on_arrival_plays_through_the_sound_device(kiosk_env: dict[str, str],
                                                         artifacts: Path,
                                                         tmp_path: Path) -> None:
    out = tmp_path / "sdl-audio.raw"
    env = {**kiosk_env, "SDL_AUDIODRIVER": "disk", "SDL_DISKAUDIOFILE": str(out)}
    run_scenario("voice_arrival", env, artifacts)
    spoken = json.loads((artifacts / "voice_arrival" / "voice.json").read_text())
    assert spoken["welcome"]["played"] is True and spoken["operator"]["played"] is True
    assert spoken["back"]["screen"] == "welcome" and spoken["back"]["played"] is True
    assert spoken["operator"]["source"] == "espeak-ng"
    # the device received sound: SDL's disk driver wrote the samples it was given
    assert out.is_file() and out.stat().st_size > 22050


def test_no_espeak_and_no_words_are_silent(tmp_path: Path) -> None:
    v = Voice(tmp_path / "cache", tmp_path / "rec", espeak=None)
    v.espeak = None
    assert v.prepare("fr", "welcome", "Bonjour").source == "no-voice"
    assert Voice(tmp_path / "c2", None).prepare("fr", "welcome", "  ").path is None
    assert not (tmp_path / "cache").exists()


def test_spoken_text_is_empty_for_an_empty_screen() -> None:
    from kivy.uix.widget import Widget
    assert spoken_text(Widget()) == ""


def test_voice_config_keys(tmp_path: Path) -> None:
    from kiosk.config import ConfigError, load_config, parse_config

    assert parse_config({}).speak_on_arrival is False
    with pytest.raises(ConfigError, match="speak_on_arrival"):
        parse_config({"speak_on_arrival": "yes"})
    toml = tmp_path / "kiosk.toml"
    toml.write_text('speak_on_arrival = true\nrecorded_voice_dir = "voices"\n')
    cfg = load_config(toml)
    assert cfg.speak_on_arrival is True and cfg.recorded_voice_dir == tmp_path / "voices"

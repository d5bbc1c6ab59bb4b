"""The kiosk's voice: the "listen" button speaks the screen's main text and its choices.

A recorded file for the screen wins (``<recorded_voice_dir>/<lang>/<screen>.wav``, or
``.ogg``/``.mp3``: Tamazight has no synthetic voice, and a CAC may prefer a person's voice
for any language); else espeak-ng speaks the text (Arabic, French, English), into a WAV
cached in the state directory under a hash of the voice and the text. Playback goes through
Kivy's SoundLoader; without a sound device, or without espeak-ng, the kiosk stays silent
and says so in its log and trace, never to the citizen.

``spoken_text(root)`` reads the words off the widgets in reading order; ``Voice.prepare``
(blocking: run it off the UI thread) gives the file to play; ``Player.play`` plays it.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kivy.uix.widget import Widget

from kiosk.widgets import KButton, KLabel, reading_order

log = logging.getLogger(__name__)

# kiosk language -> espeak-ng voice; no Tamazight voice exists (recorded files only)
ESPEAK_VOICES = {"ar": "ar", "fr": "fr", "en": "en"}
RECORDED_EXTS = (".wav", ".ogg", ".mp3")
ESPEAK_TIMEOUT = 30.0
CACHE_FILES = 300  # generated WAVs kept (the oldest go first)
# buttons that are not the screen's choices: keypad keys, the header's own buttons
SILENT_KIDS = frozenset({"listen", "large_text", "lang_menu"})
SILENT_KID_PREFIXES = ("key_", "pin_", "lang_", "search_")
# screens whose words change with each visit: a recording could not say them
UNRECORDABLE = frozenset({"message"})


def spoken_text(root: Widget) -> str:
    """The words of a screen in reading order, one line each: labels and action buttons
    (not the keypad keys, not the header's text-size and language buttons)."""
    lines: list[str] = []
    for w in reading_order(root):
        if not isinstance(w, KLabel) or not w.src.strip():
            continue
        if isinstance(w, KButton):
            kid = str(w.kid)
            if kid in SILENT_KIDS or kid.startswith(SILENT_KID_PREFIXES) or not w.enabled:
                continue
        text = " ".join(w.src.split())
        if any(c.isalnum() for c in text) and text not in lines:
            lines.append(text)
    return "\n".join(lines)


@dataclass(frozen=True)
class Speech:
    """What to play: ``path`` (None: nothing can say it), from ``source``."""

    path: Path | None
    source: str  # "recorded", "espeak-ng", or why there is nothing: "no-voice", "error"
    detail: str = ""


class Voice:
    """Finds or makes the sound file that says a screen (blocking calls)."""

    def __init__(self, cache_dir: Path, recorded_dir: Path | None,
                 espeak: str | None = None) -> None:
        self.cache_dir = cache_dir
        self.recorded_dir = recorded_dir
        self.espeak = espeak if espeak is not None else shutil.which("espeak-ng")

    def recorded(self, lang: str, key: str) -> Path | None:
        if self.recorded_dir is None or key in UNRECORDABLE:
            return None
        for ext in RECORDED_EXTS:
            p = self.recorded_dir / lang / f"{key}{ext}"
            if p.is_file():
                return p
        return None

    def cached_path(self, lang: str, text: str) -> Path:
        voice = ESPEAK_VOICES.get(lang, "")
        digest = hashlib.sha256(f"{voice}\0{text}".encode()).hexdigest()[:32]
        return self.cache_dir / f"{lang}-{digest}.wav"

    def synthesize(self, lang: str, text: str) -> Speech:
        voice = ESPEAK_VOICES.get(lang)
        if voice is None:
            return Speech(None, "no-voice", f"espeak-ng has no voice for {lang}")
        if self.espeak is None:
            return Speech(None, "no-voice", "espeak-ng is not installed")
        target = self.cached_path(lang, text)
        if target.is_file():
            os.utime(target)
            return Speech(target, "espeak-ng", "cached")
        self.cache_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd, tmp = tempfile.mkstemp(prefix=".speak-", suffix=".wav", dir=self.cache_dir)
        os.close(fd)
        try:
            r = subprocess.run([self.espeak, "-v", voice, "-w", tmp, "--stdin"],  # noqa: S603
                               input=text.encode(), capture_output=True,
                               timeout=ESPEAK_TIMEOUT, check=False)
            if r.returncode != 0 or os.path.getsize(tmp) == 0:
                return Speech(None, "error", r.stderr.decode(errors="replace")[-300:])
            target.with_suffix(".txt").write_text(f"{voice}\n{text}", encoding="utf-8")
            os.replace(tmp, target)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return Speech(None, "error", str(exc))
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        self._prune()
        return Speech(target, "espeak-ng")

    def prepare(self, lang: str, key: str, text: str) -> Speech:
        """The file that says screen ``key`` (whose words are ``text``) in ``lang``."""
        rec = self.recorded(lang, key)
        if rec is not None:
            return Speech(rec, "recorded")
        if not text.strip():
            return Speech(None, "no-voice", "nothing to say")
        return self.synthesize(lang, text)

    def _prune(self) -> None:
        wavs = sorted(self.cache_dir.glob("*.wav"), key=lambda p: p.stat().st_mtime)
        for old in wavs[:max(0, len(wavs) - CACHE_FILES)]:
            for p in (old, old.with_suffix(".txt")):
                p.unlink(missing_ok=True)


class Player:
    """Plays one sound at a time with Kivy's SoundLoader; True when it is playing.
    No sound device: SoundSDL2 loads with length 0 and never plays: silent, False."""

    def __init__(self) -> None:
        self.current: Any = None

    def play(self, path: Path) -> bool:
        from kivy.core.audio import SoundLoader

        self.stop()
        try:
            sound = SoundLoader.load(str(path))
        except Exception as exc:  # noqa: BLE001 - an audio backend's failure is not the citizen's
            log.warning("cannot play %s: %s", path, exc)
            return False
        if sound is None or not sound.length:
            log.info("no sound device (or unreadable file): %s not played", path)
            return False
        self.current = sound
        sound.play()
        return str(sound.state) == "play"

    def stop(self) -> None:
        if self.current is not None:
            self.current.stop()
            self.current.unload()
            self.current = None

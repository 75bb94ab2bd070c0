"""Audio files are recognised, so they are reported clearly instead of as an unknown type: transcribing them
needs a speech-to-text model, and the model plaza has no speech-to-text (transcription) models yet."""
from __future__ import annotations

from typing import Any

from temper.knowledge.types import ParsedDocument, ParseError


class AudioParser:
    name = "audio"
    extensions = (".mp3", ".wav", ".m4a", ".ogg", ".flac", ".opus", ".webm")
    media_types = ("audio/mpeg", "audio/wav", "audio/x-wav", "audio/mp4", "audio/ogg", "audio/flac", "audio/webm")

    def parse(self, data: bytes, filename: str, options: dict[str, Any]) -> list[ParsedDocument]:
        raise ParseError(f"{filename}: skipped — audio is transcribed by a speech-to-text model, and the model "
                         "plaza has none configured (it has no transcription models yet)")

"""The built-in ``stt`` module: Whisper speech recognition through faster-whisper."""

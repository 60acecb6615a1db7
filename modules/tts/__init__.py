"""Text to speech with Kokoro-82M: word timestamps, OpenAI-compatible and SillyTavern endpoints."""

"""The media engine: probing, the FFmpeg runner, argument builders, text, fonts, colour."""

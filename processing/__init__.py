"""TouchASP processing: audio, features, tokens, processor."""

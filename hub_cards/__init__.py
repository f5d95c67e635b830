"""Hub release: model cards, a self-contained Hub model folder, the Space folder and the upload."""

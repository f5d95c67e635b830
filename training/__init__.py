"""TouchASP training side: data pipeline, corpus builders, training loop, evaluation and its metrics."""

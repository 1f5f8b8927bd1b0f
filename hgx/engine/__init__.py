"""Training and prediction engines."""

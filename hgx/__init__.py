"""hgx: train, continue, branch and evaluate stacked-hourglass pose networks."""

__version__ = "0.1.0"

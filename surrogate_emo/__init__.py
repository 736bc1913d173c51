"""surrogate_emo: surrogate-assisted evolutionary multi-objective compression of deep neural networks."""

__version__ = "0.1.0"

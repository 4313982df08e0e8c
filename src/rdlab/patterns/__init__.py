"""Gray–Scott pattern classification (the CNN paper): catalogue, initial conditions, pattern
runs, stores, CNN, training, scans."""

from rdlab.lazy_exports import lazy_exports

_EXPORTS = {
    "PatternCNN": "rdlab.patterns.cnn",
    "PatternCNN3D": "rdlab.patterns.cnn",
    "load_model": "rdlab.patterns.cnn",
    "save_model": "rdlab.patterns.cnn",
    "TrainConfig": "rdlab.patterns.training",
    "train": "rdlab.patterns.training",
    "predict": "rdlab.patterns.training",
    "evaluate": "rdlab.patterns.training",
    "classify_scan": "rdlab.patterns.classify",
    "run_paper": "rdlab.patterns.paper_pipeline",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

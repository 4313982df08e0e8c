"""Classify (the second job): Gray–Scott pattern classification (the CNN paper).

Catalogue, initial conditions, pattern runs, stores, CNN, training, scans, labels.
"""

from rdlab.lazy_exports import lazy_exports

_EXPORTS = {
    "PatternCNN": "rdlab.classify.cnn",
    "PatternCNN3D": "rdlab.classify.cnn",
    "load_model": "rdlab.classify.cnn",
    "save_model": "rdlab.classify.cnn",
    "TrainConfig": "rdlab.classify.training",
    "train": "rdlab.classify.training",
    "predict": "rdlab.classify.training",
    "evaluate": "rdlab.classify.training",
    "classify_scan": "rdlab.classify.label_scan",
    "run_paper": "rdlab.classify.paper_pipeline",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

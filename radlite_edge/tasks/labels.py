"""Label vocabularies of the label tasks: the RADS systems and their categories, TNM, NLI, CheXpert."""

from __future__ import annotations

# The nine RadLite tasks, in the paper's order; the registry gives each its entry.
TASK_NAMES: tuple[str, ...] = (
    "rads_assignment", "impression_generation", "temporal_comparison", "radiology_ner", "n_staging", "m_staging",
    "radiology_nli", "abnormality_detection", "radiology_qa",
)

# System name as the output writes it -> categories, in the system's own notation.
RADS_SYSTEMS: dict[str, tuple[str, ...]] = {
    "BI-RADS": ("0", "1", "2", "3", "4", "4A", "4B", "4C", "5", "6"),
    "TI-RADS": ("TR1", "TR2", "TR3", "TR4", "TR5"),
    "LI-RADS": ("LR-1", "LR-2", "LR-3", "LR-4", "LR-5", "LR-M", "LR-TIV"),
    "PI-RADS": ("1", "2", "3", "4", "5"),
    "VI-RADS": ("1", "2", "3", "4", "5"),
    "O-RADS": ("0", "1", "2", "3", "4", "5"),
    "NI-RADS": ("1", "2", "3", "4"),
    "Lung-RADS": ("0", "1", "2", "3", "4A", "4B", "4X"),
    "GB-RADS": ("0", "1", "2", "3", "4", "5"),
    "CAD-RADS": ("0", "1", "2", "3", "4A", "4B", "5", "N"),
}
NO_RADS = "No applicable RADS"
RADS_LABELS: tuple[str, ...] = tuple(f"{s} {c}" for s, cats in RADS_SYSTEMS.items() for c in cats) + (NO_RADS,)

N_STAGES = ("N0", "N1", "N2")  # the published N staging task (RADLITE.md)
M_STAGES = ("M0", "M1")
NLI_LABELS = ("entailment", "contradiction", "neutral")

CHEXPERT_LABELS = (
    "No Finding", "Enlarged Cardiomediastinum", "Cardiomegaly", "Lung Opacity", "Lung Lesion", "Edema",
    "Consolidation", "Pneumonia", "Atelectasis", "Pneumothorax", "Pleural Effusion", "Pleural Other",
    "Fracture", "Support Devices",
)
CHEXPERT_VALUES = ("positive", "negative", "uncertain")

CHANGES = ("new", "worsened", "improved", "resolved", "unchanged")
NER_TYPES = ("ANAT-DP", "OBS-DP", "OBS-DA", "OBS-U")  # RadGraph's entity schema

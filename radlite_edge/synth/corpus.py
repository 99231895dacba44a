"""Synthetic radiology report text: what the embedded tokenizer is trained on.

Deterministic from a seed. The wording covers what the 9 tasks read and write (RADS
categories across the 10 systems, TNM stages, CheXpert findings, measurements, dates,
comparison language), so the byte-level BPE learns radiology sub-words.
"""

from __future__ import annotations

import random

ORGANS = ["right upper lobe", "left lower lobe", "liver segment VII", "left breast", "right thyroid lobe",
          "prostate peripheral zone", "gallbladder", "left adrenal gland", "right kidney", "pancreatic head",
          "lingula", "right middle lobe", "left ovary", "bladder wall", "cervical lymph node"]
FINDINGS = ["nodule", "mass", "opacity", "consolidation", "effusion", "lesion", "cyst", "calcification",
            "atelectasis", "pneumothorax", "edema", "cardiomegaly", "fracture", "lymphadenopathy", "stenosis"]
DESCRIPTORS = ["solid", "part-solid", "ground-glass", "spiculated", "hypoechoic", "hyperechoic", "irregular",
               "well-circumscribed", "lobulated", "arterial phase hyperenhancing", "taller-than-wide",
               "with washout", "with an enhancing capsule", "microlobulated", "heterogeneous"]
RADS = ["BI-RADS 0", "BI-RADS 2", "BI-RADS 3", "BI-RADS 4A", "BI-RADS 4C", "BI-RADS 5", "TI-RADS TR1", "TI-RADS TR3",
        "TI-RADS TR4", "TI-RADS TR5", "LI-RADS LR-3", "LI-RADS LR-4", "LI-RADS LR-5", "PI-RADS 2", "PI-RADS 4",
        "Lung-RADS 2", "Lung-RADS 3", "Lung-RADS 4A", "Lung-RADS 4B", "O-RADS 3", "NI-RADS 2", "VI-RADS 3",
        "GB-RADS 2", "CAD-RADS 3", "No applicable RADS"]
CHANGES = ["new", "worsened", "improved", "resolved", "unchanged", "stable", "increased in size", "decreased"]
STAGES = ["N0", "N1", "N2", "N3", "M0", "M1", "T1a", "T2", "T3", "T4"]
CHEXPERT = ["No Finding", "Enlarged Cardiomediastinum", "Cardiomegaly", "Lung Opacity", "Lung Lesion", "Edema",
            "Consolidation", "Pneumonia", "Atelectasis", "Pneumothorax", "Pleural Effusion", "Pleural Other",
            "Fracture", "Support Devices"]
NEGATIONS = ["No evidence of", "There is no", "Negative for", "Without", "No"]
HEDGES = ["Possible", "Cannot exclude", "Likely", "Suspicious for", "May represent"]


def _sentence(rng: random.Random) -> str:
    organ, finding, desc = rng.choice(ORGANS), rng.choice(FINDINGS), rng.choice(DESCRIPTORS)
    size = f"{rng.randint(2, 60)} mm" if rng.random() < 0.7 else f"{rng.randint(1, 9)}.{rng.randint(0, 9)} cm"
    kind = rng.randrange(9)
    if kind == 0:
        return f"There is a {size} {desc} {finding} in the {organ}."
    if kind == 1:
        return f"{rng.choice(NEGATIONS)} {finding} in the {organ}."
    if kind == 2:
        return f"{rng.choice(HEDGES)} {finding}; recommend follow-up in {rng.choice([3, 6, 12])} months."
    if kind == 3:
        return f"Impression: {rng.choice(RADS)}. {desc.capitalize()} {finding} measuring {size}."
    if kind == 4:
        date = f"{rng.randint(2015, 2025)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
        return f"Compared with {date}, the {organ} {finding} is {rng.choice(CHANGES)}."
    if kind == 5:
        return f"Staging: {rng.choice(STAGES)} {rng.choice(STAGES)}; {rng.randint(0, 12)} of {rng.randint(12, 30)} nodes positive."
    if kind == 6:
        return f"{rng.choice(CHEXPERT)}: {rng.choice(['positive', 'negative', 'uncertain'])}."
    if kind == 7:
        return f"[TASK: {rng.choice(['rads_assignment', 'n_staging', 'radiology_nli', 'impression_generation'])}] " \
               f"Findings: {desc} {finding}, {size}, {organ}."
    return f"FINDINGS: {rng.choice(FINDINGS).capitalize()} of the {organ} ({rng.randint(1, 99)}%, SUV {rng.randint(1, 20)}.{rng.randint(0, 9)})."


def radiology_corpus(n_reports: int = 2000, *, seed: int = 0) -> list[str]:
    """``n_reports`` short synthetic reports, one string each."""
    rng = random.Random(seed)
    return [" ".join(_sentence(rng) for _ in range(rng.randint(2, 6))) for _ in range(n_reports)]

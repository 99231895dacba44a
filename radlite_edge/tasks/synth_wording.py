"""Report wording for the training split's generators: layouts, sections, sizes, incidental findings.

Shared by ``synth_train`` and ``synth_train_rads``. Nothing here decides a label: incidental findings
are chosen so that no task's rule reads them.
"""

from __future__ import annotations

import random

SIDES = ("right", "left")
LOBES = {"right": ("right upper lobe", "right middle lobe", "right lower lobe"),
         "left": ("left upper lobe", "left lower lobe", "lingula")}


def pick(rng: random.Random, *options: str) -> str:
    return rng.choice(options)


def size_text(rng: random.Random, mm: float) -> str:
    """A size as reports write it: in mm or cm, with or without a space."""
    if rng.random() < 0.35 and mm >= 10:
        cm = f"{mm / 10:.1f}".rstrip("0").rstrip(".")
        return f"{cm}{pick(rng, ' cm', 'cm', ' cm')}"
    return f"{mm:g}{pick(rng, ' mm', 'mm', ' mm', ' millimetres')}"


_HEADS = {"findings": ("Findings:", "FINDINGS:", "Description:", "Results:"),
          "technique": ("Technique:", "TECHNIQUE:", "Protocol:"),
          "history": ("Clinical history:", "Indication:", "HISTORY:", "Clinical details:", "Reason for study:"),
          "comparison": ("Comparison:", "COMPARISON:", "Prior:"),
          "conclusion": ("Conclusion:", "Summary:", "CONCLUSION:", "Opinion:")}
_HISTORIES = ("follow-up", "staging", "known malignancy", "shortness of breath", "cough for three weeks",
              "abnormal prior imaging", "weight loss", "surveillance", "pain", "smoker", "fever and cough",
              "post-treatment assessment", "routine screening", "chest pain")
_COMPARISONS = ("none available", "none", "prior study from last year", "outside study, not available",
                "CT of six months ago", "previous examination")


def report(rng: random.Random, exam: str, findings: list[str], *, conclusion: str | None = None) -> str:
    """A report: an exam line, optional history/technique/comparison sections, findings in a random order,
    laid out as prose, as headed sections, or one finding per line; an optional closing line."""
    findings = list(findings)
    rng.shuffle(findings)
    parts = [exam if rng.random() < 0.7 else f"{pick(rng, 'Study', 'Examination', 'Procedure')}: {exam}"]
    if rng.random() < 0.5:
        parts.append(f"{rng.choice(_HEADS['history'])} {rng.choice(_HISTORIES)}.")
    if rng.random() < 0.3:
        parts.append(f"{rng.choice(_HEADS['comparison'])} {rng.choice(_COMPARISONS)}.")
    layout = rng.random()
    if layout < 0.4:
        body = " ".join(findings)
    elif layout < 0.75:
        body = "\n".join(findings)
    else:
        body = "\n".join(f"- {f}" for f in findings)
    head = rng.choice(_HEADS["findings"]) if rng.random() < 0.7 else ""
    parts.append(f"{head}\n{body}" if head and layout >= 0.4 else f"{head} {body}".strip())
    if conclusion:
        parts.append(f"{rng.choice(_HEADS['conclusion'])} {conclusion}")
    sep = "\n" if rng.random() < 0.6 else " "
    return sep.join(parts)


# incidental findings of each region that decide no label of any task here
_INCIDENTAL = {
    "chest": ("Mild degenerative change of the thoracic spine.", "The thyroid is unremarkable.",
              "Small hiatus hernia.", "Coronary artery calcification.", "Mild centrilobular emphysema.",
              "The heart size is normal.", "Healed left rib fracture.", "Calcified granuloma.",
              "No pericardial effusion.", "Trachea and main bronchi are patent."),
    "abdomen": ("Simple renal cyst.", "Colonic diverticulosis.", "The pancreas is normal.", "No ascites.",
                "The spleen is normal in size.", "Small fat-containing umbilical hernia.",
                "Normal appearance of the kidneys.", "Gallbladder is unremarkable."),
    "neck": ("No cervical lymphadenopathy.", "The salivary glands are normal.", "The isthmus is normal.",
             "Homogeneous thyroid parenchyma.", "Normal vascularity on colour Doppler."),
    "breast": ("Scattered fibroglandular density.", "Heterogeneously dense breasts.", "Skin and nipple are normal.",
               "No suspicious axillary lymph nodes.", "Stable benign-appearing calcifications."),
    "pelvis": ("Uterus is normal in size.", "No free pelvic fluid.", "Seminal vesicles are unremarkable.",
               "No pelvic lymphadenopathy.", "Bladder is well distended."),
}


def incidentals(rng: random.Random, region: str, k: tuple[int, int] = (0, 2)) -> list[str]:
    return rng.sample(_INCIDENTAL[region], rng.randint(*k))

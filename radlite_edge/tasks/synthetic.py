"""The synthetic task suite: all 9 tasks, deterministic from a seed, labels from the rules.

Where a published rule decides the label (TI-RADS points, Lung-RADS sizes, the LI-RADS
table, TNM, CheXpert negation/uncertainty) the generator draws the features, writes them
in varied wording, and lets ``rules`` compute the label; nothing is labelled by hand.
Traps are included on purpose: a liver LR-5 report that also mentions a lung nodule
(the notebook's cross-system case), negated metastases, unmentioned CheXpert labels.
"""

from __future__ import annotations

import random
from typing import Callable

from . import rules
from .labels import CHEXPERT_LABELS, NO_RADS
from .samples import Sample

Gen = Callable[[random.Random], tuple[str, str, dict]]  # -> (input, reference, labels)

SIDES = ("right", "left")
LOBES = ("right upper lobe", "right middle lobe", "right lower lobe", "left upper lobe", "left lower lobe", "lingula")


def _pick(rng: random.Random, *options: str) -> str:
    return rng.choice(options)


# ------------------------------------------------------------------ RADS


def _tirads(rng):
    comp = rng.choice(list(rules.TIRADS_POINTS["composition"]))
    echo = rng.choice(list(rules.TIRADS_POINTS["echogenicity"]))
    shape = rng.choice(list(rules.TIRADS_POINTS["shape"]))
    margin = rng.choice(list(rules.TIRADS_POINTS["margin"]))
    foci = tuple(rng.sample(["macrocalcifications", "peripheral rim calcifications", "punctate echogenic foci"],
                            rng.randint(0, 2))) or ("none",)
    pts = rules.tirads_points(comp, echo, shape, margin, foci)
    foci_text = "no echogenic foci" if foci == ("none",) else " and ".join(foci)
    size = rng.randint(5, 45)
    text = (f"{_pick(rng, 'Thyroid ultrasound.', 'US thyroid.', 'Ultrasound of the neck.')} Findings: "
            f"{size} mm {comp} {echo} nodule in the {rng.choice(SIDES)} thyroid lobe, {shape}, "
            f"{margin} margins, {foci_text}.")
    return text, f"TI-RADS {rules.tirads_category(pts)}", {"system": "TI-RADS", "points": pts}


def _lungrads(rng):
    if rng.random() < 0.1:
        return ("Low-dose CT for lung cancer screening, baseline. No pulmonary nodules.", "Lung-RADS 1",
                {"system": "Lung-RADS"})
    kind = rng.choice(("solid", "part-solid", "ground-glass"))
    size = round(rng.uniform(3, 40 if kind == "ground-glass" else 25), 1)
    solid = round(rng.uniform(1, size), 1) if kind == "part-solid" else 0.0
    part = f" with a {solid} mm solid component" if kind == "part-solid" else ""
    text = (f"{_pick(rng, 'Low-dose CT lung screening, baseline.', 'LDCT chest, baseline screening.')} "
            f"Findings: {kind} nodule in the {rng.choice(LOBES)} measuring {size} mm{part}. No other nodules.")
    return text, f"Lung-RADS {rules.lung_rads(kind, size, solid)}", {"system": "Lung-RADS", "size_mm": size}


def _lirads(rng, trap: bool = False):
    size = rng.randint(5, 40)
    aphe = rng.random() < 0.7
    feats = frozenset(rng.sample(rules.LIRADS_FEATURES, rng.randint(0, 3)))
    feat_text = (" with " + ", ".join(sorted(feats))) if feats else " without washout, capsule or growth"
    aphe_text = "nonrim arterial phase hyperenhancement" if aphe else "no arterial phase hyperenhancement"
    text = (f"{_pick(rng, 'MRI liver, cirrhosis surveillance.', 'Multiphase CT abdomen in a patient with HBV cirrhosis.')} "
            f"Findings: {size} mm observation in segment {rng.choice(['II', 'IV', 'VI', 'VII', 'VIII'])} with "
            f"{aphe_text}{feat_text}.")
    if trap:  # the notebook's cross-system report: a lung nodule is mentioned, the liver decides
        text += f" Incidental {rng.randint(3, 6)} mm nodule in the {rng.choice(LOBES)} at the lung bases."
    return text, f"LI-RADS {rules.lirads_category(size, aphe, feats)}", {"system": "LI-RADS", "trap": trap}


def _birads(rng):
    kind = rng.choice(("mass", "mass", "simple cyst", "biopsy-proven carcinoma"))
    feats = tuple(rng.sample(list(rules.BIRADS_SUSPICIOUS), rng.randint(0, 3))) if kind == "mass" else ()
    desc = ", ".join(feats) if feats else ("oval, circumscribed" if kind == "mass" else "")
    text = (f"{_pick(rng, 'Diagnostic mammogram and ultrasound.', 'Bilateral mammography with targeted US.')} "
            f"Findings: {rng.randint(6, 30)} mm {kind}{(' with ' + desc) if desc else ''} in the "
            f"{rng.choice(SIDES)} breast at {rng.randint(1, 12)} o'clock.")
    return text, f"BI-RADS {rules.birads_category(kind, feats)}", {"system": "BI-RADS"}


def _cadrads(rng):
    stenosis = rng.choice((0, 10, 30, 60, 80, 100))
    cat = {0: "0", 10: "1", 30: "2", 60: "3", 80: "4A", 100: "5"}[stenosis]
    text = (f"Coronary CT angiography. Maximal stenosis {stenosis}% in the {_pick(rng, 'proximal LAD', 'mid RCA', 'LCx')}"
            f"{' (total occlusion)' if stenosis == 100 else ''}.")
    return text, f"CAD-RADS {cat}", {"system": "CAD-RADS", "stenosis": stenosis}


def _scored(system: str, phrases: dict[str, str], modality: str):
    def gen(rng):
        cat = rng.choice(list(phrases))
        return f"{modality} Findings: {phrases[cat]}.", f"{system} {cat}", {"system": system}
    return gen


_PIRADS = _scored("PI-RADS", {"1": "peripheral zone normal on DWI", "2": "linear/wedge-shaped hypointensity on ADC",
                              "3": "focal mild hypointensity on ADC, indeterminate",
                              "4": "focal markedly hypointense ADC lesion 12 mm in the peripheral zone",
                              "5": "markedly restricting 18 mm peripheral zone lesion with extraprostatic extension"},
                  "MRI prostate.")
_VIRADS = _scored("VI-RADS", {"1": "uninterrupted low-signal muscle layer, lesion under 1 cm",
                              "2": "stalked lesion with intact muscle layer",
                              "3": "sessile lesion without a stalk, muscle layer equivocal",
                              "4": "interruption of the muscle layer by tumour",
                              "5": "tumour extending through the bladder wall into perivesical fat"}, "MRI bladder.")
_ORADS = _scored("O-RADS", {"1": "normal premenopausal ovary with follicles", "2": "simple cyst 4 cm",
                            "3": "multilocular cyst with smooth septations, under 10 cm",
                            "4": "multilocular cyst with a smooth solid component",
                            "5": "solid lesion with irregular contour and ascites"}, "Pelvic ultrasound.")
_NIRADS = _scored("NI-RADS", {"1": "expected post-treatment change without enhancement",
                              "2": "superficial mucosal enhancement", "3": "discrete nodular enhancement, new",
                              "4": "definite recurrence with biopsy-proven tumour"}, "Post-treatment neck CT.")
_GBRADS = _scored("GB-RADS", {"1": "normal gallbladder wall", "2": "smooth symmetric wall thickening",
                              "3": "focal smooth wall thickening with intramural cysts",
                              "4": "asymmetric wall thickening with indistinct interface to the liver",
                              "5": "mass-forming lesion replacing the gallbladder"}, "Gallbladder ultrasound.")


def _no_rads(rng):
    text = rng.choice((
        "CT head without contrast. No acute intracranial hemorrhage or mass effect.",
        "Radiograph of the left wrist. Nondisplaced distal radius fracture.",
        "MRI lumbar spine. Mild L4-L5 disc bulge without canal stenosis.",
        "Chest radiograph. Lungs are clear. No pleural effusion.",
    ))
    return text, NO_RADS, {"system": "none"}


RADS_GENERATORS: tuple[Gen, ...] = (_tirads, _lungrads, _lirads, lambda r: _lirads(r, trap=True), _birads, _cadrads,
                                    _PIRADS, _VIRADS, _ORADS, _NIRADS, _GBRADS, _no_rads)


def _rads(rng):
    return rng.choice(RADS_GENERATORS)(rng)


# ---------------------------------------------------------------- staging


def _n_staging(rng):
    stations = tuple(rng.sample(list(rules.N_STATIONS), rng.choice((0, 0, 1, 1, 2))))
    nodes = ("Enlarged " + " and ".join(f"{s} lymph nodes" for s in stations) + ", up to "
             f"{rng.randint(11, 25)} mm short axis.") if stations else "No enlarged thoracic lymph nodes."
    text = f"CT chest with contrast. {rng.randint(15, 60)} mm spiculated mass in the {rng.choice(LOBES)}. {nodes}"
    stage = rules.n_stage(stations)
    return text, stage, {"stations": list(stations)}


def _m_staging(rng):
    sites = tuple(rng.sample(rules.M_SITES, rng.choice((0, 0, 1, 2))))
    if sites:
        mets = "Metastatic disease to the " + " and ".join(sites) + "."
    else:
        mets = rng.choice(("No evidence of distant metastasis.", "Adrenal nodule with washout, compatible with adenoma.",
                           "No suspicious osseous lesions. Liver is unremarkable."))
    text = f"PET-CT staging. Primary lung adenocarcinoma in the {rng.choice(LOBES)}. {mets}"
    return text, rules.m_stage(sites), {"sites": list(sites)}


# -------------------------------------------------------------------- NLI

_NLI_FACTS = (
    ("There is a moderate right pleural effusion.", "Pleural fluid is present on the right.", "There is no pleural effusion.",
     "The heart size is normal."),
    ("The lungs are clear without consolidation.", "There is no consolidation.", "There is lobar consolidation.",
     "The patient has a history of smoking."),
    ("Mild cardiomegaly is present.", "The heart is enlarged.", "The cardiac silhouette is normal in size.",
     "There is a small pneumothorax."),
    ("A nasogastric tube terminates in the stomach.", "A support device is present.", "No tubes or lines are seen.",
     "The right hemidiaphragm is elevated."),
)


def _nli(rng):
    premise, ent, con, neu = rng.choice(_NLI_FACTS)
    label = rng.choice(("entailment", "contradiction", "neutral"))
    hyp = {"entailment": ent, "contradiction": con, "neutral": neu}[label]
    return f"Premise: {premise}\nHypothesis: {hyp}", label, {}


# -------------------------------------------------------------- CheXpert

_CX_PHRASE = {
    "Enlarged Cardiomediastinum": "widened mediastinum", "Cardiomegaly": "cardiomegaly", "Lung Opacity": "airspace opacity",
    "Lung Lesion": "pulmonary nodule", "Edema": "pulmonary edema", "Consolidation": "consolidation",
    "Pneumonia": "pneumonia", "Atelectasis": "atelectasis", "Pneumothorax": "pneumothorax",
    "Pleural Effusion": "pleural effusion", "Pleural Other": "pleural thickening", "Fracture": "rib fracture",
    "Support Devices": "endotracheal tube",
}


def _chexpert(rng):
    values, sentences = {}, []
    for label in CHEXPERT_LABELS[1:]:
        state = rng.choices(("unmentioned", "positive", "negative", "uncertain"), (5, 2, 2, 1))[0]
        phrase = _CX_PHRASE[label]
        if state == "positive":
            sentences.append(_pick(rng, f"There is {phrase}.", f"{phrase.capitalize()} is present.", f"Findings of {phrase}."))
        elif state == "negative":
            sentences.append(_pick(rng, f"No {phrase}.", f"There is no {phrase}.", f"Negative for {phrase}."))
        elif state == "uncertain":
            sentences.append(_pick(rng, f"Possible {phrase}.", f"Cannot exclude {phrase}.", f"Likely {phrase}."))
        # CheXpert: an unmentioned label is negative for this task
        values[label] = "negative" if state == "unmentioned" else state
    abnormal = any(v in ("positive", "uncertain") for k, v in values.items() if k != "Support Devices")
    values = {"No Finding": "negative" if abnormal else "positive", **values}
    rng.shuffle(sentences)
    text = "Chest radiograph, PA and lateral. " + (" ".join(sentences) or "Lungs are clear.")
    reference = "\n".join(f"{label}: {values[label]}" for label in CHEXPERT_LABELS)
    return text, reference, {"values": values}


# ------------------------------------------------------------- temporal

_TEMPORAL_FINDINGS = ("pleural effusion", "pulmonary nodule", "consolidation", "lymph node", "liver lesion", "pneumothorax")


def _temporal(rng):
    prior, current, pairs = [], [], []
    for finding in rng.sample(_TEMPORAL_FINDINGS, rng.randint(1, 3)):
        before = rng.choice((0, 8, 12, 20))
        after = rng.choice((0, before, round(before * 1.5) or 10, before // 2))
        if before == 0 and after == 0:
            continue
        if before == 0:
            change = "new"
        elif after == 0:
            change = "resolved"
        elif after > before * 1.2:
            change = "worsened"
        elif after < before * 0.8:
            change = "improved"
        else:
            change = "unchanged"
        prior.append(f"{finding} {before} mm" if before else f"no {finding}")
        current.append(f"{finding} {after} mm" if after else f"no {finding}")
        pairs.append((finding, change))
    if not pairs:
        return _temporal(rng)
    text = f"PRIOR: {'; '.join(prior)}.\nCURRENT: {'; '.join(current)}."
    return text, "\n".join(f"{f}: {c}" for f, c in pairs), {"pairs": [list(p) for p in pairs]}


# ------------------------------------------------------------------- NER

_ANATOMY = ("right lower lobe", "left lung base", "mediastinum", "right hilum", "cardiac silhouette", "left costophrenic angle")
_OBS = ("opacity", "effusion", "nodule", "consolidation", "atelectasis", "mass")


def _ner(rng):
    sentences, entities = [], []
    for _ in range(rng.randint(1, 3)):
        anat, obs = rng.choice(_ANATOMY), rng.choice(_OBS)
        kind = rng.choice(("present", "absent", "uncertain"))
        if kind == "present":
            sentences.append(f"There is {obs} in the {anat}.")
            entities += [(obs, "OBS-DP"), (anat, "ANAT-DP")]
        elif kind == "absent":
            sentences.append(f"No {obs} in the {anat}.")
            entities += [(obs, "OBS-DA"), (anat, "ANAT-DP")]
        else:
            sentences.append(f"Possible {obs} in the {anat}.")
            entities += [(obs, "OBS-U"), (anat, "ANAT-DP")]
    unique = list(dict.fromkeys(entities))
    return " ".join(sentences), "\n".join(f"{t} | {k}" for t, k in unique), {"entities": [list(e) for e in unique]}


# ------------------------------------------------------ impression and QA


def _impression(rng):
    size, lobe = rng.randint(4, 30), rng.choice(LOBES)
    kind = rng.choice(("solid", "spiculated", "ground-glass"))
    effusion = rng.random() < 0.4
    text = (f"FINDINGS: {size} mm {kind} nodule in the {lobe}. "
            f"{'Small left pleural effusion.' if effusion else 'No pleural effusion.'} Heart size is normal.")
    concern = "suspicious for malignancy" if kind == "spiculated" or size >= 15 else "likely benign; follow-up advised"
    impression = f"{size} mm {kind} {lobe} nodule, {concern}." + (" Small left pleural effusion." if effusion else "")
    return text, impression, {}


def _qa(rng):
    size, lobe = rng.randint(4, 30), rng.choice(LOBES)
    report = f"CT chest: {size} mm solid nodule in the {lobe}. No lymphadenopathy. No pleural effusion."
    q, a = rng.choice((("What is the size of the nodule?", f"{size} mm"), ("Where is the nodule?", f"In the {lobe}."),
                       ("Is there a pleural effusion?", "No."), ("Is there lymphadenopathy?", "No.")))
    return f"Report: {report}\nQuestion: {q}", a, {}


GENERATORS: dict[str, Gen] = {
    "rads_assignment": _rads, "impression_generation": _impression, "temporal_comparison": _temporal,
    "radiology_ner": _ner, "n_staging": _n_staging, "m_staging": _m_staging, "radiology_nli": _nli,
    "abnormality_detection": _chexpert, "radiology_qa": _qa,
}


def make_task_samples(task: str, n: int, *, seed: int = 0, split: str = "test") -> list[Sample]:
    rng = random.Random(f"{seed}-{task}-{split}")
    out = []
    for i in range(n):
        text, ref, labels = GENERATORS[task](rng)
        out.append(Sample(f"{task}-{split}-{i:05d}", task, text, ref, labels, "synthetic", split))
    return out


DEFAULT_N = 500  # test samples per task of `radlite data synth`


def make_suite(n_per_task: int, *, seed: int = 0, n_train: int | None = None) -> list[Sample]:
    """``n_per_task`` test samples per task, plus a train split (few-shot pool, fine-tuning)."""
    n_train = max(16, n_per_task // 4) if n_train is None else n_train
    out = []
    for task in GENERATORS:
        out += make_task_samples(task, n_train, seed=seed, split="train")
        out += make_task_samples(task, n_per_task, seed=seed, split="test")
    return out

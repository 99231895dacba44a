"""The generalization split: the same rules, written in wording the training split never uses.

A model fine-tuned on the synthetic suite can learn the generator's sentences instead of the
rules (a 15-minute fine-tune scored 0.80 on N staging on the test split and 1/4 on hand-written
reports). These generators share no sentence template, phrasing, order or distractor with
``synth_reports``/``synth_tasks``: findings come as numbered impressions, dictation prose or
key-value lines, with other headers and other incidental findings. The labels come from the
same ``rules``; the references are in the same published styles. Every score is reported on
both splits; the gap between them is what a model has not learned.
"""

from __future__ import annotations

import random

from . import rules
from .labels import CHEXPERT_LABELS, NO_RADS
from .styles import chexpert_answer, n_staging_answer, ner_answer, temporal_answer
from .synth_reports import Gen

_LOBE_WORDS = {"right upper lobe": "RUL", "right middle lobe": "RML", "right lower lobe": "RLL",
               "left upper lobe": "LUL", "left lower lobe": "LLL", "lingula": "lingular segment"}


def _numbered(rng: random.Random, header: str, items: list[str], extra: str) -> str:
    """Dictation style: an exam line, then numbered impressions, then an unrelated distractor."""
    rng.shuffle(items)
    body = " ".join(f"{i}. {item}" for i, item in enumerate(items, 1))
    return f"EXAM: {header}\nIMPRESSION: {body}\nADDENDUM: {extra}"


def _tirads(rng):
    comp = rng.choices(list(rules.TIRADS_POINTS["composition"]), (1, 1, 3, 5))[0]
    echo = rng.choice(rules.tirads_echogenicities(comp))
    shape = "wider-than-tall" if comp == "cystic" else rng.choice(list(rules.TIRADS_POINTS["shape"]))
    margin = "smooth" if comp == "cystic" else rng.choice(list(rules.TIRADS_POINTS["margin"]))
    foci = ("none",) if comp == "cystic" else rng.choice((("none",), ("macrocalcifications",),
                                                          ("punctate echogenic foci",)))
    pts = rules.tirads_points(comp, echo, shape, margin, foci)
    lesion = (f"Composition {comp}; echogenicity {echo}; shape {shape}; margin {margin}; echogenic foci "
              f"{'absent' if foci == ('none',) else foci[0]}. Maximal dimension {rng.randint(6, 40)} mm "
              f"({rng.choice(('isthmus', 'upper pole', 'lower pole', 'mid gland'))}).")
    return (_numbered(rng, "Sonography, thyroid gland", [lesion, "Vascularity within normal limits."],
                      "Parathyroid glands not visualised."), f"TI-RADS {rules.tirads_category(pts)}",
            {"system": "TI-RADS", "points": pts})


def _lung(rng):
    kind = rng.choice(("solid", "part-solid", "ground-glass"))
    size = round(rng.uniform(3, 35 if kind == "ground-glass" else 24), 1)
    solid = round(rng.uniform(1, size), 1) if kind == "part-solid" else 0.0
    desc = {"solid": "soft-tissue attenuation", "part-solid": f"mixed attenuation (solid portion {solid} mm)",
            "ground-glass": "pure ground-glass attenuation"}[kind]
    lesion = f"Index lesion {_LOBE_WORDS[rng.choice(list(_LOBE_WORDS))]}, {size} mm mean diameter, {desc}."
    return (_numbered(rng, "Initial annual LCS low-dose CT", [lesion, "Airways patent."], "Thyroid not imaged."),
            f"Lung-RADS {rules.lung_rads(kind, size, solid)}", {"system": "Lung-RADS"})


def _liver(rng):
    size, aphe = rng.randint(6, 38), rng.random() < 0.7
    feats = frozenset(rng.sample(rules.LIRADS_FEATURES, rng.randint(0, 3)))
    lesion = (f"Hepatic observation, {size} mm: APHE {'present (nonrim)' if aphe else 'absent'}; washout "
              f"{'yes' if 'nonperipheral washout' in feats else 'no'}; capsule "
              f"{'yes' if 'enhancing capsule' in feats else 'no'}; threshold growth "
              f"{'yes' if 'threshold growth' in feats else 'no'}.")
    items = [lesion, "Background cirrhotic morphology."]
    if rng.random() < 0.3:
        items.append(f"Tiny pulmonary nodule at the {rng.choice(('RLL', 'LLL'))} base, {rng.randint(2, 5)} mm.")
    return (_numbered(rng, "Contrast-enhanced liver protocol", items, "Gallbladder contracted."),
            f"LI-RADS {rules.lirads_category(size, aphe, feats)}", {"system": "LI-RADS"})


def _breast(rng):
    kind = rng.choice(("mass", "mass", "simple cyst"))
    feats = tuple(rng.sample(list(rules.BIRADS_SUSPICIOUS), rng.randint(0, 3))) if kind == "mass" else ()
    desc = "; ".join(feats) if feats else "benign morphology"
    lesion = f"Lesion {rng.choice(('UOQ', 'UIQ', 'LOQ', 'LIQ', 'retroareolar'))}: {kind}, {desc}."
    return (_numbered(rng, "Tomosynthesis and sonography, breast", [lesion, "Axillae normal."], "Implants absent."),
            f"BI-RADS {rules.birads_category(kind, feats)}", {"system": "BI-RADS"})


def _no_rads(rng):
    return (_numbered(rng, rng.choice(("Knee MRI", "CT sinus", "Pelvis radiograph")),
                      [rng.choice(("Meniscal tear, posterior horn.", "Mucosal thickening, maxillary sinus.",
                                   "Degenerative change, hips."))], "No comparison available."),
            NO_RADS, {"system": "none"})


def rads(rng):
    return rng.choices((_breast, _tirads, _liver, _lung, _no_rads), (3, 2, 2, 1, 0.3))[0](rng)


def n_staging(rng):
    stations = tuple(rng.sample([s for s, n in rules.N_STATIONS.items() if n <= 2], rng.choice((0, 1, 1, 2))))
    nodes = (f"Nodal disease: {', '.join(stations)} station(s), short axis {rng.randint(11, 30)} mm, FDG avid."
             if stations else "Nodal disease: none; all stations within normal size limits.")
    primary = f"Primary: {_LOBE_WORDS[rng.choice(list(_LOBE_WORDS))]} carcinoma, {rng.randint(12, 70)} mm."
    stage = rules.n_stage(stations)
    return (_numbered(rng, "Whole-body PET for NSCLC", [primary, nodes], "Brain not included."),
            n_staging_answer(stage), {"stage": stage})


def m_staging(rng):
    sites = tuple(rng.sample(rules.M_SITES, rng.choice((0, 0, 1, 2))))
    distant = (f"Distant disease: {', '.join(sites)}." if sites else
               rng.choice(("Distant disease: none identified.", "Distant disease: nil; benign renal cyst noted.")))
    primary = f"Primary: {rng.choice(list(_LOBE_WORDS.values()))} tumour, {rng.randint(12, 70)} mm."
    return (_numbered(rng, "Restaging CT", [primary, distant],
                      "Bowel unremarkable."), rules.m_stage(sites), {})


def nli(rng):
    finding = rng.choice(("effusion", "pneumothorax", "consolidation", "cardiomegaly", "edema"))
    other = rng.choice(("hiatal hernia", "scoliosis", "aortic calcification"))
    premise = f"Radiologist notes: {finding} noted on the {rng.choice(('left', 'right'))} side, {rng.choice(('new', 'known'))}."
    label = rng.choice(("entailment", "contradiction", "neutral"))
    hyp = {"entailment": f"Imaging demonstrates {finding}.", "contradiction": f"Imaging excludes {finding}.",
           "neutral": f"The patient has {other}."}[label]
    return f"Premise: {premise}\nHypothesis: {hyp}", label, {}


def chexpert(rng):
    values = {}
    items = []
    for label in CHEXPERT_LABELS[1:]:
        state = rng.choices(("unmentioned", "positive", "negative", "uncertain"), (2, 3, 2, 2))[0]
        word = label.lower()
        if state != "unmentioned":
            items.append(f"{word}: {({'positive': 'seen', 'negative': 'not seen', 'uncertain': 'questionable'})[state]}.")
        values[label] = "negative" if state == "unmentioned" else state
    abnormal = any(v in ("positive", "uncertain") for k, v in values.items() if k != "Support Devices")
    values = {"No Finding": "negative" if abnormal else "positive", **values}
    return (_numbered(rng, "Radiograph thorax (single view)", items or ["unremarkable chest."], "Bones osteopenic."),
            chexpert_answer(values), {"values": values})


def temporal(rng):
    lines, pairs = [], []
    for finding in rng.sample(("effusion", "nodule", "node", "mass", "collection", "opacity"), rng.randint(1, 3)):
        change = rng.choice(("new", "worsened", "improved", "resolved", "unchanged"))
        then, now = {"new": (0, 9), "worsened": (10, 18), "improved": (18, 9), "resolved": (12, 0),
                     "unchanged": (14, 14)}[change]
        lines.append(f"{finding} — then {then or 'absent'}{' mm' if then else ''}, now {now or 'absent'}"
                     f"{' mm' if now else ''}")
        pairs.append((finding, change))
    return "Interval comparison:\n" + "\n".join(lines), temporal_answer(pairs), {"pairs": [list(p) for p in pairs]}


def ner(rng):
    pairs = []
    for _ in range(rng.randint(1, 2)):
        anat = rng.choice(("aortic arch", "left ventricle", "spleen", "right kidney", "pancreatic head", "left adrenal",
                           "sigmoid colon", "urinary bladder"))
        obs = rng.choice(("lesion", "cyst", "thickening", "calcification", "stone", "collection"))
        pairs.append((anat, obs, rng.choice(("OBS-DP", "OBS-DA", "OBS-U"))))
    text = " ".join({"OBS-DP": f"Redemonstrated {o} involving the {a}.", "OBS-DA": f"The {a} shows no {o}.",
                     "OBS-U": f"Equivocal {o} of the {a}."}[k] for a, o, k in pairs)
    entities = list(dict.fromkeys(e for a, o, k in pairs for e in ((a, "ANAT-DP"), (o, k))))
    return text, ner_answer(entities), {"entities": [list(e) for e in entities]}


def impression(rng):
    size = rng.randint(5, 28)
    lobe = rng.choice(list(_LOBE_WORDS))
    kind = rng.choice(("solid", "spiculated"))
    concern = "suspicious for malignancy" if kind == "spiculated" or size >= 15 else "likely benign; follow-up advised"
    return (f"Dictation: nodule {_LOBE_WORDS[lobe]}, {kind}, {size} mm; pleura clear; mediastinum unremarkable.",
            f"{size} mm {kind} {lobe} nodule, {concern}.", {})


def qa(rng):
    if rng.random() < 0.5:
        cat = rng.choice(("2", "3", "4", "5"))
        answer = {"2": "Benign finding; routine screening.", "3": "Probably benign; short-interval follow-up.",
                  "4": "Suspicious abnormality; biopsy should be considered.",
                  "5": "Highly suggestive of malignancy; biopsy is recommended."}[cat]
        who = rng.choice(("a 52-year-old", "a 61-year-old", "a 45-year-old", "an elderly"))
        return f"Recommended next step after a BI-RADS {cat} report in {who} woman?", answer, {}
    size = round(rng.uniform(3, 24), 1)
    return (f"Screening LDCT (first round) with a {size} mm solid nodule — which Lung-RADS bin?",
            f"Lung-RADS {rules.lung_rads('solid', size)}.", {})


GENERATORS: dict[str, Gen] = {
    "rads_assignment": rads, "impression_generation": impression, "temporal_comparison": temporal,
    "radiology_ner": ner, "n_staging": n_staging, "m_staging": m_staging, "radiology_nli": nli,
    "abnormality_detection": chexpert, "radiology_qa": qa,
}

"""Synthetic samples of the eight tasks beside RADS (see ``synth_reports`` for the conventions)."""

from __future__ import annotations

from . import rules
from .labels import CHEXPERT_LABELS
from .styles import chexpert_answer, n_staging_answer, ner_answer, temporal_answer
from .synth_reports import LOBES, SIDES, _frame, _pick

# ---------------------------------------------------------------- staging

# the published task's N0/N1/N2: stations that stage at most N2 (TNM 8, lung)
_N_STATIONS = tuple(s for s, n in rules.N_STATIONS.items() if n <= 2)
_N0_NODES = ("No enlarged thoracic lymph nodes.", "Mediastinal and hilar nodes are not enlarged.",
             "Subcentimetre mediastinal lymph nodes, not pathologically enlarged.", "No lymphadenopathy.")


def n_staging(rng):
    stations = tuple(rng.sample(_N_STATIONS, rng.choice((0, 1, 1, 2))))
    size = rng.randint(11, 25)
    if stations:
        nodes = _pick(rng, "Enlarged " + " and ".join(f"{s} lymph nodes" for s in stations) + f", up to {size} mm short axis.",
                      f"{' and '.join(s.capitalize() for s in stations)} lymphadenopathy measuring {size} mm.",
                      f"Pathologically enlarged {' and '.join(stations)} nodes ({size} mm).")
    else:
        nodes = rng.choice(_N0_NODES)
    primary = _pick(rng, f"{rng.randint(15, 60)} mm spiculated mass in the {rng.choice(LOBES)}.",
                    f"Primary tumour in the {rng.choice(LOBES)} measures {rng.randint(15, 60)} mm.")
    other = rng.choice(("No pleural effusion.", "Emphysema.", "No bone lesions.", "Calcified granuloma."))
    text = _frame(rng, _pick(rng, "CT chest with contrast.", "Staging CT thorax.", "PET-CT for staging."),
                  [primary, nodes, other])
    stage = rules.n_stage(stations)
    return text, n_staging_answer(stage), {"stage": stage, "stations": list(stations)}


_NO_METS = ("No evidence of distant metastasis.", "Adrenal nodule with washout, compatible with adenoma.",
            "No suspicious osseous lesions.", "Liver is unremarkable.", "No intracranial lesions on the included images.",
            "Benign hepatic cyst.")


def m_staging(rng):
    sites = tuple(rng.sample(rules.M_SITES, rng.choice((0, 0, 1, 2))))
    if sites:
        mets = _pick(rng, "Metastatic disease to the " + " and ".join(sites) + ".",
                     " and ".join(s.capitalize() for s in sites) + " metastases.",
                     f"New FDG-avid lesions in the {' and '.join(sites)}, consistent with metastases.")
        findings = [mets]
    else:
        findings = rng.sample(_NO_METS, 2)
    primary = _pick(rng, f"Primary lung adenocarcinoma in the {rng.choice(LOBES)}.",
                    f"Known {rng.randint(20, 60)} mm tumour of the {rng.choice(LOBES)}.")
    text = _frame(rng, _pick(rng, "PET-CT staging.", "CT chest, abdomen and pelvis for staging."), [primary] + findings)
    stage = rules.m_stage(sites)
    return text, stage, {"sites": list(sites)}


# -------------------------------------------------------------------- NLI

_NLI_FINDINGS = ("pleural effusion", "pneumothorax", "consolidation", "atelectasis", "pulmonary nodule",
                 "pulmonary edema", "rib fracture", "hilar lymphadenopathy")
_SEVERITY = ("small", "moderate", "large", "mild", "trace")


def nli(rng):
    finding, other = rng.sample(_NLI_FINDINGS, 2)
    side, sev = rng.choice(SIDES), rng.choice(_SEVERITY)
    premise = _pick(rng, f"There is a {sev} {side} {finding}.", f"{sev.capitalize()} {side} {finding} is present.",
                    f"The radiograph shows a {sev} {finding} on the {side}.")
    label = rng.choice(("entailment", "contradiction", "neutral"))
    hypothesis = {
        "entailment": _pick(rng, f"A {finding} is present.", f"There is {finding} on the {side}.",
                            f"The {side} side shows {finding}."),
        "contradiction": _pick(rng, f"There is no {finding}.", f"No {finding} is seen.",
                               f"The study is negative for {finding}."),
        "neutral": _pick(rng, f"There is no {other}.", f"A {other} is present.", f"The {other} has resolved."),
    }[label]
    return f"Premise: {premise}\nHypothesis: {hypothesis}", label, {}


# -------------------------------------------------------------- CheXpert

_CX_PHRASE = {
    "Enlarged Cardiomediastinum": ("widened mediastinum", "enlarged cardiomediastinal silhouette"),
    "Cardiomegaly": ("cardiomegaly", "an enlarged heart"), "Lung Opacity": ("airspace opacity", "hazy opacity"),
    "Lung Lesion": ("pulmonary nodule", "a lung mass"), "Edema": ("pulmonary edema", "interstitial edema"),
    "Consolidation": ("consolidation", "lobar consolidation"), "Pneumonia": ("pneumonia", "infectious pneumonia"),
    "Atelectasis": ("atelectasis", "bibasilar atelectasis"), "Pneumothorax": ("pneumothorax", "apical pneumothorax"),
    "Pleural Effusion": ("pleural effusion", "a layering effusion"), "Pleural Other": ("pleural thickening",),
    "Fracture": ("rib fracture", "a clavicle fracture"), "Support Devices": ("endotracheal tube", "a central line"),
}


def chexpert(rng):
    values, sentences = {}, []
    for label in CHEXPERT_LABELS[1:]:
        state = rng.choices(("unmentioned", "positive", "negative", "uncertain"), (2, 3, 2, 2))[0]
        phrase = rng.choice(_CX_PHRASE[label])
        if state == "positive":
            sentences.append(_pick(rng, f"There is {phrase}.", f"{phrase[0].upper() + phrase[1:]} is present.",
                                   f"Findings of {phrase}."))
        elif state == "negative":
            sentences.append(_pick(rng, f"No {phrase}.", f"There is no {phrase}.", f"Negative for {phrase}."))
        elif state == "uncertain":
            sentences.append(_pick(rng, f"Possible {phrase}.", f"Cannot exclude {phrase}.", f"Likely {phrase}."))
        # CheXpert: an unmentioned label is negative for this task
        values[label] = "negative" if state == "unmentioned" else state
    values = {"No Finding": rules.chexpert_no_finding(values), **values}
    text = _frame(rng, _pick(rng, "Chest radiograph, PA and lateral.", "Portable AP chest.", "CXR 2 views."),
                  sentences or ["Lungs are clear."])
    return text, chexpert_answer(values), {"values": values}


# ------------------------------------------------------------- temporal

_TEMPORAL_FINDINGS = ("pleural effusion", "pulmonary nodule", "consolidation", "lymph node", "liver lesion",
                      "pneumothorax", "adrenal nodule", "renal cyst", "bone lesion", "ground-glass opacity")


def temporal(rng):
    prior, current, pairs = [], [], []
    for finding in rng.sample(_TEMPORAL_FINDINGS, rng.randint(1, 3)):
        before = rng.choice((0, 6, 8, 12, 15, 20, 25))
        after = rng.choice((0, before, round(before * 1.5) or 10, before // 2))
        if before == 0 and after == 0:
            continue
        prior.append(f"{finding} {before} mm" if before else f"no {finding}")
        current.append(f"{finding} {after} mm" if after else f"no {finding}")
        pairs.append((finding, rules.temporal_change(before, after)))
    if not pairs:
        return temporal(rng)
    text = _pick(rng, f"PRIOR: {'; '.join(prior)}.\nCURRENT: {'; '.join(current)}.",
                 f"Previous study: {', '.join(prior)}. Today: {', '.join(current)}.",
                 f"Comparison with prior. Then: {'; '.join(prior)}. Now: {'; '.join(current)}.")
    return text, temporal_answer(pairs), {"pairs": [list(p) for p in pairs]}


# ------------------------------------------------------------------- NER

_ANATOMY = ("right lower lobe", "left lung base", "mediastinum", "right hilum", "cardiac silhouette",
            "left costophrenic angle", "right apex", "lingula", "left upper lobe", "trachea")
_OBS = ("opacity", "effusion", "nodule", "consolidation", "atelectasis", "mass", "pneumothorax", "calcification")


def ner(rng):
    sentences, entities = [], []
    for _ in range(rng.randint(1, 3)):
        anat, obs = rng.choice(_ANATOMY), rng.choice(_OBS)
        kind = rng.choice(("present", "absent", "uncertain"))
        if kind == "present":
            sentences.append(_pick(rng, f"There is {obs} in the {anat}.", f"{obs.capitalize()} in the {anat}."))
            entities += [(anat, "ANAT-DP"), (obs, "OBS-DP")]
        elif kind == "absent":
            sentences.append(_pick(rng, f"No {obs} in the {anat}.", f"The {anat} is clear of {obs}."))
            entities += [(anat, "ANAT-DP"), (obs, "OBS-DA")]
        else:
            sentences.append(_pick(rng, f"Possible {obs} in the {anat}.", f"Questionable {obs} at the {anat}."))
            entities += [(anat, "ANAT-DP"), (obs, "OBS-U")]
    unique = list(dict.fromkeys(entities))
    return " ".join(sentences), ner_answer(unique), {"entities": [list(e) for e in unique]}


# ------------------------------------------------------ impression and QA


def impression(rng):
    size, lobe = rng.randint(4, 30), rng.choice(LOBES)
    kind = rng.choice(("solid", "spiculated", "ground-glass", "part-solid"))
    effusion = rng.random() < 0.4
    findings = [f"{size} mm {kind} nodule in the {lobe}.",
                "Small left pleural effusion." if effusion else "No pleural effusion.",
                _pick(rng, "Heart size is normal.", "Mild cardiomegaly.", "No lymphadenopathy.", "Old rib fracture.")]
    concern = "suspicious for malignancy" if kind == "spiculated" or size >= 15 else "likely benign; follow-up advised"
    ref = f"{size} mm {kind} {lobe} nodule, {concern}." + (" Small left pleural effusion." if effusion else "")
    return _frame(rng, _pick(rng, "CT chest.", "CT thorax with contrast.", "Chest CT without contrast."), findings), ref, {}


BIRADS_MEANING = {"0": "Incomplete; additional imaging is needed.", "1": "Negative; routine screening.",
                   "2": "Benign finding; routine screening.", "3": "Probably benign; short-interval follow-up.",
                   "4": "Suspicious abnormality; biopsy should be considered.",
                   "5": "Highly suggestive of malignancy; biopsy is recommended.",
                   "6": "Known biopsy-proven malignancy."}


def qa(rng):
    """Open radiology questions (the published task's input is a question, not a report), answered
    from the same rule tables the labels come from."""
    kind = rng.randrange(5)
    if kind == 0:
        cat = rng.choice(list(BIRADS_MEANING))
        q, a = _pick(rng, f"What does BI-RADS {cat} mean?", f"What is the meaning of a BI-RADS {cat} assessment?"), \
            BIRADS_MEANING[cat]
    elif kind == 1:
        nodule = rng.choice(("solid", "part-solid", "ground-glass"))
        size = round(rng.uniform(3, 35), 1)
        solid = round(rng.uniform(1, size), 1) if nodule == "part-solid" else 0.0
        extra = f" with a {solid} mm solid component" if nodule == "part-solid" else ""
        q = _pick(rng, f"What Lung-RADS category is a {size} mm {nodule} nodule{extra} on a baseline screening CT?",
                  f"A baseline LDCT shows a {nodule} {size} mm nodule{extra}. Which Lung-RADS category applies?")
        a = f"Lung-RADS {rules.lung_rads(nodule, size, solid)}."
    elif kind == 2:
        comp = rng.choice(list(rules.TIRADS_POINTS["composition"]))
        echo = rng.choice(rules.tirads_echogenicities(comp))
        shape = rng.choice(list(rules.TIRADS_POINTS["shape"]))
        margin = rng.choice(list(rules.TIRADS_POINTS["margin"]))
        pts = rules.tirads_points(comp, echo, shape, margin, ("none",))
        q = _pick(rng, f"Which ACR TI-RADS level is a {comp}, {echo}, {shape} thyroid nodule with {margin} margins "
                       "and no echogenic foci?",
                  f"A thyroid nodule is {comp} and {echo}, {shape}, with {margin} margins and no echogenic foci. "
                  "What is its TI-RADS level?")
        a = f"TI-RADS {rules.tirads_category(pts)} ({pts} points)."
    elif kind == 3:
        station = rng.choice(list(rules.N_STATIONS))
        q = _pick(rng, f"In lung cancer, which N stage do involved {station} lymph nodes indicate?",
                  f"What N category corresponds to {station} nodal involvement in lung cancer?")
        a = f"{rules.n_stage((station,))}."
    else:
        stenosis = rng.choice((0, 20, 40, 60, 80, 100))
        cat = rules.cadrads_category(stenosis)
        q = _pick(rng, f"What CAD-RADS category is a {stenosis}% maximal coronary stenosis?",
                  f"Coronary CTA shows {stenosis}% maximal stenosis. Which CAD-RADS category is it?")
        a = f"CAD-RADS {cat}."
    return q, a, {}

"""The training split's generators: the same rules, far more wording, labels balanced per task.

A small model fine-tuned on a few templates learns the templates (and, where one label is
commoner, the majority answer) instead of the rule. These generators draw the label first,
uniformly over the task's labels (N0/N1/N2, M0/M1, NLI's three, each RADS system's categories,
each CheXpert label's values, each temporal change), then draw the findings that the rule maps
to that label, and write them in varied wording: section layout and order, synonyms and
abbreviations, sizes in mm or cm, distractors, negations and hedges, several organs per report,
nodes by side and station beside a primary on a stated side, benign look-alikes that do not
raise a stage. Every label is still computed by ``rules`` from the drawn findings (``labels``
carries those findings so a test re-derives it); nothing is labelled by hand.

RADS reports are in ``synth_train_rads``, the shared wording in ``synth_wording``.
Test, validation and generalization samples come from ``synth_reports``/``synth_tasks`` and
``synth_heldout`` unchanged. These generators may reuse the test generators' sentences (the
test split is in-distribution wording), never the generalization split's: its numbered
"EXAM/IMPRESSION/ADDENDUM" dictation, key-value lines and lobe abbreviations stay unseen.
"""

from __future__ import annotations

import random

from . import rules
from . import synth_reports as r
from .labels import CHEXPERT_LABELS, NLI_LABELS, N_STAGES
from .styles import TEMPORAL_STYLE, chexpert_answer, n_staging_answer, ner_answer, temporal_answer
from .synth_reports import Gen
from .synth_train_rads import rads
from .synth_tasks import BIRADS_MEANING
from .synth_wording import LOBES, SIDES, incidentals, pick, report, size_text

# ------------------------------------------------------------------ N staging

# (name as written, station numbers, stage it implies when ipsilateral to the primary): the
# IASLC map's N1 and N2 stations. Subcarinal (7) is N2 whichever side the primary is on; the
# aortopulmonary window (5) and para-aortic (6) stations are left-sided: N2 for a left primary.
_N1_STATIONS = (("hilar", "10"), ("interlobar", "11"), ("peribronchial", None), ("lobar", "12"),
                ("intrapulmonary", None))
_N2_STATIONS = (("lower paratracheal", "4"), ("upper paratracheal", "2"), ("paratracheal", "4"),
                ("paraoesophageal", "8"), ("pulmonary ligament", "9"), ("mediastinal", None))
_N2_LEFT_ONLY = (("aortopulmonary window", "5"), ("para-aortic", "6"))


def _node_name(rng: random.Random, side: str | None, station: str, number: str | None) -> str:
    """A node station as reports name it: by side and name, by IASLC station number, or both."""
    letter = {"right": "R", "left": "L", None: ""}[side]
    sided = f"{side} {station}" if side else station
    options = [sided, sided]
    if number:
        tag = f"{number}{letter if number not in ('5', '6', '7', '8', '9') else ''}"
        options += [f"station {tag}", f"{sided} (station {tag})"]
    return rng.choice(options)


def _n_nodes(rng: random.Random, stage: str, side: str) -> list[dict]:
    """Involved nodes whose farthest station gives ``stage`` for a primary on ``side``."""
    n1 = [dict(side=side, station=s, number=n, stage=1) for s, n in _N1_STATIONS]
    n2 = [dict(side=side, station=s, number=n, stage=2) for s, n in _N2_STATIONS]
    n2.append(dict(side=None, station="subcarinal", number="7", stage=2))
    if side == "left":
        n2 += [dict(side=None, station=s, number=n, stage=2) for s, n in _N2_LEFT_ONLY]
    if stage == "N0":
        return []
    if stage == "N1":
        return rng.sample(n1, rng.choice((1, 1, 2)))
    chosen = rng.sample(n2, rng.choice((1, 1, 2)))
    return chosen + (rng.sample(n1, 1) if rng.random() < 0.4 else [])


def _node_sentence(rng: random.Random, node: dict, mm: int) -> str:
    name = _node_name(rng, node["side"], node["station"], node["number"])
    size = size_text(rng, mm)
    return pick(rng, f"Enlarged {name} lymph node measuring {size} in short axis.",
                 f"{name[0].upper() + name[1:]} lymphadenopathy, {size}.",
                 f"There is a {size} {name} node.",
                 f"Pathologically enlarged {name} node ({size} short axis).",
                 f"FDG-avid {name} lymph node, {size}.",
                 f"A {name} node measures {size} and is suspicious for nodal metastasis.",
                 f"{name[0].upper() + name[1:]} nodal mass of {size}.",
                 f"Metastatic {name} adenopathy up to {size}.")


_BENIGN_NODES = ("Calcified {name} lymph node, in keeping with prior granulomatous disease.",
                 "Subcentimetre {name} node ({mm} mm short axis), not enlarged by size criteria.",
                 "A {mm} mm {name} node with a fatty hilum, reactive in appearance.",
                 "Small {name} lymph node measuring {mm} mm, within normal limits.")
_N0_SENTENCES = ("No enlarged thoracic lymph nodes.", "Mediastinal and hilar nodes are not enlarged.",
                 "No hilar or mediastinal lymphadenopathy.", "No lymphadenopathy.",
                 "Lymph nodes are within normal size limits.", "No pathologically enlarged nodes are identified.",
                 "No FDG-avid nodal disease.", "There is no thoracic adenopathy.")


def _benign_node(rng: random.Random, primary_side: str) -> tuple[str, dict]:
    """A node that does not count: calcified or under 10 mm short axis, on either side."""
    side = rng.choice((primary_side, "left" if primary_side == "right" else "right"))
    station, number = rng.choice(_N1_STATIONS + _N2_STATIONS)
    mm = rng.randint(4, 9)
    name = _node_name(rng, side, station, number)
    return rng.choice(_BENIGN_NODES).format(name=name, mm=mm), dict(side=side, station=station, mm=mm,
                                                                      involved=False)


def n_staging(rng: random.Random) -> tuple[str, str, dict]:
    stage = rng.choice(N_STAGES)
    side = rng.choice(SIDES)
    lobe = rng.choice(LOBES[side])
    size = size_text(rng, rng.randint(12, 70))
    primary = pick(rng, f"Spiculated {size} mass in the {lobe}.", f"Primary tumour in the {lobe} measures {size}.",
                    f"{size} {rng.choice(('spiculated', 'lobulated', 'cavitating'))} {lobe} mass, "
                    "consistent with the known primary.",
                    f"Known {side}-sided lung carcinoma: {size} lesion in the {lobe}.",
                    f"There is a {size} mass centred in the {lobe}.")
    findings = [primary]
    nodes = []
    if rng.random() < 0.15 and stage != "N0":
        # the test split's wording: stations named relative to the primary ("ipsilateral hilar")
        wanted = int(stage[1])
        stations = [s for s, n in rules.N_STATIONS.items() if n == wanted]
        others = [s for s, n in rules.N_STATIONS.items() if 0 < n < wanted]
        picked = rng.sample(stations, 1) + (rng.sample(others, 1) if others and rng.random() < 0.4 else [])
        findings.append(pick(rng, f"Enlarged {' and '.join(picked)} lymph nodes, up to {size_text(rng, rng.randint(11, 25))}.",
                              f"{' and '.join(p.capitalize() for p in picked)} lymphadenopathy."))
        nodes = [dict(side="ipsilateral", station=p, involved=True) for p in picked]
    else:
        for node in _n_nodes(rng, stage, side):
            findings.append(_node_sentence(rng, node, rng.randint(11, 30)))
            nodes.append(dict(side=node["side"], station=node["station"], involved=True))
        if stage == "N0" and rng.random() < 0.7:
            findings.append(rng.choice(_N0_SENTENCES))
    for _ in range(rng.choice((0, 0, 1, 1, 2))):
        sentence, node = _benign_node(rng, side)
        findings.append(sentence)
        nodes.append(node)
    findings += incidentals(rng, "chest")
    exam = pick(rng, "CT chest with contrast.", "Staging CT thorax.", "PET-CT for staging.", "CT thorax, staging.",
                 "FDG PET/CT, initial staging of lung cancer.", "Contrast-enhanced CT of the chest.")
    stage_out = rules.n_stage_lateral(side, nodes)
    return report(rng, exam, findings), n_staging_answer(stage_out), {"stage": stage_out, "primary_side": side,
                                                                       "nodes": nodes}


# ------------------------------------------------------------------ M staging

_MET_SITES = {  # site -> ways a report says there is distant disease there
    "liver": ("multiple hypoattenuating hepatic lesions, consistent with metastases",
              "hepatic metastases in segments {seg}", "a {size} liver metastasis in segment {seg}",
              "new liver lesions in keeping with metastatic disease"),
    "bone": ("lytic lesion in the {bone}, compatible with a bone metastasis",
             "sclerotic osseous metastases involving the {bone}", "FDG-avid destructive lesion of the {bone}",
             "a pathological fracture through a metastasis in the {bone}"),
    "brain": ("an enhancing {size} lesion in the {lobe2} lobe, consistent with a cerebral metastasis",
              "multiple ring-enhancing brain metastases", "intracranial metastatic deposits"),
    "adrenal": ("a {size} {side} adrenal mass with avid FDG uptake, consistent with metastasis",
                "{side} adrenal metastasis", "enlarging {side} adrenal nodule without washout, metastatic"),
    "contralateral lung": ("new nodules in the contralateral lung, in keeping with metastases",
                           "a {size} contralateral lung metastasis", "innumerable bilateral pulmonary metastases"),
    "pleural": ("malignant pleural effusion with nodular pleural thickening",
                "pleural metastatic deposits", "nodular pleural thickening consistent with pleural metastases"),
    "peritoneal": ("peritoneal carcinomatosis with omental caking", "peritoneal metastatic nodules"),
    "distant nodes": ("enlarged retroperitoneal lymph nodes consistent with distant nodal metastases",
                      "metastatic para-aortic lymphadenopathy below the diaphragm"),
}
_BENIGN_LOOKALIKES = (  # findings in organs metastases go to that do not make M1
    "{side} adrenal nodule of {size} with low attenuation (under 10 HU), in keeping with an adenoma.",
    "Simple hepatic cyst of {size}.", "Hepatic haemangioma in segment {seg}, unchanged.",
    "Sclerotic bone island in the {bone}, benign.", "Schmorl's node in the {bone}.",
    "Calcified granuloma in the lung.", "Small benign-appearing renal cyst.",
    "Focal fatty sparing of the liver.", "Degenerative endplate change of the {bone}.",
)
_M0_SENTENCES = ("No evidence of distant metastasis.", "No distant metastatic disease.",
                 "No suspicious osseous lesions.", "The liver is free of metastases.",
                 "No hepatic or adrenal metastases.", "No intracranial lesions on the included images.",
                 "No suspicious bone lesion.", "The adrenal glands are normal.", "No pleural effusion.",
                 "No FDG-avid distant disease.")


def _fill(rng: random.Random, template: str) -> str:
    return template.format(size=size_text(rng, rng.randint(8, 45)), seg=rng.choice(("II", "IV", "VI", "VII", "VIII")),
                           bone=rng.choice(("T8 vertebral body", "left iliac bone", "right femur", "L2 vertebra",
                                            "sternum", "right sixth rib")),
                           lobe2=rng.choice(("frontal", "parietal", "occipital", "temporal")),
                           side=rng.choice(SIDES))


def m_staging(rng: random.Random) -> tuple[str, str, dict]:
    stage = rng.choice(("M0", "M1"))
    sites = rng.sample(list(_MET_SITES), rng.choice((1, 1, 2))) if stage == "M1" else []
    findings = []
    for site in sites:
        phrase = _fill(rng, rng.choice(_MET_SITES[site]))
        findings.append(pick(rng, f"{phrase[0].upper() + phrase[1:]}.", f"Evidence of {phrase}.",
                              f"Findings include {phrase}.", f"{phrase[0].upper() + phrase[1:]} is noted."))
    lookalikes = rng.sample(_BENIGN_LOOKALIKES, rng.choice((0, 1, 1, 2)))
    for template in lookalikes:
        sentence = _fill(rng, template)
        findings.append(sentence[0].upper() + sentence[1:])
    if stage == "M0":
        findings += rng.sample(_M0_SENTENCES, rng.choice((1, 1, 2)))
    side = rng.choice(SIDES)
    primary = pick(rng, f"Primary lung adenocarcinoma in the {rng.choice(LOBES[side])}.",
                    f"Known {size_text(rng, rng.randint(15, 60))} tumour of the {rng.choice(LOBES[side])}.",
                    f"The {side} lung primary measures {size_text(rng, rng.randint(15, 60))}.",
                    f"Biopsy-proven non-small cell carcinoma, {rng.choice(LOBES[side])}.")
    findings.append(primary)
    findings += incidentals(rng, rng.choice(("chest", "abdomen")), (0, 1))
    exam = pick(rng, "PET-CT staging.", "CT chest, abdomen and pelvis for staging.", "Whole-body FDG PET/CT.",
                 "CT thorax and abdomen, staging.", "Staging CT with contrast.")
    m = rules.m_stage(tuple(sites))
    return report(rng, exam, findings), m, {"sites": sites, "lookalikes": len(lookalikes)}


# ------------------------------------------------------------------------ NLI

_NLI_FINDINGS = {  # finding -> words a hypothesis may use for it
    "pleural effusion": ("pleural effusion", "fluid in the pleural space", "an effusion"),
    "pneumothorax": ("pneumothorax", "a collapsed lung from air in the pleural space", "a pneumothorax"),
    "consolidation": ("consolidation", "airspace consolidation", "an area of consolidation"),
    "atelectasis": ("atelectasis", "volume loss", "atelectatic lung"),
    "pulmonary nodule": ("pulmonary nodule", "a lung nodule", "a nodule in the lung"),
    "pulmonary edema": ("pulmonary edema", "pulmonary oedema", "fluid overload in the lungs"),
    "rib fracture": ("rib fracture", "a fractured rib", "a broken rib"),
    "hilar lymphadenopathy": ("hilar lymphadenopathy", "enlarged hilar nodes", "hilar adenopathy"),
    "cardiomegaly": ("cardiomegaly", "an enlarged heart", "increased cardiac size"),
    "pneumoperitoneum": ("pneumoperitoneum", "free intraperitoneal air", "free air under the diaphragm"),
}
_SEVERITY = ("small", "moderate", "large", "mild", "trace", "new", "stable")


def nli(rng: random.Random) -> tuple[str, str, dict]:
    label = rng.choice(NLI_LABELS)
    finding, other = rng.sample(list(_NLI_FINDINGS), 2)
    side, sev = rng.choice(SIDES), rng.choice(_SEVERITY)
    premise_core = pick(rng, f"There is a {sev} {side} {finding}.", f"{sev.capitalize()} {side} {finding} is present.",
                         f"The radiograph shows a {sev} {finding} on the {side}.",
                         f"{sev.capitalize()} {finding} on the {side}.",
                         f"Findings are consistent with a {sev} {side}-sided {finding}.",
                         f"CT demonstrates {finding} on the {side}, {sev}.")
    distractors = rng.sample(("The heart size is normal.", "No acute osseous abnormality.",
                              "The mediastinum is midline.", "Lines and tubes are unchanged.",
                              "The trachea is central."), rng.choice((0, 0, 1, 2)))
    sentences = [premise_core] + distractors
    rng.shuffle(sentences)
    premise = " ".join(sentences)
    word = rng.choice(_NLI_FINDINGS[finding])
    other_word = rng.choice(_NLI_FINDINGS[other])
    hypothesis = {
        "entailment": pick(rng, f"A {finding} is present.", f"There is {word} on the {side}.",
                            f"The {side} side shows {word}.", f"The patient has {word}.",
                            f"Imaging shows {word}.", f"{word[0].upper() + word[1:]} is seen."),
        "contradiction": pick(rng, f"There is no {finding}.", f"No {word} is seen.",
                               f"The study is negative for {word}.", f"The lungs show no {word}.",
                               f"{word[0].upper() + word[1:]} is absent.", f"There is no evidence of {word}.",
                               f"The {side} side is free of {word}."),
        "neutral": pick(rng, f"There is no {other_word}.", f"A {other} is present.", f"The {other} has resolved.",
                         f"The patient has {other_word}.", f"{other_word[0].upper() + other_word[1:]} is absent.",
                         "The patient will need surgery.", f"The {finding} is caused by {other_word}."),
    }[label]
    return f"Premise: {premise}\nHypothesis: {hypothesis}", label, {"finding": finding, "other": other,
                                                                     "label": label}


# ------------------------------------------------------------------- CheXpert

_CX_PHRASES = {
    "Enlarged Cardiomediastinum": ("widened mediastinum", "enlarged cardiomediastinal silhouette",
                                   "mediastinal widening", "prominent mediastinal contour"),
    "Cardiomegaly": ("cardiomegaly", "an enlarged heart", "enlargement of the cardiac silhouette",
                     "increased cardiothoracic ratio"),
    "Lung Opacity": ("airspace opacity", "hazy opacity", "patchy opacities", "increased lung density"),
    "Lung Lesion": ("pulmonary nodule", "a lung mass", "a nodular opacity", "a pulmonary mass"),
    "Edema": ("pulmonary edema", "interstitial edema", "pulmonary oedema", "vascular congestion with edema"),
    "Consolidation": ("consolidation", "lobar consolidation", "dense airspace consolidation",
                      "consolidation of the lower lobe"),
    "Pneumonia": ("pneumonia", "infectious pneumonia", "bronchopneumonia", "an infective process"),
    "Atelectasis": ("atelectasis", "bibasilar atelectasis", "subsegmental atelectasis", "plate-like atelectasis"),
    "Pneumothorax": ("pneumothorax", "apical pneumothorax", "a small pneumothorax", "a pleural air collection"),
    "Pleural Effusion": ("pleural effusion", "a layering effusion", "blunting of the costophrenic angle by fluid",
                         "bilateral effusions"),
    "Pleural Other": ("pleural thickening", "pleural plaques", "apical pleural thickening"),
    "Fracture": ("rib fracture", "a clavicle fracture", "a displaced rib fracture", "vertebral compression fracture"),
    "Support Devices": ("endotracheal tube", "a central line", "a pacemaker", "a nasogastric tube", "sternal wires"),
}
_CX_POSITIVE = ("There is {p}.", "{P} is present.", "Findings of {p}.", "{P}.", "{P} is again seen.",
                "Interval development of {p}.", "Evidence of {p}.", "{P} is noted.")
_CX_NEGATIVE = ("No {p}.", "There is no {p}.", "Negative for {p}.", "No evidence of {p}.", "Without {p}.",
                "{P} is not seen.", "{P} has resolved.")
_CX_UNCERTAIN = ("Possible {p}.", "Cannot exclude {p}.", "Likely {p}.", "Questionable {p}.", "{P} is suspected.",
                 "May represent {p}.", "Findings could reflect {p}.", "Probable {p}.", "Suggestion of {p}.")


def _bare(phrase: str) -> str:
    """A phrase without its article, for negations and hedges ("no pneumothorax", not "no a pneumothorax")."""
    return phrase.split(" ", 1)[1] if phrase.startswith(("a ", "an ")) else phrase


def _cx(template: str, phrase: str) -> str:
    if not template.startswith(("There is {p}", "{P} is", "Findings of", "Interval", "Evidence of", "{P}.")):
        phrase = _bare(phrase)
    return template.format(p=phrase, P=phrase[0].upper() + phrase[1:])


def chexpert(rng: random.Random) -> tuple[str, str, dict]:
    """Each of the 13 findings positive, negative or uncertain with equal chance; a negative one
    is negated in the text or left unmentioned (CheXpert reads unmentioned as negative for this
    task); two negations may share a sentence. No Finding follows from the others, by rule."""
    values, sentences, negated = {}, [], []
    for label in CHEXPERT_LABELS[1:]:
        state = rng.choice(("positive", "negative", "uncertain"))
        phrase = rng.choice(_CX_PHRASES[label])
        if state == "positive":
            sentences.append(_cx(rng.choice(_CX_POSITIVE), phrase))
        elif state == "uncertain":
            sentences.append(_cx(rng.choice(_CX_UNCERTAIN), phrase))
        elif rng.random() < 0.5:
            negated.append(phrase)
        values[label] = state
    rng.shuffle(negated)
    while negated:
        if len(negated) >= 2 and rng.random() < 0.4:
            a, b = negated.pop(), negated.pop()
            a, b = _bare(a), _bare(b)
            sentences.append(pick(rng, f"No {a} or {b}.", f"There is no {a} or {b}.", f"No {a}, no {b}."))
        else:
            sentences.append(_cx(rng.choice(_CX_NEGATIVE), negated.pop()))
    values = {"No Finding": rules.chexpert_no_finding(values), **values}
    exam = pick(rng, "Chest radiograph, PA and lateral.", "Portable AP chest.", "CXR 2 views.", "Chest X-ray, AP supine.",
                 "Frontal chest radiograph.", "Chest, single frontal view.")
    return report(rng, exam, sentences or ["Lungs are clear."]), chexpert_answer(values), {"values": values}


# ------------------------------------------------------------------- temporal

_TEMPORAL_FINDINGS = ("pleural effusion", "pulmonary nodule", "consolidation", "lymph node", "liver lesion",
                      "pneumothorax", "adrenal nodule", "renal cyst", "bone lesion", "ground-glass opacity",
                      "mass", "pericardial effusion", "splenic lesion", "thyroid nodule")


def _sizes_for(rng: random.Random, change: str) -> tuple[int, int]:
    """Sizes before and after that the rule (``rules.temporal_change``) calls ``change``."""
    before = rng.randint(5, 40)
    if change == "new":
        return 0, before
    if change == "resolved":
        return before, 0
    if change == "worsened":
        return before, rng.randint(int(before * 1.2) + 1, int(before * 2.2) + 2)
    if change == "improved":
        return before, rng.randint(max(1, int(before * 0.3)), max(1, int(before * 0.8) - 1))
    return before, rng.randint(int(before * 0.8) + 1, max(int(before * 0.8) + 1, int(before * 1.2)))


def _then_now(rng: random.Random, finding: str, before: int, after: int) -> str:
    b, a = size_text(rng, before) if before else "", size_text(rng, after) if after else ""
    if not before:
        return pick(rng, f"New {a} {finding}, not present previously.", f"Interval development of a {a} {finding}.",
                     f"A {finding} measuring {a} has appeared since the prior study.")
    if not after:
        return pick(rng, f"The previously seen {b} {finding} has resolved.", f"The {finding} ({b} before) is no longer seen.",
                     f"Resolution of the {finding}, which measured {b} on the prior.")
    return pick(rng, f"The {finding} measures {a}, previously {b}.", f"{finding[0].upper() + finding[1:]}: {b} then, {a} now.",
                 f"The {finding} now measures {a} (prior {b}).", f"On the prior the {finding} measured {b}; today {a}.")


def temporal(rng: random.Random) -> tuple[str, str, dict]:
    pairs, sentences, sizes = [], [], []  # sentences[i] describes pairs[i]
    for finding in rng.sample(_TEMPORAL_FINDINGS, rng.randint(1, 3)):
        change = rng.choice(tuple(TEMPORAL_STYLE))
        before, after = _sizes_for(rng, change)
        assert rules.temporal_change(before, after) == change, (change, before, after)
        sentences.append(_then_now(rng, finding, before, after))
        pairs.append((finding, change))
        sizes.append([finding, before, after])
    if rng.random() < 0.5:  # the test split's layout, with the sizes in mm or cm
        prior = [f"{f} {size_text(rng, b)}" if b else f"no {f}" for f, b, _ in sizes]
        current = [f"{f} {size_text(rng, a)}" if a else f"no {f}" for f, _, a in sizes]
        text = pick(rng, f"PRIOR: {'; '.join(prior)}.\nCURRENT: {'; '.join(current)}.",
                     f"Previous study: {', '.join(prior)}. Today: {', '.join(current)}.",
                     f"Comparison with prior. Then: {'; '.join(prior)}. Now: {'; '.join(current)}.",
                     f"Before: {'; '.join(prior)}.\nAfter: {'; '.join(current)}.")
    else:
        text = report(rng, pick(rng, "Follow-up CT.", "CT chest, comparison with prior.", "Restaging CT.",
                                  "Follow-up imaging."), sentences)
        # the answer lists the changes in the order the report mentions them
        pairs = [p for _, p in sorted(zip(sentences, pairs), key=lambda sp: text.index(sp[0]))]
    return text, temporal_answer(pairs), {"pairs": [list(p) for p in pairs], "sizes": sizes}


# ------------------------------------------------------------------------ NER

_ANATOMY = ("right lower lobe", "left lung base", "mediastinum", "right hilum", "cardiac silhouette",
            "left costophrenic angle", "right apex", "lingula", "left upper lobe", "trachea", "right middle lobe",
            "left hemithorax", "retrocardiac region", "right pleural space", "left lower lobe", "aortic knob")
_OBS = ("opacity", "effusion", "nodule", "consolidation", "atelectasis", "mass", "pneumothorax", "calcification",
        "scarring", "infiltrate", "thickening", "emphysema")


def ner(rng: random.Random) -> tuple[str, str, dict]:
    sentences, entities = [], []
    for _ in range(rng.randint(1, 4)):
        anat, obs = rng.choice(_ANATOMY), rng.choice(_OBS)
        kind = rng.choice(("present", "absent", "uncertain"))
        if kind == "present":
            sentences.append(pick(rng, f"There is {obs} in the {anat}.", f"{obs.capitalize()} in the {anat}.",
                                   f"The {anat} demonstrates {obs}.", f"{obs.capitalize()} is seen at the {anat}."))
            entities += [(anat, "ANAT-DP"), (obs, "OBS-DP")]
        elif kind == "absent":
            sentences.append(pick(rng, f"No {obs} in the {anat}.", f"The {anat} is clear of {obs}.",
                                   f"There is no {obs} in the {anat}.", f"No evidence of {obs} at the {anat}."))
            entities += [(anat, "ANAT-DP"), (obs, "OBS-DA")]
        else:
            sentences.append(pick(rng, f"Possible {obs} in the {anat}.", f"Questionable {obs} at the {anat}.",
                                   f"Probable {obs} in the {anat}.", f"{obs.capitalize()} in the {anat} cannot be excluded."))
            entities += [(anat, "ANAT-DP"), (obs, "OBS-U")]
    unique = list(dict.fromkeys(entities))
    return " ".join(sentences), ner_answer(unique), {"entities": [list(e) for e in unique]}


# ----------------------------------------------------------- impression and QA


def impression(rng: random.Random) -> tuple[str, str, dict]:
    size, lobe = rng.randint(4, 30), rng.choice(r.LOBES)
    kind = rng.choice(("solid", "spiculated", "ground-glass", "part-solid"))
    effusion = rng.random() < 0.4
    nodule = pick(rng, f"{size_text(rng, size)} {kind} nodule in the {lobe}.",
                   f"There is a {kind} nodule in the {lobe} measuring {size_text(rng, size)}.",
                   f"A {size_text(rng, size)} {kind} pulmonary nodule is seen in the {lobe}.",
                   f"{kind.capitalize()} {lobe} nodule, {size_text(rng, size)}.")
    findings = [nodule,
                pick(rng, "Small left pleural effusion.", "A small left-sided pleural effusion is present.")
                if effusion else pick(rng, "No pleural effusion.", "The pleural spaces are clear."),
                *rng.sample(("Heart size is normal.", "Mild cardiomegaly.", "No lymphadenopathy.", "Old rib fracture.",
                             "Mild emphysema.", "The airways are patent."), rng.randint(1, 2))]
    concern = "suspicious for malignancy" if kind == "spiculated" or size >= 15 else "likely benign; follow-up advised"
    ref = f"{size} mm {kind} {lobe} nodule, {concern}." + (" Small left pleural effusion." if effusion else "")
    exam = pick(rng, "CT chest.", "CT thorax with contrast.", "Chest CT without contrast.", "Low-dose CT chest.")
    return report(rng, exam, findings), ref, {"size_mm": size, "kind": kind, "effusion": effusion}


def qa(rng: random.Random) -> tuple[str, str, dict]:
    """The test split's question kinds, asked in more ways; answers from the same rule tables."""
    kind = rng.randrange(5)
    if kind == 0:
        cat = rng.choice(list(BIRADS_MEANING))
        q = pick(rng, f"What does BI-RADS {cat} mean?", f"What is the meaning of a BI-RADS {cat} assessment?",
                  f"Explain a BI-RADS category {cat}.", f"A mammogram is reported as BI-RADS {cat}. What does that mean?",
                  f"How should a BI-RADS {cat} result be understood?")
        return q, BIRADS_MEANING[cat], {"kind": "birads", "category": cat}
    if kind == 1:
        nodule = rng.choice(("solid", "part-solid", "ground-glass"))
        size = round(rng.uniform(3, 35), 1)
        solid = round(rng.uniform(1, size), 1) if nodule == "part-solid" else 0.0
        extra = f" with a {solid} mm solid component" if nodule == "part-solid" else ""
        q = pick(rng, f"What Lung-RADS category is a {size} mm {nodule} nodule{extra} on a baseline screening CT?",
                  f"A baseline LDCT shows a {nodule} {size} mm nodule{extra}. Which Lung-RADS category applies?",
                  f"Baseline lung screening: {nodule} nodule of {size} mm{extra}. Lung-RADS category?",
                  f"How is a {size} mm {nodule} nodule{extra} categorised by Lung-RADS at baseline screening?")
        return q, f"Lung-RADS {rules.lung_rads(nodule, size, solid)}.", {"kind": "lungrads"}
    if kind == 2:
        comp = rng.choice(list(rules.TIRADS_POINTS["composition"]))
        echo = rng.choice(rules.tirads_echogenicities(comp))
        shape = rng.choice(list(rules.TIRADS_POINTS["shape"]))
        margin = rng.choice(list(rules.TIRADS_POINTS["margin"]))
        pts = rules.tirads_points(comp, echo, shape, margin, ("none",))
        q = pick(rng, f"Which ACR TI-RADS level is a {comp}, {echo}, {shape} thyroid nodule with {margin} margins "
                       "and no echogenic foci?",
                  f"A thyroid nodule is {comp} and {echo}, {shape}, with {margin} margins and no echogenic foci. "
                  "What is its TI-RADS level?",
                  f"Thyroid ultrasound: {comp}, {echo}, {shape} nodule, {margin} margins, no echogenic foci. "
                  "Which TI-RADS level?")
        return q, f"TI-RADS {rules.tirads_category(pts)} ({pts} points).", {"kind": "tirads"}
    if kind == 3:
        station = rng.choice(list(rules.N_STATIONS))
        q = pick(rng, f"In lung cancer, which N stage do involved {station} lymph nodes indicate?",
                  f"What N category corresponds to {station} nodal involvement in lung cancer?",
                  f"Lung cancer with {station} nodal metastasis: which N stage?")
        return q, f"{rules.n_stage((station,))}.", {"kind": "n"}
    stenosis = rng.choice((0, 10, 20, 30, 40, 50, 60, 70, 80, 90, 100))
    q = pick(rng, f"What CAD-RADS category is a {stenosis}% maximal coronary stenosis?",
              f"Coronary CTA shows {stenosis}% maximal stenosis. Which CAD-RADS category is it?",
              f"Which CAD-RADS category fits a maximal stenosis of {stenosis}%?")
    return q, f"CAD-RADS {rules.cadrads_category(stenosis)}.", {"kind": "cadrads"}


GENERATORS: dict[str, Gen] = {
    "rads_assignment": rads, "impression_generation": impression, "temporal_comparison": temporal,
    "radiology_ner": ner, "n_staging": n_staging, "m_staging": m_staging, "radiology_nli": nli,
    "abnormality_detection": chexpert, "radiology_qa": qa,
}

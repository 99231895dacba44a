"""Synthetic reports of the nine tasks: features drawn, written in varied wording, labelled by rule.

Where a published rule decides the label (ACR TI-RADS points, Lung-RADS v2022 sizes, the
LI-RADS v2018 table, TNM, CheXpert negation and uncertainty) the generator draws the
features, writes them, and lets ``rules`` compute the label; nothing is labelled by hand.
References are written in the published answer styles (``styles``). Wording varies by
header, clinical history, sentence order and phrasing, so no task repeats a handful of
inputs. Traps are included: a liver LR-5 report that mentions a lung nodule (the notebook's
cross-system case), negated metastases, unmentioned CheXpert labels.
"""

from __future__ import annotations

import random
from typing import Callable

from . import rules
from .labels import NO_RADS

Gen = Callable[[random.Random], tuple[str, str, dict]]  # -> (input, reference, labels)

SIDES = ("right", "left")
LOBES = ("right upper lobe", "right middle lobe", "right lower lobe", "left upper lobe", "left lower lobe", "lingula")
HISTORY = ("", "", "Clinical history: follow-up. ", "Indication: staging. ", "History: shortness of breath. ",
           "Indication: abnormal prior study. ", "Clinical information: weight loss. ", "Reason for exam: pain. ",
           "History: smoker, 40 pack-years. ", "Indication: routine surveillance. ")
COMPARISON = ("", "", "Comparison: none. ", "No prior studies for comparison. ", "Compared with the study of last year. ")


def _pick(rng: random.Random, *options: str) -> str:
    return rng.choice(options)


def _frame(rng: random.Random, header: str, findings: list[str]) -> str:
    """A report: header, optional history and comparison, findings in a random order."""
    rng.shuffle(findings)
    lead = _pick(rng, "Findings: ", "FINDINGS: ", "", "Report: ")
    return f"{header} {rng.choice(HISTORY)}{rng.choice(COMPARISON)}{lead}{' '.join(findings)}".replace("  ", " ")


# ------------------------------------------------------------------ RADS


def _tirads(rng):
    comp = rng.choices(list(rules.TIRADS_POINTS["composition"]), (1, 1, 3, 5))[0]  # most nodules are solid
    echo = rng.choice(rules.tirads_echogenicities(comp))
    if comp == "cystic":  # a purely cystic nodule: nothing else to score
        shape, margin, foci = "wider-than-tall", "smooth", rng.choice((("none",), ("large comet-tail artifacts",)))
    else:
        shape = rng.choice(list(rules.TIRADS_POINTS["shape"]))
        margin = rng.choice(list(rules.TIRADS_POINTS["margin"]))
        foci = tuple(rng.sample(["macrocalcifications", "peripheral rim calcifications", "punctate echogenic foci"],
                                rng.randint(0, 2))) or ("none",)
    pts = rules.tirads_points(comp, echo, shape, margin, foci)
    foci_text = "no echogenic foci" if foci == ("none",) else " and ".join(foci)
    size, side = rng.randint(5, 45), rng.choice(SIDES)
    nodule = _pick(rng, f"{size} mm {comp} {echo} nodule in the {side} thyroid lobe, {shape}, {margin} margins, "
                        f"{foci_text}.",
                   f"{side.capitalize()} lobe nodule measuring {size} mm: {comp}, {echo}, {shape}, margins {margin}, "
                   f"{foci_text}.",
                   f"A {comp} nodule of the {side} lobe ({size} mm) is {echo} and {shape} with {margin} margins and "
                   f"{foci_text}.")
    other = [_pick(rng, "The isthmus is normal.", "No cervical lymphadenopathy.", "Thyroid parenchyma is homogeneous.",
                   "The contralateral lobe is unremarkable.")]
    text = _frame(rng, _pick(rng, "Thyroid ultrasound.", "US thyroid.", "Ultrasound of the neck.", "Thyroid US."),
                  [nodule] + other)
    return text, f"TI-RADS {rules.tirads_category(pts)}", {"system": "TI-RADS", "points": pts}


def _lungrads(rng):
    header = _pick(rng, "Low-dose CT lung screening, baseline.", "LDCT chest, baseline screening.",
                   "Lung cancer screening CT (baseline).")
    if rng.random() < 0.1:
        return (_frame(rng, header, [_pick(rng, "No pulmonary nodules.", "The lungs are free of nodules.")]),
                "Lung-RADS 1", {"system": "Lung-RADS"})
    kind = rng.choice(("solid", "part-solid", "ground-glass"))
    size = round(rng.uniform(3, 40 if kind == "ground-glass" else 25), 1)
    solid = round(rng.uniform(1, size), 1) if kind == "part-solid" else 0.0
    part = f" with a {solid} mm solid component" if kind == "part-solid" else ""
    nodule = _pick(rng, f"{kind.capitalize()} nodule in the {rng.choice(LOBES)} measuring {size} mm{part}.",
                   f"There is a {size} mm {kind} nodule in the {rng.choice(LOBES)}{part}.")
    other = [_pick(rng, "No other nodules.", "Mild centrilobular emphysema.", "No pleural effusion.",
                   "Coronary artery calcification.")]
    return (_frame(rng, header, [nodule] + other), f"Lung-RADS {rules.lung_rads(kind, size, solid)}",
            {"system": "Lung-RADS", "size_mm": size})


def _lirads(rng, trap: bool = False):
    size = rng.randint(5, 40)
    aphe = rng.random() < 0.7
    feats = frozenset(rng.sample(rules.LIRADS_FEATURES, rng.randint(0, 3)))
    feat_text = (" with " + ", ".join(sorted(feats))) if feats else " without washout, capsule or growth"
    aphe_text = "nonrim arterial phase hyperenhancement" if aphe else "no arterial phase hyperenhancement"
    segment = rng.choice(["II", "III", "IV", "V", "VI", "VII", "VIII"])
    obs = _pick(rng, f"{size} mm observation in segment {segment} with {aphe_text}{feat_text}.",
                f"Segment {segment} observation measuring {size} mm shows {aphe_text}{feat_text}.")
    findings = [obs, _pick(rng, "Nodular liver contour.", "Splenomegaly.", "No ascites.", "Patent portal vein.")]
    if trap:  # the notebook's cross-system report: a lung nodule is mentioned, the liver decides
        findings.append(f"Incidental {rng.randint(3, 6)} mm nodule in the {rng.choice(LOBES)} at the lung bases.")
    header = _pick(rng, "MRI liver, cirrhosis surveillance.", "Multiphase CT abdomen in a patient with HBV cirrhosis.",
                   "Liver MRI with contrast, HCC screening.")
    return (_frame(rng, header, findings), f"LI-RADS {rules.lirads_category(size, aphe, feats)}",
            {"system": "LI-RADS", "trap": trap})


def _birads(rng):
    kind = rng.choice(("mass", "mass", "mass", "simple cyst", "biopsy-proven carcinoma"))
    feats = tuple(rng.sample(list(rules.BIRADS_SUSPICIOUS), rng.randint(0, 3))) if kind == "mass" else ()
    desc = ", ".join(feats) if feats else ("oval, circumscribed" if kind == "mass" else "")
    where = f"{rng.choice(SIDES)} breast at {rng.randint(1, 12)} o'clock, {rng.randint(2, 9)} cm from the nipple"
    lesion = _pick(rng, f"{rng.randint(6, 30)} mm {kind}{(' with ' + desc) if desc else ''} in the {where}.",
                   f"In the {where} there is a {rng.randint(6, 30)} mm {kind}{(' with ' + desc) if desc else ''}.")
    other = [_pick(rng, "Scattered fibroglandular density.", "Heterogeneously dense breasts.",
                   "No suspicious axillary nodes.", "Skin and nipple are normal.")]
    header = _pick(rng, "Diagnostic mammogram and ultrasound.", "Bilateral mammography with targeted US.",
                   "Breast ultrasound.")
    return _frame(rng, header, [lesion] + other), f"BI-RADS {rules.birads_category(kind, feats)}", {"system": "BI-RADS"}


def _cadrads(rng):
    stenosis = rng.choice((0, 10, 20, 30, 45, 60, 65, 80, 90, 100))
    cat = rules.cadrads_category(stenosis)
    vessel = rng.choice(("proximal LAD", "mid LAD", "mid RCA", "proximal LCx", "first diagonal", "distal RCA"))
    lesion = (f"Maximal stenosis {stenosis}% in the {vessel}{' (total occlusion)' if stenosis == 100 else ''}."
              if stenosis else "No coronary plaque or stenosis.")
    other = [_pick(rng, f"Calcium score {rng.randint(0, 400)}.", "Right dominant circulation.", "Normal LV size.")]
    return (_frame(rng, _pick(rng, "Coronary CT angiography.", "CCTA."), [lesion] + other), f"CAD-RADS {cat}",
            {"system": "CAD-RADS", "stenosis": stenosis})


def _scored(system: str, phrases: dict[str, tuple[str, ...]], headers: tuple[str, ...], others: tuple[str, ...]) -> Gen:
    def gen(rng):
        cat = rng.choice(list(phrases))
        finding = rng.choice(phrases[cat]).format(size=rng.randint(5, 40), side=rng.choice(SIDES))
        return (_frame(rng, rng.choice(headers), [finding + ".", rng.choice(others)]), f"{system} {cat}",
                {"system": system})
    return gen


PIRADS_PHRASES = {
    "1": ("peripheral zone normal on DWI and ADC", "no focal abnormality in the peripheral or transition zone"),
    "2": ("linear/wedge-shaped hypointensity on ADC", "indistinct hypointensity of the {side} peripheral zone"),
    "3": ("focal mild hypointensity on ADC, indeterminate", "heterogeneous {side} peripheral zone signal, equivocal"),
    "4": ("focal markedly hypointense ADC lesion {size} mm in the {side} peripheral zone (under 15 mm)",),
    "5": ("markedly restricting {size} mm {side} peripheral zone lesion with extraprostatic extension",)}
_PIRADS = _scored("PI-RADS", PIRADS_PHRASES,
    ("MRI prostate.", "Multiparametric prostate MRI."), ("Seminal vesicles are normal.", "No pelvic lymphadenopathy."))
VIRADS_PHRASES = {
    "1": ("uninterrupted low-signal muscle layer, {size} mm lesion",), "2": ("stalked lesion with intact muscle layer",),
    "3": ("sessile lesion without a stalk, muscle layer equivocal",),
    "4": ("interruption of the muscle layer by tumour on the {side} wall",),
    "5": ("tumour extending through the bladder wall into perivesical fat",)}
_VIRADS = _scored("VI-RADS", VIRADS_PHRASES,
    ("MRI bladder.", "Multiparametric bladder MRI."), ("Upper tracts are not dilated.", "No pelvic nodes."))
ORADS_PHRASES = {
    "1": ("normal premenopausal {side} ovary with follicles",), "2": ("simple cyst {size} mm in the {side} ovary",),
    "3": ("multilocular cyst with smooth septations, under 10 cm", "unilocular cyst with smooth inner wall, {size} mm"),
    "4": ("multilocular cyst with a smooth solid component", "unilocular cyst with a solid component, {size} mm"),
    "5": ("solid lesion with irregular contour and ascites", "{size} mm solid {side} adnexal mass with strong flow")}
_ORADS = _scored("O-RADS", ORADS_PHRASES,
    ("Pelvic ultrasound.", "Transvaginal ultrasound."), ("Uterus is normal.", "No free fluid."))
NIRADS_PHRASES = {
    "1": ("expected post-treatment change without enhancement",), "2": ("superficial mucosal enhancement",),
    "3": ("discrete nodular enhancement, new, {size} mm",), "4": ("definite recurrence with biopsy-proven tumour",)}
_NIRADS = _scored("NI-RADS", NIRADS_PHRASES,
    ("Post-treatment neck CT.", "Surveillance CT neck with contrast."), ("No new cervical nodes.", "Airway patent."))
GBRADS_PHRASES = {
    "1": ("normal gallbladder wall",), "2": ("smooth symmetric wall thickening",),
    "3": ("focal smooth wall thickening with intramural cysts",),
    "4": ("asymmetric wall thickening with indistinct interface to the liver",),
    "5": ("mass-forming lesion replacing the gallbladder, {size} mm",)}
_GBRADS = _scored("GB-RADS", GBRADS_PHRASES,
    ("Gallbladder ultrasound.", "RUQ ultrasound."), ("Common bile duct is not dilated.", "No gallstones."))


def _no_rads(rng):
    text = _frame(rng, _pick(rng, "CT head without contrast.", "Radiograph of the left wrist.", "MRI lumbar spine.",
                             "Chest radiograph."),
                  [_pick(rng, "No acute intracranial hemorrhage or mass effect.", "Nondisplaced distal radius fracture.",
                         "Mild L4-L5 disc bulge without canal stenosis.", "Lungs are clear. No pleural effusion.")])
    return text, NO_RADS, {"system": "none"}


# system -> (generator, weight): the published RADS training split (RADLITE.md), plus a few
# reports no RADS system applies to
RADS_MIX: dict[str, tuple[Gen, float]] = {
    "BI-RADS": (_birads, 3124), "TI-RADS": (_tirads, 1684), "LI-RADS": (_lirads, 1236),
    "LI-RADS trap": (lambda r: _lirads(r, trap=True), 308), "PI-RADS": (_PIRADS, 1275), "O-RADS": (_ORADS, 525),
    "VI-RADS": (_VIRADS, 506), "CAD-RADS": (_cadrads, 377), "NI-RADS": (_NIRADS, 122), "Lung-RADS": (_lungrads, 121),
    "GB-RADS": (_GBRADS, 77), "none": (_no_rads, 190),
}


def _rads(rng):
    gen = rng.choices([g for g, _ in RADS_MIX.values()], [w for _, w in RADS_MIX.values()])[0]
    return gen(rng)

"""The training split's RADS reports: each system's categories drawn uniformly, the features the rule
maps to the category drawn to match, written in more ways than the test split's generators.

The systems come in the published RADS training split's proportions, as the test split draws them.
Every reference is the rule's category of the drawn features (``labels`` carries them).
"""

from __future__ import annotations

import random

from . import rules
from . import synth_reports as r
from .labels import NO_RADS
from .synth_wording import SIDES, incidentals, pick, report, size_text

def _until(rng: random.Random, draw, label_of, target: str):
    """Features drawn until the rule gives ``target``: categories stay uniform whatever the features' odds
    (TI-RADS TR2 is under 1 % of random feature sets)."""
    for _ in range(100_000):
        features = draw(rng)
        if label_of(features) == target:
            return features
    raise RuntimeError(f"no feature set gives {target!r}")


def _tirads_features(rng: random.Random):
    comp = rng.choice(list(rules.TIRADS_POINTS["composition"]))
    echo = rng.choice(rules.tirads_echogenicities(comp))
    if comp == "cystic":
        return comp, echo, "wider-than-tall", "smooth", ("none",)
    shape = rng.choice(list(rules.TIRADS_POINTS["shape"]))
    margin = rng.choice(list(rules.TIRADS_POINTS["margin"]))
    foci = tuple(rng.sample(["macrocalcifications", "peripheral rim calcifications", "punctate echogenic foci"],
                            rng.randint(0, 2))) or ("none",)
    return comp, echo, shape, margin, foci


def _tirads(rng: random.Random, target: str):
    feats = _until(rng, _tirads_features, lambda f: rules.tirads_category(rules.tirads_points(*f)), target)
    comp, echo, shape, margin, foci = feats
    pts = rules.tirads_points(*feats)
    foci_text = "no echogenic foci" if foci == ("none",) else " and ".join(foci)
    size, side = size_text(rng, rng.randint(5, 45)), rng.choice(SIDES)
    pole = rng.choice(("upper pole", "lower pole", "mid", "interpolar"))
    nodule = pick(rng, f"{size} {comp} {echo} nodule in the {side} thyroid lobe, {shape}, {margin} margins, {foci_text}.",
                   f"{side.capitalize()} lobe nodule measuring {size}: {comp}, {echo}, {shape}, margins {margin}, "
                   f"{foci_text}.",
                   f"A {comp} nodule of the {side} lobe ({size}) is {echo} and {shape} with {margin} margins and "
                   f"{foci_text}.",
                   f"In the {pole} {side} lobe there is a {comp}, {echo} nodule of {size}; it is {shape}, "
                   f"with {margin} margins and {foci_text}.",
                   f"{side.capitalize()} thyroid nodule ({pole}), {size}. Composition: {comp}. Echogenicity: "
                   f"{echo}. Shape: {shape}. Margin: {margin}. Foci: {foci_text}.")
    exam = pick(rng, "Thyroid ultrasound.", "US thyroid.", "Ultrasound of the neck.", "Thyroid US.",
                 "Ultrasound thyroid gland.", "Neck sonography.")
    return (report(rng, exam, [nodule] + incidentals(rng, "neck", (1, 2))), f"TI-RADS {target}",
            {"system": "TI-RADS", "features": [comp, echo, shape, margin, list(foci)], "points": pts})


def _lungrads(rng: random.Random, target: str):
    exam = pick(rng, "Low-dose CT lung screening, baseline.", "LDCT chest, baseline screening.",
                 "Lung cancer screening CT (baseline).", "Baseline low-dose screening CT of the chest.",
                 "Initial lung cancer screening, low-dose CT.")
    if target == "1":
        return (report(rng, exam, [pick(rng, "No pulmonary nodules.", "The lungs are free of nodules.",
                                         "No lung nodules are identified.")] + incidentals(rng, "chest")),
                "Lung-RADS 1", {"system": "Lung-RADS", "nodule": None})
    def draw(rng):
        kind = rng.choice(("solid", "part-solid", "ground-glass"))
        size = round(rng.uniform(3, 40 if kind == "ground-glass" else 25), 1)
        return kind, size, round(rng.uniform(1, size), 1) if kind == "part-solid" else 0.0

    kind, size, solid = _until(rng, draw, lambda f: rules.lung_rads(*f), target)
    words = {"solid": ("solid", "soft-tissue"), "part-solid": ("part-solid", "semi-solid"),
             "ground-glass": ("ground-glass", "non-solid")}[kind]
    word = rng.choice(words)
    part = f" with a {size_text(rng, solid)} solid component" if kind == "part-solid" else ""
    lobe = rng.choice(r.LOBES)
    nodule = pick(rng, f"{word.capitalize()} nodule in the {lobe} measuring {size_text(rng, size)}{part}.",
                   f"There is a {size_text(rng, size)} {word} nodule in the {lobe}{part}.",
                   f"The largest nodule is {word}, in the {lobe}, {size_text(rng, size)} in mean diameter{part}.")
    return (report(rng, exam, [nodule] + incidentals(rng, "chest")), f"Lung-RADS {target}",
            {"system": "Lung-RADS", "nodule": [kind, size, solid]})


def _lirads(rng: random.Random, target: str):
    size, aphe, feats = _until(rng, lambda rng: (rng.randint(5, 40), rng.random() < 0.6, frozenset(
        rng.sample(rules.LIRADS_FEATURES, rng.randint(0, 3)))), lambda f: rules.lirads_category(*f), target)
    synonyms = {"nonperipheral washout": ("nonperipheral washout", "washout appearance", "portal venous washout"),
                "enhancing capsule": ("an enhancing capsule", "capsule appearance", "an enhancing capsule"),
                "threshold growth": ("threshold growth", "threshold growth since the prior")}
    feat_text = (" with " + ", ".join(rng.choice(synonyms[f]) for f in sorted(feats))) if feats else \
        pick(rng, " without washout, capsule or growth", " with no washout or capsule and no threshold growth")
    aphe_text = (pick(rng, "nonrim arterial phase hyperenhancement", "nonrim APHE") if aphe else
                 pick(rng, "no arterial phase hyperenhancement", "no APHE"))
    segment = rng.choice(["II", "III", "IV", "V", "VI", "VII", "VIII"])
    sz = size_text(rng, size)
    obs = pick(rng, f"{sz} observation in segment {segment} with {aphe_text}{feat_text}.",
                f"Segment {segment} observation measuring {sz} shows {aphe_text}{feat_text}.",
                f"A {sz} lesion in hepatic segment {segment} demonstrates {aphe_text}{feat_text}.")
    findings = [obs, pick(rng, "Nodular liver contour.", "Splenomegaly.", "No ascites.", "Patent portal vein.",
                           "Cirrhotic liver morphology.")]
    if rng.random() < 0.2:  # a lung nodule in a liver report: the liver decides
        findings.append(f"Incidental {size_text(rng, rng.randint(3, 6))} nodule in the {rng.choice(r.LOBES)} at the lung bases.")
    exam = pick(rng, "MRI liver, cirrhosis surveillance.", "Multiphase CT abdomen in a patient with HBV cirrhosis.",
                 "Liver MRI with contrast, HCC screening.", "Multiphasic liver CT.", "Gadoxetate-enhanced liver MRI.")
    return (report(rng, exam, findings), f"LI-RADS {target}",
            {"system": "LI-RADS", "size_mm": size, "aphe": aphe, "features": sorted(feats)})


def _birads(rng: random.Random, target: str):
    if target == "2":
        kind, feats = "simple cyst", ()
    elif target == "6":
        kind, feats = "biopsy-proven carcinoma", ()
    else:
        kind = "mass"
        feats = _until(rng, lambda rng: tuple(rng.sample(list(rules.BIRADS_SUSPICIOUS), rng.randint(0, 4))),
                       lambda f: rules.birads_category(kind, f), target)
    desc = ", ".join(feats) if feats else ("oval, circumscribed" if kind == "mass" else "")
    where = pick(rng, f"{rng.choice(SIDES)} breast at {rng.randint(1, 12)} o'clock, {rng.randint(2, 9)} cm from the nipple",
                  f"{rng.choice(('upper outer', 'upper inner', 'lower outer', 'lower inner'))} quadrant of the "
                  f"{rng.choice(SIDES)} breast")
    size = size_text(rng, rng.randint(6, 30))
    lesion = pick(rng, f"{size} {kind}{(' with ' + desc) if desc else ''} in the {where}.",
                   f"In the {where} there is a {size} {kind}{(' with ' + desc) if desc else ''}.",
                   f"A {kind} is seen in the {where}, measuring {size}{('; ' + desc) if desc else ''}.")
    exam = pick(rng, "Diagnostic mammogram and ultrasound.", "Bilateral mammography with targeted US.",
                 "Breast ultrasound.", "Diagnostic breast imaging.", "Targeted breast ultrasound.")
    category = rules.birads_category(kind, feats)
    return (report(rng, exam, [lesion] + incidentals(rng, "breast", (1, 2))), f"BI-RADS {category}",
            {"system": "BI-RADS", "kind": kind, "features": list(feats)})


_CAD_STENOSIS = {"0": (0,), "1": (10, 15, 20), "2": (25, 30, 40, 45), "3": (50, 55, 60, 65), "4A": (70, 75, 80, 90, 95),
                 "5": (100,)}


def _cadrads(rng: random.Random, target: str):
    stenosis = rng.choice(_CAD_STENOSIS[target])
    vessel = rng.choice(("proximal LAD", "mid LAD", "mid RCA", "proximal LCx", "first diagonal", "distal RCA",
                         "left main", "obtuse marginal"))
    if stenosis == 0:
        lesion = pick(rng, "No coronary plaque or stenosis.", "Coronary arteries are free of plaque and stenosis.")
    elif stenosis == 100:
        lesion = pick(rng, f"Total occlusion of the {vessel}.", f"Maximal stenosis 100% in the {vessel} (total occlusion).")
    else:
        lesion = pick(rng, f"Maximal stenosis {stenosis}% in the {vessel}.",
                       f"{rng.choice(('Mixed', 'Calcified', 'Non-calcified'))} plaque in the {vessel} causing "
                       f"{stenosis}% stenosis.", f"The {vessel} has a {stenosis}% maximal stenosis.")
    other = [pick(rng, f"Calcium score {rng.randint(0, 400)}.", "Right dominant circulation.", "Normal LV size.",
                   "No pericardial effusion.")]
    return (report(rng, pick(rng, "Coronary CT angiography.", "CCTA.", "CT coronary angiogram."), [lesion] + other),
            f"CAD-RADS {rules.cadrads_category(stenosis)}", {"system": "CAD-RADS", "stenosis": stenosis})


def _scored(system: str, phrases: dict[str, tuple[str, ...]], exams: tuple[str, ...], region: str):
    def gen(rng: random.Random, target: str):
        finding = rng.choice(phrases[target]).format(size=size_text(rng, rng.randint(5, 40)), side=rng.choice(SIDES))
        finding = finding[0].upper() + finding[1:] + "."
        return (report(rng, rng.choice(exams), [finding] + incidentals(rng, region, (1, 2))), f"{system} {target}",
                {"system": system})
    return gen


def _no_rads(rng: random.Random, target: str):
    exam, finding = rng.choice((("CT head without contrast.", "No acute intracranial hemorrhage or mass effect."),
                                ("Radiograph of the left wrist.", "Nondisplaced distal radius fracture."),
                                ("MRI lumbar spine.", "Mild L4-L5 disc bulge without canal stenosis."),
                                ("Chest radiograph.", "Lungs are clear. No pleural effusion."),
                                ("CT abdomen and pelvis.", "Uncomplicated sigmoid diverticulitis."),
                                ("MRI right knee.", "Complex tear of the medial meniscus."),
                                ("Ultrasound of the kidneys.", "No hydronephrosis.")))
    return report(rng, exam, [finding]), NO_RADS, {"system": "none"}


# system -> (generator taking the target category, the categories it draws uniformly, weight): the
# systems in the published RADS training split's proportions, as the test split draws them
RADS_TRAIN: dict[str, tuple] = {
    "BI-RADS": (_birads, ("2", "3", "4A", "4B", "4C", "5", "6"), 3124),
    "TI-RADS": (_tirads, ("TR1", "TR2", "TR3", "TR4", "TR5"), 1684),
    "LI-RADS": (_lirads, ("LR-3", "LR-4", "LR-5"), 1544),
    "PI-RADS": (_scored("PI-RADS", r.PIRADS_PHRASES, ("MRI prostate.", "Multiparametric prostate MRI.",
                                                          "mpMRI of the prostate."), "pelvis"),
                ("1", "2", "3", "4", "5"), 1275),
    "O-RADS": (_scored("O-RADS", r.ORADS_PHRASES, ("Pelvic ultrasound.", "Transvaginal ultrasound.",
                                                       "Pelvic US, transabdominal and transvaginal."), "pelvis"),
               ("1", "2", "3", "4", "5"), 525),
    "VI-RADS": (_scored("VI-RADS", r.VIRADS_PHRASES, ("MRI bladder.", "Multiparametric bladder MRI."), "pelvis"),
                ("1", "2", "3", "4", "5"), 506),
    "CAD-RADS": (_cadrads, ("0", "1", "2", "3", "4A", "5"), 377),
    "NI-RADS": (_scored("NI-RADS", r.NIRADS_PHRASES, ("Post-treatment neck CT.", "Surveillance CT neck with contrast."),
                        "neck"), ("1", "2", "3", "4"), 122),
    "Lung-RADS": (_lungrads, ("1", "2", "3", "4A", "4B"), 121),
    "GB-RADS": (_scored("GB-RADS", r.GBRADS_PHRASES, ("Gallbladder ultrasound.", "RUQ ultrasound."), "abdomen"),
                ("1", "2", "3", "4", "5"), 77),
    "none": (_no_rads, ("",), 190),
}


def rads(rng: random.Random) -> tuple[str, str, dict]:
    system = rng.choices(list(RADS_TRAIN), [w for _, _, w in RADS_TRAIN.values()])[0]
    gen, categories, _ = RADS_TRAIN[system]
    return gen(rng, rng.choice(categories))

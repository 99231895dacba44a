"""The published rules that decide the synthetic labels (and that tests check by hand).

- ACR TI-RADS (2017): points from five feature categories; 0-1 TR1, 2 TR2, 3 TR3, 4-6 TR4, >=7 TR5;
  spongiform adds no further points, anechoic applies to cystic nodules only.
- Lung-RADS v2022, baseline screening: solid nodules <6 mm 2, 6-<8 mm 3, 8-<15 mm 4A, >=15 mm 4B;
  part-solid: total <6 mm 2, solid part <6 mm 3, 6-<8 mm 4A, >=8 mm 4B; ground glass <30 mm 2, >=30 mm 3.
- LI-RADS v2018 CT/MRI diagnostic table (APHE, size, additional major features: nonperipheral
  washout, enhancing capsule, threshold growth).
- BI-RADS: a descriptor count rule of ours (see ``birads_category``), ordered as the BI-RADS
  atlas orders the descriptors' likelihood of malignancy.
- TNM 8th edition, lung: N by the farthest involved nodal station, M by distant disease.
"""

from __future__ import annotations

TIRADS_POINTS = {
    "composition": {"cystic": 0, "spongiform": 0, "mixed cystic and solid": 1, "solid": 2},
    "echogenicity": {"anechoic": 0, "hyperechoic": 1, "isoechoic": 1, "hypoechoic": 2, "very hypoechoic": 3},
    "shape": {"wider-than-tall": 0, "taller-than-wide": 3},
    "margin": {"smooth": 0, "ill-defined": 0, "lobulated": 2, "irregular": 2, "extrathyroidal extension": 3},
    "foci": {"none": 0, "large comet-tail artifacts": 0, "macrocalcifications": 1, "peripheral rim calcifications": 2,
             "punctate echogenic foci": 3},
}


def tirads_points(composition: str, echogenicity: str, shape: str, margin: str, foci: tuple[str, ...]) -> int:
    """ACR TI-RADS points; a spongiform nodule scores 0 whatever else is said ("do not add further points")."""
    p = TIRADS_POINTS
    if composition == "spongiform":
        return 0
    return (p["composition"][composition] + p["echogenicity"][echogenicity] + p["shape"][shape]
            + p["margin"][margin] + sum(p["foci"][f] for f in foci))  # echogenic foci points add up


def tirads_echogenicities(composition: str) -> tuple[str, ...]:
    """The echogenicities ACR allows for a composition: anechoic is for cystic nodules only, and a
    cystic nodule is anechoic."""
    if composition == "cystic":
        return ("anechoic",)
    return tuple(e for e in TIRADS_POINTS["echogenicity"] if e != "anechoic")


def tirads_category(points: int) -> str:
    if points <= 1:
        return "TR1"
    if points == 2:
        return "TR2"
    if points == 3:
        return "TR3"
    return "TR4" if points <= 6 else "TR5"


def lung_rads(kind: str, size_mm: float, solid_mm: float = 0.0) -> str:
    if kind == "solid":
        return "2" if size_mm < 6 else "3" if size_mm < 8 else "4A" if size_mm < 15 else "4B"
    if kind == "part-solid":
        if size_mm < 6:
            return "2"
        return "3" if solid_mm < 6 else "4A" if solid_mm < 8 else "4B"
    if kind == "ground-glass":
        return "2" if size_mm < 30 else "3"
    raise ValueError(kind)


LIRADS_FEATURES = ("nonperipheral washout", "enhancing capsule", "threshold growth")


def lirads_category(size_mm: float, aphe: bool, features: frozenset[str] | set[str]) -> str:
    n = len(features)
    if not aphe:
        if size_mm < 20:
            return "LR-3" if n <= 1 else "LR-4"
        return "LR-3" if n == 0 else "LR-4"
    if size_mm < 10:
        return "LR-3" if n == 0 else "LR-4"
    if size_mm < 20:
        if n == 0:
            return "LR-3"
        if n == 1:
            return "LR-4" if features == {"enhancing capsule"} else "LR-5"
        return "LR-5"
    return "LR-4" if n == 0 else "LR-5"


def cadrads_category(stenosis_pct: int) -> str:
    """CAD-RADS 2.0 by maximal stenosis: 0 %, 1-24 %, 25-49 %, 50-69 %, 70-99 %, occlusion."""
    if stenosis_pct == 0:
        return "0"
    return "1" if stenosis_pct < 25 else "2" if stenosis_pct < 50 else "3" if stenosis_pct < 70 \
        else "4A" if stenosis_pct < 100 else "5"


BIRADS_SUSPICIOUS = {"irregular shape": 1, "indistinct margin": 1, "microlobulated margin": 1, "spiculated margin": 2,
                     "fine pleomorphic calcifications": 1, "architectural distortion": 1}


def birads_category(kind: str, features: tuple[str, ...] = ()) -> str:
    """simple cyst 2; otherwise by suspicious-descriptor weight: 0 -> 3, 1 -> 4A, 2 -> 4B, 3 -> 4C, >=4 -> 5."""
    if kind == "simple cyst":
        return "2"
    if kind == "biopsy-proven carcinoma":
        return "6"
    w = sum(BIRADS_SUSPICIOUS[f] for f in features)
    return ("3", "4A", "4B", "4C")[w] if w < 4 else "5"


N_STATIONS = {  # nodal station wording -> N stage it implies (lung cancer, ipsilateral to the primary)
    "ipsilateral hilar": 1, "ipsilateral peribronchial": 1, "ipsilateral mediastinal": 2, "subcarinal": 2,
    "contralateral mediastinal": 3, "contralateral hilar": 3, "supraclavicular": 3, "scalene": 3,
}


def n_stage(stations: tuple[str, ...]) -> str:
    return f"N{max((N_STATIONS[s] for s in stations), default=0)}"


M_SITES = ("liver", "bone", "brain", "adrenal", "contralateral lung", "pleural")


def m_stage(sites: tuple[str, ...]) -> str:
    return "M1" if sites else "M0"


# Nodal stations by side (IASLC map): N1 stations are hilar/intrapulmonary, N2 ipsilateral mediastinal;
# either kind on the other side of the primary is N3. Subcarinal (7) is N2 from either side; the
# aortopulmonary window (5) and para-aortic (6) stations lie on the left: N2 for a left primary, N3 for a right.
N1_SIDED = ("hilar", "interlobar", "peribronchial", "lobar", "intrapulmonary")
N2_SIDED = ("lower paratracheal", "upper paratracheal", "paratracheal", "paraoesophageal", "pulmonary ligament",
            "mediastinal")
N2_MIDLINE = ("subcarinal",)
N2_LEFT = ("aortopulmonary window", "para-aortic")


def node_stage(primary_side: str, side: str | None, station: str) -> int:
    """The N category one involved node implies for a primary on ``primary_side`` (right or left);
    ``side`` is where the report puts the node (right, left, ipsilateral, or None for a midline station)."""
    if side == "ipsilateral" or station in N_STATIONS:
        return N_STATIONS[station if station in N_STATIONS else f"ipsilateral {station}"]
    if station in N2_MIDLINE:
        return 2
    if station in N2_LEFT:
        return 2 if primary_side == "left" else 3
    same = side == primary_side
    if station in N1_SIDED:
        return 1 if same else 3
    if station in N2_SIDED:
        return 2 if same else 3
    raise ValueError(f"unknown nodal station {station!r}")


def n_stage_lateral(primary_side: str, nodes: list[dict]) -> str:
    """N by the farthest involved node; a node counts when ``involved`` (enlarged, not calcified)."""
    return f"N{max((node_stage(primary_side, n['side'], n['station']) for n in nodes if n['involved']), default=0)}"


def temporal_change(before: float, after: float) -> str:
    """A finding's change between two studies by size (0: absent): more than 20 % larger is worse,
    more than 20 % smaller is better."""
    if before == 0:
        return "new"
    if after == 0:
        return "resolved"
    return "worsened" if after > before * 1.2 else "improved" if after < before * 0.8 else "unchanged"


def chexpert_no_finding(values: dict[str, str]) -> str:
    """No Finding is positive only when no finding but a support device is positive or uncertain."""
    abnormal = any(v in ("positive", "uncertain") for k, v in values.items()
                   if k not in ("Support Devices", "No Finding"))
    return "negative" if abnormal else "positive"

"""The training split at scale: balanced labels, rule-consistent wording, nothing of the generalization split."""

from __future__ import annotations

import hashlib
import json
import random
import re
from collections import Counter
from dataclasses import asdict

import pytest

from radlite_edge.tasks import TASKS, rules, sample_score
from radlite_edge.tasks import synth_train as st
from radlite_edge.tasks import synth_train_rads as str_rads
from radlite_edge.tasks.labels import CHEXPERT_LABELS, CHEXPERT_VALUES, M_STAGES, N_STAGES, NLI_LABELS
from radlite_edge.tasks.synthetic import check_disjoint, make_suite, make_task_samples

N = 3000  # per task: a share's sd is under 1 point at this n


@pytest.fixture(scope="module")
def train():
    return {task: make_task_samples(task, N, seed=0, split="train") for task in st.GENERATORS}


def _shares(values) -> dict:
    counts = Counter(values)
    total = sum(counts.values())
    return {k: v / total for k, v in counts.items()}


def _uniform_within(shares: dict, labels, points: float = 0.02):
    assert set(shares) == set(labels), shares
    assert all(abs(share - 1 / len(labels)) <= points for share in shares.values()), shares


def test_the_balanced_sampler_gives_uniform_labels_within_two_points(train):
    _uniform_within(_shares(s.labels["stage"] for s in train["n_staging"]), N_STAGES)
    _uniform_within(_shares(s.reference for s in train["m_staging"]), M_STAGES)
    _uniform_within(_shares(s.reference for s in train["radiology_nli"]), NLI_LABELS)
    for label in CHEXPERT_LABELS[1:]:  # No Finding follows from the other thirteen by rule
        _uniform_within(_shares(s.labels["values"][label] for s in train["abnormality_detection"]), CHEXPERT_VALUES)
    changes = [c for s in train["temporal_comparison"] for _, c in s.labels["pairs"]]
    _uniform_within(_shares(changes), ("new", "worsened", "improved", "resolved", "unchanged"))


def test_every_rads_system_draws_each_of_its_categories_uniformly(train):
    by_system: dict[str, list[str]] = {}
    for s in train["rads_assignment"]:
        by_system.setdefault(s.labels["system"], []).append(s.reference)
    for system, (_, categories, _) in str_rads.RADS_TRAIN.items():
        if system == "none":
            continue
        refs = by_system[system]
        assert {r.rsplit(" ", 1)[1] for r in refs} == set(categories), system
    # the category is hit exactly whatever the features' odds (a rejection sampler that never gives up)
    rng = random.Random(0)
    for system, (gen, categories, _) in str_rads.RADS_TRAIN.items():
        for cat in categories:
            for _ in range(20):
                text, ref, _ = gen(rng, cat)
                assert ref == (f"{system} {cat}" if system != "none" else ref), (system, cat, text)
    big = [s.labels["system"] for s in train["rads_assignment"]]
    assert 0.25 < big.count("BI-RADS") / len(big) < 0.4  # the published system mix, as the test split


def test_the_rules_rederive_every_generated_label(train):
    for task, samples in train.items():
        for s in samples:
            assert sample_score(TASKS[task], s.reference, s)[1] == pytest.approx(1.0), s.id
    for s in train["n_staging"]:
        assert rules.n_stage_lateral(s.labels["primary_side"], s.labels["nodes"]) == s.labels["stage"]
        assert TASKS["n_staging"].parse(s.reference) == s.labels["stage"]
    for s in train["m_staging"]:
        assert rules.m_stage(tuple(s.labels["sites"])) == s.reference
    for s in train["temporal_comparison"]:
        changes = dict(s.labels["pairs"])
        assert all(rules.temporal_change(b, a) == changes[f] for f, b, a in s.labels["sizes"])
    for s in train["abnormality_detection"]:
        values = s.labels["values"]
        assert values["No Finding"] == rules.chexpert_no_finding(values)
    for s in train["rads_assignment"]:
        lab, ref = s.labels, s.reference
        if lab["system"] == "TI-RADS":
            comp, echo, shape, margin, foci = lab["features"]
            assert ref == f"TI-RADS {rules.tirads_category(rules.tirads_points(comp, echo, shape, margin, tuple(foci)))}"
        elif lab["system"] == "LI-RADS":
            assert ref == f"LI-RADS {rules.lirads_category(lab['size_mm'], lab['aphe'], frozenset(lab['features']))}"
        elif lab["system"] == "BI-RADS":
            assert ref == f"BI-RADS {rules.birads_category(lab['kind'], tuple(lab['features']))}"
        elif lab["system"] == "CAD-RADS":
            assert ref == f"CAD-RADS {rules.cadrads_category(lab['stenosis'])}"
        elif lab["system"] == "Lung-RADS" and lab["nodule"]:
            assert ref == f"Lung-RADS {rules.lung_rads(*lab['nodule'])}"


def test_hand_cases_one_per_label():
    # N: by side and station beside a primary on a stated side (IASLC map, TNM 8)
    node = lambda side, station, involved=True: {"side": side, "station": station, "involved": involved}  # noqa: E731
    assert rules.n_stage_lateral("right", []) == "N0"
    assert rules.n_stage_lateral("right", [node("right", "hilar")]) == "N1"
    assert rules.n_stage_lateral("left", [node("left", "paratracheal")]) == "N2"
    assert rules.n_stage_lateral("right", [node(None, "subcarinal")]) == "N2"
    assert rules.n_stage_lateral("left", [node(None, "aortopulmonary window")]) == "N2"
    assert rules.n_stage_lateral("right", [node(None, "aortopulmonary window")]) == "N3"  # a left-sided station
    assert rules.n_stage_lateral("right", [node("left", "hilar")]) == "N3"  # contralateral
    assert rules.n_stage_lateral("right", [node("left", "hilar", involved=False), node("right", "interlobar")]) == "N1"
    assert rules.n_stage_lateral("left", [node("ipsilateral", "ipsilateral mediastinal")]) == "N2"
    # M: any distant site; none (benign look-alikes only) is M0
    assert rules.m_stage(("adrenal",)) == "M1" and rules.m_stage(()) == "M0"
    # temporal: the 20 % thresholds
    assert [rules.temporal_change(b, a) for b, a in ((0, 5), (8, 0), (10, 13), (10, 7), (10, 12))] == \
        ["new", "resolved", "worsened", "improved", "unchanged"]
    # CheXpert: a support device alone leaves No Finding positive
    assert rules.chexpert_no_finding({"Support Devices": "positive", "Edema": "negative"}) == "positive"
    assert rules.chexpert_no_finding({"Edema": "uncertain"}) == "negative"


def test_generated_reports_state_what_the_rule_reads():
    rng = random.Random(3)
    for _ in range(300):  # benign nodes (calcified or under 10 mm) never raise N
        text, ref, lab = st.n_staging(rng)
        for n in lab["nodes"]:
            if not n["involved"]:
                assert n["mm"] < 10
        if lab["stage"] == "N0":
            assert "enlarged" not in re.sub(r"(not|no) (pathologically )?enlarged", "",
                                            text.lower()), text
    for _ in range(300):  # M0 reports mention no metastasis but in negation
        text, ref, lab = st.m_staging(rng)
        if ref == "M0":
            assert not re.search(r"(?<!no )(?<!free of )metasta(sis|ses|tic)(?! disease\.)", text.lower().replace(
                "no evidence of distant metastasis", "").replace("no distant metastatic disease", "").replace(
                "no hepatic or adrenal metastases", "").replace("free of metastases", "")), text


def test_train_never_shares_a_template_with_the_generalization_split():
    suite = make_suite(300, seed=0, n_train=1500)

    def shapes(split: str) -> set[str]:  # sentence templates: the words left when numbers are taken out
        return {re.sub(r"\d+(\.\d+)?", "#", sentence).strip().lower() for s in suite if s.split == split
                for sentence in re.split(r"[.\n]", s.input) if len(sentence.split()) > 3}

    assert not shapes("generalization") & shapes("train")
    check_disjoint(suite)


def test_the_size_of_train_changes_no_other_split():
    def digest(suite) -> dict:
        h: dict = {}
        for s in suite:
            if s.split != "train":
                h.setdefault(s.split, hashlib.sha256()).update(json.dumps(asdict(s), sort_keys=True).encode())
        return {k: v.hexdigest()[:16] for k, v in h.items()}

    small, large = make_suite(40, seed=0), make_suite(40, seed=0, n_train=400)
    assert digest(small) == digest(large)
    assert sum(s.split == "train" for s in large) == 400 * 9


def test_the_published_suite_is_byte_for_byte_what_it_was():
    """`radlite data synth --n 500` test, validation and generalization samples, as scored in docs/RESULTS.md."""
    h: dict = {}
    for s in make_suite(500, seed=0, n_train=16):
        if s.split != "train":
            h.setdefault(s.split, hashlib.sha256()).update(json.dumps(asdict(s), sort_keys=True).encode())
    assert {k: v.hexdigest()[:16] for k, v in sorted(h.items())} == {
        "generalization": "3a946d8bda4905fe", "test": "bc570c33eb90d4bf", "val": "b39568c6466ec8f3"}

"""The task registry: parsers, metrics, rules and the synthetic suite, on hand-written cases."""

from __future__ import annotations

import json

import numpy as np
import pytest

from radlite_edge.errors import UserError
from radlite_edge.tasks import TASKS, sample_score
from radlite_edge.tasks import loaders, metrics, parsers, rules
from radlite_edge.tasks.constraint import OutputLanguage, constrained_pick
from radlite_edge.tasks.labels import CHEXPERT_LABELS, NO_RADS, RADS_LABELS
from radlite_edge.tasks.synthetic import make_suite


@pytest.mark.parametrize("text, expected", [
    ("BI-RADS 4A", "BI-RADS 4A"), ("BIRADS 4a", "BI-RADS 4A"), ("bi-rads: 4A", "BI-RADS 4A"),
    ("Impression: BI-RADS category 5.", "BI-RADS 5"), ("ACR TI-RADS TR 4", "TI-RADS TR4"), ("TI-RADS 3", "TI-RADS TR3"),
    ("LI-RADS LR-5", "LI-RADS LR-5"), ("li-rads lr5", "LI-RADS LR-5"), ("LI-RADS LR-M", "LI-RADS LR-M"),
    ("Lung-RADS 4B", "Lung-RADS 4B"), ("lung rads 4x", "Lung-RADS 4X"), ("PI-RADS 4", "PI-RADS 4"),
    ("O-RADS 3", "O-RADS 3"), ("CAD-RADS 4A", "CAD-RADS 4A"), ("No applicable RADS", NO_RADS),
    ("The liver observation is LI-RADS LR-4; the lung nodule is Lung-RADS 2", "LI-RADS LR-4"),
    ("BI-RADS 7", None), ("TI-RADS TR9", None), ("I think it is benign", None), ("", None),
])
def test_rads_parser(text, expected):
    assert parsers.parse_rads(text) == expected


def test_rads_labels_all_parse_to_themselves():
    for label in RADS_LABELS:
        assert parsers.parse_rads(label) == label


@pytest.mark.parametrize("text, n, m", [("N2", "N2", None), ("pN3b M1a", "N3", "M1"), ("cN0", "N0", None),
                                        ("Stage: N1mi, M0.", "N1", "M0"), ("no nodes", None, None), ("N5", None, None)])
def test_stage_parsers(text, n, m):
    assert parsers.parse_n_stage(text) == n
    assert parsers.parse_m_stage(text) == m


def test_nli_chexpert_temporal_ner_parsers():
    assert parsers.parse_nli("Entailment.") == "entailment"
    assert parsers.parse_nli("this contradicts the premise") == "contradiction"
    assert parsers.parse_nli("maybe") is None
    cx = parsers.parse_chexpert("Cardiomegaly: positive\nedema - absent\nPneumonia: possible\nFracture: banana")
    assert cx == {"Cardiomegaly": "positive", "Edema": "negative", "Pneumonia": "uncertain"}
    assert parsers.parse_temporal("The pleural effusion: improved\nnodule - stable\njunk line") == {
        ("pleural effusion", "improved"), ("nodule", "unchanged")}
    assert parsers.parse_ner("opacity | OBS-DP\nright lower lobe (ANAT-DP)\nfoo | BAR") == {
        ("opacity", "OBS-DP"), ("right lower lobe", "ANAT-DP")}


def test_metrics_on_hand_cases():
    assert metrics.exact("N2", "N2") == 1.0 and metrics.exact(None, "N2") == 0.0
    assert metrics.rouge_l("small left pleural effusion", "small left pleural effusion") == pytest.approx(1.0)
    assert metrics.rouge_l(None, "x") == 0.0
    assert 0 < metrics.rouge_l("left pleural effusion", "small left pleural effusion") < 1
    assert metrics.jaccard({("a", "new")}, {("a", "new"), ("b", "resolved")}) == 0.5
    assert metrics.jaccard(None, {("a", "new")}) == 0.0 and metrics.jaccard(set(), set()) == 1.0
    assert metrics.set_f1([{1, 2}], [{2, 3}]) == pytest.approx(0.5)
    assert metrics.macro_f1(["a", "b", None], ["a", "a", "b"], ["a", "b"]) == pytest.approx((2 / 3 + 0) / 2)
    assert metrics.corpus_bleu(["small left pleural effusion is seen"], ["small left pleural effusion is seen"]) == pytest.approx(100.0)
    lo, hi = metrics.bootstrap_ci([0, 1] * 50)
    assert lo < 0.5 < hi and hi - lo < 0.3
    assert metrics.bootstrap_ci([1.0] * 10) == (1.0, 1.0)


def test_tirads_points_sum_by_hand():
    # solid 2 + hypoechoic 2 + taller-than-wide 3 + irregular 2 + punctate foci 3 = 12
    assert rules.tirads_points("solid", "hypoechoic", "taller-than-wide", "irregular", ("punctate echogenic foci",)) == 12
    assert rules.tirads_category(12) == "TR5"
    # spongiform 0 + isoechoic 1 + wider 0 + smooth 0 + none 0 = 1 -> TR1
    assert rules.tirads_category(rules.tirads_points("spongiform", "isoechoic", "wider-than-tall", "smooth", ("none",))) == "TR1"
    # mixed 1 + hyperechoic 1 + wider 0 + smooth 0 + macrocalcifications 1 = 3 -> TR3; + rim (2) = 5 -> TR4
    assert rules.tirads_points("mixed cystic and solid", "hyperechoic", "wider-than-tall", "smooth",
                               ("macrocalcifications",)) == 3
    assert rules.tirads_category(5) == "TR4" and rules.tirads_category(7) == "TR5" and rules.tirads_category(2) == "TR2"


def test_lung_lirads_tnm_by_hand():
    assert [rules.lung_rads("solid", s) for s in (5.9, 6, 7.9, 8, 14.9, 15)] == ["2", "3", "3", "4A", "4A", "4B"]
    assert rules.lung_rads("part-solid", 10, 5) == "3" and rules.lung_rads("part-solid", 10, 7) == "4A"
    assert rules.lung_rads("part-solid", 12, 8) == "4B" and rules.lung_rads("ground-glass", 30) == "3"
    assert rules.lirads_category(25, True, {"nonperipheral washout"}) == "LR-5"
    assert rules.lirads_category(15, True, {"enhancing capsule"}) == "LR-4"
    assert rules.lirads_category(15, True, {"nonperipheral washout"}) == "LR-5"
    assert rules.lirads_category(8, True, {"nonperipheral washout", "enhancing capsule"}) == "LR-4"
    assert rules.lirads_category(25, False, {"threshold growth"}) == "LR-4"
    assert rules.lirads_category(15, False, {"threshold growth"}) == "LR-3"
    assert rules.lirads_category(25, True, set()) == "LR-4"
    assert rules.n_stage(("subcarinal",)) == "N2" and rules.n_stage(("ipsilateral hilar", "supraclavicular")) == "N3"
    assert rules.n_stage(()) == "N0" and rules.m_stage(()) == "M0" and rules.m_stage(("bone",)) == "M1"


def test_suite_is_deterministic_and_labels_follow_the_rules():
    a, b, c = make_suite(30, seed=1), make_suite(30, seed=1), make_suite(30, seed=2)
    assert [s.input for s in a] == [s.input for s in b] and [s.input for s in a] != [s.input for s in c]
    assert {s.task for s in a} == set(TASKS)
    for s in a:
        task = TASKS[s.task]
        assert sample_score(task, s.reference, s)[1] == pytest.approx(1.0), s.id  # the reference is a perfect answer
        if s.task == "rads_assignment" and s.labels.get("system") == "TI-RADS":
            assert s.reference == f"TI-RADS {rules.tirads_category(s.labels['points'])}"
        if s.task == "abnormality_detection":
            v = s.labels["values"]
            abnormal = any(v[k] in ("positive", "uncertain") for k in CHEXPERT_LABELS[1:-1])
            assert v["No Finding"] == ("negative" if abnormal else "positive")
    traps = [s for s in make_suite(200) if s.task == "rads_assignment" and s.labels.get("trap")]
    assert traps and all("lung" in s.input and s.reference.startswith("LI-RADS") for s in traps)


def test_gbnf_of_every_label_task_compiles_in_llama_cpp():
    from llama_cpp import LlamaGrammar

    for task in TASKS.values():
        if task.language:
            LlamaGrammar.from_string(task.grammar(), verbose=False)


def _decode(language, wanted: bytes, vocab: list[bytes]) -> bytes:
    """Constrained greedy decoding against a 'model' that prefers writing ``wanted``."""
    text, states = b"", language.start()
    for _ in range(50):
        logits = np.zeros(len(vocab), np.float32)
        for i, piece in enumerate(vocab):
            if piece and wanted.startswith(text + piece):
                logits[i] = 10 + len(piece)
        logits[0] = 5 if text == wanted else -1  # token 0: end of generation
        picked = constrained_pick(logits, states, language, lambda t: vocab[t], lambda t: t == 0)
        if picked is None:
            return text
        tok, states = picked
        text += vocab[tok]
    return text


def test_constraint_keeps_valid_answers_and_repairs_invalid_ones():
    lang = OutputLanguage.choice(RADS_LABELS)
    vocab = [b""] + sorted({lab.encode()[i:i + k] for lab in RADS_LABELS for i in range(len(lab)) for k in (1, 2, 3)})
    vocab += [b"Hello", b" world", b"."]
    for label in ("BI-RADS 4A", "BI-RADS 5", "TI-RADS TR5", "LI-RADS LR-M", NO_RADS):
        assert _decode(lang, label.encode(), vocab) == label.encode()  # unchanged when already valid
    # a label followed by more text: the label is kept, the rest is cut (same parse as unconstrained)
    assert _decode(lang, b"BI-RADS 5. Hello", vocab) == b"BI-RADS 5"
    # a label that is the prefix of another: the model's own choice to stop or go on decides
    nested = OutputLanguage.choice(["BI-RADS 4", "BI-RADS 4A"])
    assert _decode(nested, b"BI-RADS 4", vocab) == b"BI-RADS 4"
    assert _decode(nested, b"BI-RADS 4A", vocab) == b"BI-RADS 4A"
    out = _decode(lang, b"Hello world", vocab)
    assert out.decode() in RADS_LABELS  # junk becomes some valid label


def test_forced_bytes_and_a_pick_that_reaches_the_branch():
    lang = OutputLanguage([["Edema: "], ["positive\n", "negative\n", "uncertain\n"], ["Mass: "], ["yes", "no"]])
    states = lang.advance(lang.start(), b"Ed")
    assert lang.forced(states) == b"ema: "  # up to the branch
    assert lang.forced(lang.advance(states, b"ema: ")) == b""
    assert lang.forced(lang.advance(states, b"ema: n")) == b"egative\nMass: "
    assert lang.forced(lang.advance(lang.start(), b"Edema: uncertain\nMass: no")) == b""  # complete
    vocab = [b"", b" ", b" n", b" negative", b"x"]
    at_space = lang.advance(lang.start(), b"Edema:")
    logits = np.array([0, 9, 3, 2, 8], np.float32)
    pick = lambda reach, lg=logits: constrained_pick(lg, at_space, lang, lambda t: vocab[t], lambda t: t == 0,
                                                     reach=reach)[0]
    assert pick(0) == 1  # the best token that keeps the text in the language
    assert pick(2) == 2  # the best of those that go past the space, into the branch
    assert pick(9) == 3
    assert pick(10) == 1  # none reaches that far: the best one after all


def test_loaders_read_the_public_formats(tmp_path):
    (tmp_path / "radnli.jsonl").write_text(json.dumps(
        {"pair_id": "7", "sentence1": "No effusion.", "sentence2": "Effusion present.", "gold_label": "contradiction"}) + "\n")
    s = loaders.load("radnli", tmp_path / "radnli.jsonl")
    assert s[0].task == "radiology_nli" and s[0].reference == "contradiction" and "Premise: No effusion." in s[0].input
    (tmp_path / "radgraph.json").write_text(json.dumps({"p10/s1.txt": {"text": "Right effusion.", "entities": {
        "1": {"tokens": "Right", "label": "ANAT-DP", "start_ix": 0, "end_ix": 0, "relations": []},
        "2": {"tokens": "effusion", "label": "OBS-DP", "start_ix": 1, "end_ix": 1, "relations": [["located_at", "1"]]}}}}))
    s = loaders.load("radgraph", tmp_path / "radgraph.json")
    assert s[0].labels["entities"] == [["Right", "ANAT-DP"], ["effusion", "OBS-DP"]]
    (tmp_path / "mimic").mkdir()
    (tmp_path / "mimic" / "s5.txt").write_text(
        "FINAL REPORT\n EXAMINATION: CHEST\n\n FINDINGS: Small left effusion.\n\n IMPRESSION: Left effusion.\n")
    s = loaders.load("mimic-cxr", tmp_path / "mimic")
    assert s[0].input == "FINDINGS: Small left effusion." and s[0].reference == "Left effusion."
    (tmp_path / "1.xml").write_text('<eCitation><MedlineCitation><Article><Abstract>'
                                    '<AbstractText Label="FINDINGS">Normal heart.</AbstractText>'
                                    '<AbstractText Label="IMPRESSION">No acute disease.</AbstractText>'
                                    '</Abstract></Article></MedlineCitation></eCitation>')
    s = loaders.load("openi", tmp_path / "1.xml")
    assert s[0].reference == "No acute disease."
    header = ["Report Impression", *CHEXPERT_LABELS]
    row = ["Cardiomegaly. Possible edema.", "", "", "1.0", "", "", "-1.0"] + [""] * 7 + ["0"]
    row = row[:len(header)]
    (tmp_path / "labels.csv").write_text(",".join(f'"{h}"' for h in header) + "\n" + ",".join(row) + "\n")
    s = loaders.load("chexpert", tmp_path / "labels.csv")
    assert s[0].labels["values"]["Cardiomegaly"] == "positive" and s[0].labels["values"]["Edema"] == "uncertain"
    assert s[0].labels["values"]["Pneumonia"] == "negative"
    (tmp_path / "my.csv").write_text("rid,text,answer\n1,Is there effusion?,No.\n")
    s = loaders.load("csv", tmp_path / "my.csv", mapping=["task=radiology_qa", "input=text", "reference=answer", "id=rid"])
    assert s[0].id == "my-1" and s[0].task == "radiology_qa"


def test_loaders_name_the_problem(tmp_path):
    with pytest.raises(UserError, match="no such file"):
        loaders.load("radnli", tmp_path / "missing.jsonl")
    (tmp_path / "bad.jsonl").write_text('{"pair_id": 1, "sentence1": "a", "gold_label": "neutral"}\n')
    with pytest.raises(UserError, match="bad.jsonl:1: missing field 'sentence2'"):
        loaders.load("radnli", tmp_path / "bad.jsonl")
    (tmp_path / "bad.csv").write_text("Report Impression,Cardiomegaly\nx,1\n")
    with pytest.raises(UserError, match="missing label column"):
        loaders.load("chexpert", tmp_path / "bad.csv")
    (tmp_path / "g.json").write_text("[1, 2]")
    with pytest.raises(UserError, match="expected an object"):
        loaders.load("radgraph", tmp_path / "g.json")

"""The published RadLite interface, byte for byte, and the published answer styles (issue 12)."""

from __future__ import annotations

import hashlib
from importlib import resources

import pytest

from radlite_edge.tasks import TASKS, parsers
from radlite_edge.tasks.interface import INTERFACE_FILE, PUBLISHED, detect_task
from radlite_edge.tasks.labels import NO_RADS, TASK_NAMES

# sha256 of the radlite_interface.json that RADLITE.md publishes: the packaged copy is that file
PUBLISHED_SHA256 = "cc02509ad053a36eabdf14d0312c7959086d8c62b12aa6decc3b7f49d8542323"
REPORT = "Findings: 1.4 cm spiculated mass in the right upper lobe. {not a template field}"


def test_the_packaged_interface_is_the_published_file():
    data = resources.files("radlite_edge.tasks").joinpath(INTERFACE_FILE).read_bytes()
    assert hashlib.sha256(data).hexdigest() == PUBLISHED_SHA256


def test_all_nine_prompts_are_the_published_bytes():
    system = "You are an expert radiologist. Follow the instructions and provide an accurate response."
    # typed out from RADLITE.md and the notebook, independently of the data file the registry reads
    expected_user = {
        "rads_assignment": "[TASK: rads_assignment]\nClassify the following radiology report into the appropriate RADS "
                           "category. Output ONLY the RADS category (e.g., 'BI-RADS 4', 'PI-RADS 3', 'TI-RADS 5')."
                           f"\n\nReport:\n{REPORT}",
        "impression_generation": "[TASK: impression_generation]\nGenerate a concise clinical impression from the "
                                 f"following radiology findings.\n\nFindings:\n{REPORT}",
        "temporal_comparison": "[TASK: temporal_comparison]\nCompare the following radiology findings and identify "
                               "temporal changes (new, worsened, improved, resolved, unchanged).\n\nFindings:\n"
                               f"{REPORT}",
        "radiology_ner": "[TASK: radiology_ner]\nExtract all anatomical structures, observations "
                         "(present/absent/uncertain), and change indicators from the following report.\n\nReport:\n"
                         f"{REPORT}",
        "n_staging": "[TASK: n_staging]\nRadiology Report: Lower thorax: Clear. Lymph nodes: Multiple enlarged "
                     "retroperitoneal and para-aortic lymph nodes, largest 2.3 cm. IMPRESSION: 1. Retroperitoneal "
                     "lymphadenopathy. Lymph node involvement: Positive. N staging: N2\n\nRadiology Report: Lower "
                     "thorax: Clear. Liver: Normal. Lymph nodes: No lymphadenopathy. IMPRESSION: 1. No acute findings. "
                     f"Lymph node involvement: Negative. N staging: N0\n\nRadiology Report: {REPORT}\n\n"
                     "Lymph node involvement:",
        "m_staging": f"[TASK: m_staging]\nRadiology Report: {REPORT}\n\nDetermine the M staging (metastatic "
                     "involvement):",
        "radiology_nli": f"[TASK: radiology_nli]\n{REPORT}\n\nDetermine if the hypothesis is entailed, contradicted, "
                         "or neutral given the premise:",
        "abnormality_detection": "[TASK: abnormality_detection]\nClassify each finding as positive, negative, or "
                                 "uncertain: atelectasis, cardiomegaly, consolidation, edema, enlarged "
                                 "cardiomediastinum, fracture, lung lesion, lung opacity, pleural effusion, pleural "
                                 "other, pneumonia, pneumothorax, support devices, no finding.\n\nReport:\n"
                                 f"{REPORT}",
        "radiology_qa": f"[TASK: radiology_qa]\nAnswer the following radiology question.\n\nQuestion:\n{REPORT}",
    }
    assert set(expected_user) == set(TASK_NAMES) == set(TASKS)
    for name, task in TASKS.items():
        prompt = task.prompt(REPORT)
        assert prompt == (f"<|im_start|>system\n{system}<|im_end|>\n<|im_start|>user\n{expected_user[name]}"
                          "<|im_end|>\n<|im_start|>assistant\n"), name


def test_max_tokens_and_generation_are_the_published_ones():
    published = {"rads_assignment": 30, "n_staging": 64, "m_staging": 10, "radiology_nli": 10}
    for name, task in TASKS.items():
        assert task.max_tokens == published.get(name, 256), name
    g = PUBLISHED.generation
    assert (g.temperature, g.stop, g.n_ctx, g.n_threads) == (0.1, ("<|im_end|>",), 2048, 4)


def test_routes_and_task_detection_as_the_published_router():
    assert {t for t, m in PUBLISHED.routes.items() if m == "q3"} == {
        "temporal_comparison", "abnormality_detection", "radiology_ner"}
    assert set(PUBLISHED.routes) == set(TASK_NAMES)
    assert detect_task("[TASK: n_staging]\nRadiology Report: x") == ("n_staging", "Radiology Report: x")
    assert detect_task("[TASK: unknown_task] what is BI-RADS 4?")[0] == "radiology_qa"
    assert detect_task("What does LR-5 mean?") == ("radiology_qa", "What does LR-5 mean?")
    # a tag inside the report text never re-routes
    assert detect_task("Report: see [TASK: n_staging] below")[0] == "radiology_qa"


THINK = "<think>\n\n</think>\n\n"


@pytest.mark.parametrize("text, expected", [
    ("BI-RADS 4", "BI-RADS 4"), ("PI-RADS 5", "PI-RADS 5"), ("BI-RADS: 4", "BI-RADS 4"),
    ("BI-RADS Category 4A", "BI-RADS 4A"), ("PI-RADS v2.1: 4", "PI-RADS 4"), ("PI-RADS v2.1 category 3", "PI-RADS 3"),
    ("Lung-RADS v2022 4B", "Lung-RADS 4B"), ("LR-5", "LI-RADS LR-5"), ("TR4", "TI-RADS TR4"),
    ("O-RADS US 4", "O-RADS 4"), ("O-RADS MRI 3", "O-RADS 3"), ("ACR TI-RADS (2017) TR3", "TI-RADS TR3"),
    ("TI-RADS 5", "TI-RADS TR5"), ("BI-RADS 4 and not applicable to the axilla", "BI-RADS 4"),
    ("Not applicable; BI-RADS 2 for the breast", "BI-RADS 2"), ("No applicable RADS", NO_RADS),
    (THINK + "BI-RADS 4", "BI-RADS 4"), ("<think>it could be BI-RADS 5</think>\nBI-RADS 3", "BI-RADS 3"),
    ("<think>BI-RADS 5 maybe", None), ("PI-RADS v2.1", None), ("Lung-RADS v2022", None), ("BI-RADS 4 and 5", "BI-RADS 4"),
])
def test_rads_answer_styles(text, expected):
    assert parsers.parse_rads(text) == expected


@pytest.mark.parametrize("text, n, m", [
    ("Positive. N staging: N2", "N2", None), ("Negative. N staging: N0", "N0", None), ("Positive", None, None),
    ("T2N1M0", "N1", "M0"), ("ypN0", "N0", None), ("N-2", "N2", None), ("Nx", None, None), ("pT3 N2b M1c", "N2", "M1"),
    ("The tumour is staged N1 with no distant metastasis (M0).", "N1", "M0"), ("M1", None, "M1"),
    (THINK + "M1", None, "M1"), ("Mx", None, None),
])
def test_staging_answer_styles(text, n, m):
    assert parsers.parse_n_stage(text) == n
    assert parsers.parse_m_stage(text) == m


@pytest.mark.parametrize("text, expected", [
    ("neutral", "neutral"), ("Entailment", "entailment"), ("not entailed", None), ("The hypothesis is not entailed; "
     "it is contradicted.", "contradiction"), ("This does not contradict the premise; it is neutral", "neutral"),
    ("neither entailed nor contradicted", "neutral"), (THINK + "contradiction", "contradiction"),
])
def test_nli_answer_styles(text, expected):
    assert parsers.parse_nli(text) == expected


def test_chexpert_answer_styles():
    published = "\n".join(f"- {label}: {'positive' if label == 'Cardiomegaly' else 'negative'}"
                          for label in sorted(("Atelectasis", "Cardiomegaly", "No Finding", "Edema")))
    assert parsers.parse_chexpert(THINK + published) == {"Atelectasis": "negative", "Cardiomegaly": "positive",
                                                          "Edema": "negative", "No Finding": "negative"}
    assert parsers.parse_chexpert("Cardiomegaly: positive, Edema: negative, pneumonia: uncertain") == {
        "Cardiomegaly": "positive", "Edema": "negative", "Pneumonia": "uncertain"}
    assert parsers.parse_chexpert("Positive: Cardiomegaly, Pleural Effusion\nNegative: Edema; Fracture") == {
        "Cardiomegaly": "positive", "Pleural Effusion": "positive", "Edema": "negative", "Fracture": "negative"}
    assert parsers.parse_chexpert('{"Cardiomegaly": "positive", "Lung Opacity": "uncertain", "Bogus": "x"}') == {
        "Cardiomegaly": "positive", "Lung Opacity": "uncertain"}


def test_temporal_answer_styles():
    published = ("- [New Finding] new (related to: opacity)\n- [Worsened] increased (related to: effusion)\n"
                 "- [No Change] stable (related to: general)\n- [Improved] decreased (related to: nodule)\n"
                 "- [Resolved] resolved (related to: pneumothorax)")
    assert parsers.parse_temporal(THINK + published) == {
        ("opacity", "new"), ("effusion", "worsened"), ("general", "unchanged"), ("nodule", "improved"),
        ("pneumothorax", "resolved")}
    assert parsers.parse_temporal("The pleural effusion has worsened. New right lower lobe opacity. "
                                  "The nodule is stable.") == {
        ("pleural effusion", "worsened"), ("right lower lobe opacity", "new"), ("nodule", "unchanged")}
    assert parsers.parse_temporal("nodule: stable") == {("nodule", "unchanged")}


def test_ner_answer_styles():
    published = ("Anatomy: right; upper; lobe\nObservation (Present): 3.2 cm; spiculated; mass\n"
                 "Observation (Absent): effusion\nObservation (Uncertain): atelectasis")
    assert parsers.parse_ner(THINK + published) == {
        ("right", "ANAT-DP"), ("upper", "ANAT-DP"), ("lobe", "ANAT-DP"), ("3 2 cm", "OBS-DP"),
        ("spiculated", "OBS-DP"), ("mass", "OBS-DP"), ("effusion", "OBS-DA"), ("atelectasis", "OBS-U")}


@pytest.mark.parametrize("text", ["", "\x00\xff", "<think>", "[" * 1000, "BI-RADS " * 500, "{" + '"a":' * 50,
                                  "N" * 10000, "- [" * 300])
def test_parsers_never_raise(text):
    for task in TASKS.values():
        task.parse(text)


# ------------------------------------------------------------------ the synthetic suite

from radlite_edge.tasks import rules  # noqa: E402
from radlite_edge.tasks.floors import floors  # noqa: E402
from radlite_edge.tasks.samples import Sample  # noqa: E402
from radlite_edge.tasks.synthetic import LeakError, check_disjoint, content_key, distinct_inputs, make_suite  # noqa: E402


@pytest.fixture(scope="module")
def suite():
    return make_suite(500, seed=0)


def test_every_reference_parses_back_to_its_label_in_the_published_style(suite):
    from radlite_edge.tasks import sample_score

    for s in suite:
        assert sample_score(TASKS[s.task], s.reference, s)[1] == pytest.approx(1.0), s.id
    refs = {s.task: s.reference for s in suite}
    assert refs["n_staging"].startswith(("Positive. N staging: N", "Negative. N staging: N0"))
    assert refs["temporal_comparison"].startswith("- [") and "(related to: " in refs["temporal_comparison"]
    assert refs["abnormality_detection"].splitlines()[0] == "- Atelectasis: " + refs["abnormality_detection"].split(
        "\n")[0].rsplit(": ", 1)[1]  # alphabetical, Atelectasis first
    assert refs["radiology_ner"].startswith(("Anatomy: ", "Observation ("))
    assert {TASKS["n_staging"].parse(s.reference) for s in suite if s.task == "n_staging"} == {"N0", "N1", "N2"}


def test_splits_are_disjoint_by_content_and_a_leak_fails_loudly(suite):
    counts = check_disjoint(suite)
    assert counts == {"test": 500 * 9, "generalization": 500 * 9, "val": 50 * 9, "train": 125 * 9}
    keys = {}
    for s in suite:
        keys.setdefault((s.task, content_key(s.input)), set()).add(s.split)
    assert all(len(splits) == 1 for splits in keys.values())  # 0 cross-split duplicates
    test = next(s for s in suite if s.split == "test")
    leak = Sample("x", test.task, test.input.upper() + "  ", test.reference, test.labels, split="train")
    with pytest.raises(LeakError):
        check_disjoint([*suite, leak])


def test_wording_varies(suite):
    distinct = distinct_inputs([s for s in suite if s.split == "test"])
    assert min(distinct.values()) >= 200, distinct  # hundreds of distinct inputs per 500, every task


def test_tirads_hand_cases_one_per_level():
    cases = {  # (composition, echogenicity, shape, margin, foci) -> level, by the ACR points table
        ("spongiform", "hypoechoic", "taller-than-wide", "irregular", ("punctate echogenic foci",)): "TR1",
        ("cystic", "anechoic", "wider-than-tall", "smooth", ("none",)): "TR1",
        ("mixed cystic and solid", "isoechoic", "wider-than-tall", "smooth", ("none",)): "TR2",
        ("solid", "hyperechoic", "wider-than-tall", "smooth", ("none",)): "TR3",
        ("solid", "hypoechoic", "wider-than-tall", "smooth", ("none",)): "TR4",
        ("solid", "very hypoechoic", "taller-than-wide", "smooth", ("none",)): "TR5",
    }
    for features, level in cases.items():
        assert rules.tirads_category(rules.tirads_points(*features)) == level, features
    assert rules.tirads_echogenicities("cystic") == ("anechoic",)
    assert "anechoic" not in rules.tirads_echogenicities("solid")


def test_synthetic_tirads_reports_follow_the_acr_rules(suite):
    tirads = [s for s in suite if s.task == "rads_assignment" and s.labels.get("system") == "TI-RADS"]
    assert {TASKS["rads_assignment"].parse(s.reference) for s in tirads} >= {"TI-RADS TR1", "TI-RADS TR5"}
    for s in tirads:
        text = s.input.lower()
        if "anechoic" in text:  # anechoic only for a cystic composition (ACR)
            assert "cystic anechoic" in text or "cystic, anechoic" in text or "cystic; echogenicity anechoic" in text \
                or ("cystic nodule" in text and "is anechoic" in text), s.input
        if "spongiform" in text:
            assert s.reference == "TI-RADS TR1", s.input


def test_no_trivial_answer_beats_half_on_a_label_task(suite):
    for name in ("rads_assignment", "n_staging", "radiology_nli", "abnormality_detection", "m_staging"):
        test = [s for s in suite if s.split == "test" and s.task == name]
        best = max(floors(TASKS[name], test).values())
        # M staging is binary: its majority answer scores at least half whatever the mix
        assert best <= (0.55 if name == "m_staging" else 0.5), (name, best)


def test_the_rads_mix_follows_the_published_split(suite):
    rads = [s for s in suite if s.task == "rads_assignment"]
    share = sum(s.labels["system"] == "BI-RADS" for s in rads) / len(rads)
    assert 0.25 < share < 0.4  # BI-RADS is a third of the published RADS training split


def test_the_generalization_split_shares_no_wording_with_training(suite):
    import re

    def shapes(split: str) -> set[str]:  # sentence templates: the words left when numbers are taken out
        return {re.sub(r"\d+(\.\d+)?", "#", sentence).strip().lower() for s in suite if s.split == split
                for sentence in re.split(r"[.\n]", s.input) if len(sentence.split()) > 3}

    assert not shapes("generalization") & shapes("train")


def test_bench_requests_and_eval_render_through_the_same_profile(tiny_gguf):
    from radlite_edge.bench.grid import task_requests
    from radlite_edge.bench.throughput import ChatPrompter, open_vocab
    from radlite_edge.engine import Engine

    model = tiny_gguf("tiny-qwen2", "q8_0")
    vocab = open_vocab(model)
    engine = Engine(model, n_ctx=1024)
    try:
        for request in task_requests("all"):
            task = TASKS[request.task]
            report = request.messages[-1]["content"]
            assert request.max_tokens == task.max_tokens
            assert ChatPrompter(vocab).tokens(request.messages) == engine.tokenize(task.prompt(
                _input_of(task, report)))
    finally:
        vocab.close()
        engine.close()



def _input_of(task, user_turn: str) -> str:
    """The report inside a rendered user turn (the template around ``{report}`` taken away)."""
    head, tail = PUBLISHED.templates[task.name].split("{report}")
    assert user_turn.startswith(head) and user_turn.endswith(tail)
    return user_turn[len(head):len(user_turn) - len(tail)]

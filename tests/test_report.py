"""Report: aggregation counts (images and text), HTML safety (escaping, no network) and a real browser render."""

from __future__ import annotations

import itertools
import math
import re
from pathlib import Path
from typing import Any

import pytest

from wmbench.report import failures, summarize, summarize_methods, write_report
from wmbench.report.aggregate import NO_P_VALUE, finite_mean
from wmbench.report.charts import quality_chart, robustness_chart
from wmbench.report.html import render_report
from wmbench.report.run import records_only
from wmbench.store import Record, Store

ALPHA = 0.01
EVIL = "<script>alert(1)</script>.png"
CHROMIUM = Path("/usr/bin/chromium")
_keys = itertools.count()
METRICS = ("psnr", "ssim", "perplexity", "similarity")  # keyword shorthands for Record.metrics


def rec(**kw: Any) -> Record:
    """A detected, marked clean cell unless told otherwise; every call gets a fresh key.

    ``psnr=``, ``ssim=``, ``perplexity=`` and ``similarity=`` go into ``Record.metrics``.
    """
    values: dict[str, Any] = dict(
        cell_key=f"k{next(_keys)}", sample="a.png", modality="image", method="dwtDct", wm_key="key",
        attack="none", strength=None, strength_index=0, marked=True,
        score=30.0, p_value=1e-6, detected=True, bits_matched=30, bits_total=32, psnr=42.0, ssim=0.99,
        seconds=0.01)
    values.update(kw)
    metrics = {name: values.pop(name) for name in METRICS if name in values}
    return Record(**values, metrics=metrics)


def render(records: list[Record], meta: dict[str, Any]) -> str:
    return render_report(records_only(records, meta))


def miss(**kw: Any) -> Record:
    return rec(**{"score": 16.0, "p_value": 0.5, "detected": False, "bits_matched": 16, **kw})


def failed(message: str = "boom", **kw: Any) -> Record:
    return rec(**{"score": None, "p_value": None, "detected": None, "bits_matched": None,
                  "psnr": None, "ssim": None, "error": message, **kw})


def trec(**kw: Any) -> Record:
    """A detected, marked clean text cell of the generation mark kgw unless told otherwise."""
    values: dict[str, Any] = dict(
        modality="text", method="kgw", sample="prompts:1", score=9.0, p_value=1e-12, detected=True,
        bits_matched=None, bits_total=None, psnr=None, ssim=None, perplexity=60.0, similarity=1.0, tokens=200,
        extra={"tokens_scored": 200, "green": 130, "gamma": 0.25, "z": 9.0})
    values.update(kw)
    return rec(**values)


def tneg(**kw: Any) -> Record:
    """An undetected unmarked text cell."""
    return trec(**{"marked": False, "score": 0.1, "p_value": 0.46, "detected": False, "perplexity": 40.0,
                   "extra": {"tokens_scored": 190, "green": 48, "gamma": 0.25, "z": 0.1}, **kw})


# Prompt and human ids chosen so that no id heuristic could sort them: a prompt file
# without ":" and a human text with one. Only each record's role (set by the planner) tells.
PROMPTS = ("prompts:1", "prompts:2", "story.txt")
HUMANS = ("01_lentil_soup.txt", "notes:2")
EVIL_TXT = "<script>alert(3)</script>.txt"


def kgw_records(method: str = "kgw", similarity: bool = True) -> list[Record]:
    """A generation mark: marked + unmarked generations of three prompts, two human texts as
    negatives only (one of them a false positive), and a two-strength text attack."""
    sim = (lambda v: v) if similarity else (lambda v: None)
    out: list[Record] = []
    for p in PROMPTS:
        out += [trec(method=method, sample=p, perplexity=60.0, similarity=sim(1.0), extra={
                    "tokens_scored": 200, "green": 130, "gamma": 0.25, "z": 9.0, "embed_seconds": 0.05}),
                tneg(method=method, sample=p, perplexity=40.0, similarity=sim(1.0))]
        for i, strength in enumerate((0.1, 0.3)):
            common = dict(method=method, sample=p, attack="word_swap", strength=strength, strength_index=i)
            hit = i == 0 or p == PROMPTS[0]
            out += [(trec if hit else tneg)(perplexity=80.0 + 10 * i, similarity=sim(0.9 - 0.2 * i), tokens=180,
                                            marked=True, **common),
                    tneg(perplexity=70.0, similarity=sim(0.95 - 0.2 * i), **common)]
    out += [tneg(method=method, sample=HUMANS[0], perplexity=100.0, similarity=sim(1.0), role="unpaired"),
            tneg(method=method, sample=HUMANS[1], perplexity=120.0, similarity=sim(1.0), p_value=1e-4,
                 detected=True, role="unpaired")]
    for h in HUMANS:
        for i, strength in enumerate((0.1, 0.3)):
            out.append(tneg(method=method, sample=h, attack="word_swap", strength=strength, strength_index=i,
                            perplexity=130.0, similarity=sim(0.9), role="unpaired"))
    return out


def lexical_records() -> list[Record]:
    """A mark added to human texts: every sample is marked and unmarked (no unpaired negative)."""
    out: list[Record] = []
    for n, sample in enumerate(("01_lentil_soup.txt", "02_night_train.txt", EVIL_TXT)):
        extra = {"tokens_scored": 18 + n, "green": 15, "gamma": 0.5, "z": 3.1, "words": 80 + 10 * n,
                 "substitutable": 18 + n, "thesaurus": "WordNet 3.0"}
        out += [trec(method="lexical", sample=sample, perplexity=66.0, similarity=0.96, tokens=18 + n,
                     extra={**extra, "embed_seconds": 0.7}),
                tneg(method="lexical", sample=sample, perplexity=60.0, similarity=1.0, tokens=20,
                     extra={**extra, "z": 0.2})]
    return out


# -- aggregation --------------------------------------------------------------------

def test_counts_exclude_failed_cells_from_rates_but_count_them() -> None:
    jpeg = dict(attack="jpeg", strength=50, strength_index=1)
    records = [
        rec(**jpeg), rec(**jpeg), miss(**jpeg), failed(**jpeg),             # marked: 2 of 3, 1 failed
        miss(marked=False, **jpeg), rec(marked=False, **jpeg), failed(marked=False, **jpeg),
    ]
    [row] = summarize(records, ALPHA)
    assert (row.method, row.attack, row.strength, row.strength_index) == ("dwtDct", "jpeg", 50, 1)
    assert (row.tpr.k, row.tpr.n, row.n_pos) == (2, 3, 3)
    assert (row.fpr.k, row.fpr.n, row.n_neg) == (1, 2, 2)
    assert row.errors == 2
    assert 0 < row.tpr.low < 2 / 3 < row.tpr.high <= 1


def test_detection_is_recomputed_at_the_given_alpha() -> None:
    records = [rec(p_value=0.03, detected=False), rec(p_value=0.001, detected=True)]
    assert summarize(records, 0.01)[0].tpr.k == 1
    assert summarize(records, 0.05)[0].tpr.k == 2


def test_cell_without_error_or_p_value_counts_as_failed_not_as_miss() -> None:
    records = [rec(), rec(p_value=None, detected=None)]
    [row] = summarize(records, ALPHA)
    assert (row.tpr.k, row.tpr.n, row.errors) == (1, 1, 1)
    assert failures(records)[0].message == NO_P_VALUE


def test_rows_ordered_by_method_then_attack_first_seen_then_strength() -> None:
    records = [
        rec(method="rivaGan", attack="crop", strength=0.5, strength_index=1),
        rec(method="rivaGan", attack="crop", strength=0.9, strength_index=0),
        rec(method="rivaGan", attack="jpeg", strength=90, strength_index=0),
        rec(method="rivaGan"),  # the clean row comes first although stored last
        rec(method="dwtDct", attack="jpeg", strength=90, strength_index=0),
    ]
    order = [(r.method, r.attack, r.strength) for r in summarize(records, ALPHA)]
    assert order == [("rivaGan", "none", None), ("rivaGan", "crop", 0.9), ("rivaGan", "crop", 0.5),
                     ("rivaGan", "jpeg", 90), ("dwtDct", "jpeg", 90)]


def test_quality_means_skip_missing_and_infinite_values() -> None:
    records = [rec(psnr=40.0, ssim=0.9), rec(psnr=math.inf, ssim=1.0), rec(psnr=None, ssim=None),
               failed(psnr=10.0), rec(marked=False, psnr=math.inf), rec(marked=False, psnr=None)]
    [row] = summarize(records, ALPHA)
    assert row.metric("psnr").marked == 40.0      # inf, None and the failed cell's value are left out
    assert row.metric("ssim").marked == pytest.approx(0.95)
    assert row.metric("psnr").twin is None        # nothing finite: "no value", not 0
    assert finite_mean([]) is None


def test_unmarked_psnr_is_the_attack_damage_alone() -> None:
    jpeg = dict(attack="jpeg", strength=30, strength_index=0)
    records = [rec(psnr=33.0, **jpeg), rec(marked=False, psnr=35.0, **jpeg), rec(marked=False, psnr=37.0, **jpeg)]
    [row] = summarize(records, ALPHA)
    assert (row.metric("psnr").marked, row.metric("psnr").twin) == (33.0, 36.0)


def test_bits_matched_mean_over_marked_items() -> None:
    records = [rec(bits_matched=32), rec(bits_matched=28), rec(marked=False, bits_matched=16)]
    [row] = summarize(records, ALPHA)
    assert (row.mean_bits, row.bits_total) == (30.0, 32)


def test_method_summary_reports_embedding_cost_and_clean_rates() -> None:
    records = [
        rec(sample="a", psnr=40.0, ssim=0.98, extra={"embed_seconds": 0.2}),
        rec(sample="b", psnr=44.0, ssim=0.96, extra={"embed_seconds": 0.4}),
        miss(sample="a", marked=False, psnr=math.inf), rec(sample="b", marked=False, psnr=math.inf),
        miss(sample="a", attack="jpeg", strength=50, psnr=20.0),  # attacked: not an embedding cost
        failed(sample="b", attack="jpeg", strength=50),
    ]
    [s] = summarize_methods(records, ALPHA)
    assert (s.method, s.samples, s.keys, s.cells, s.errors) == ("dwtDct", 2, 1, 6, 1)
    assert (s.clean_metric("psnr").marked, s.clean_metric("ssim").marked) == (42.0, pytest.approx(0.97))
    assert s.embed_seconds == pytest.approx(0.3)
    assert (s.clean_tpr.k, s.clean_tpr.n, s.clean_fpr.k, s.clean_fpr.n) == (2, 2, 1, 2)


def test_failures_grouped_by_message_most_frequent_first() -> None:
    records = [failed("rare", sample="x"), rec(), failed("common", sample="y"), failed("common", sample="z")]
    groups = failures(records)
    assert [(g.message, [c.sample for c in g.cells]) for g in groups] == [
        ("common", ["y", "z"]), ("rare", ["x"])]


def test_empty_input() -> None:
    assert summarize([], ALPHA) == [] and summarize_methods([], ALPHA) == [] and failures([]) == []


# -- text ---------------------------------------------------------------------------

def test_generation_mark_fpr_split_by_negative_pool() -> None:
    clean, weak, strong = summarize(kgw_records(), ALPHA)
    assert (clean.attack, weak.strength, strong.strength) == ("none", 0.1, 0.3)
    # Pooled: 3 unmarked generations + 2 human texts, one human text a false positive.
    assert (clean.fpr.k, clean.fpr.n) == (1, 5)
    assert (clean.fpr_paired.k, clean.fpr_paired.n) == (0, 3)      # prompts:1, prompts:2, story.txt
    assert (clean.fpr_unpaired.k, clean.fpr_unpaired.n) == (1, 2)  # 01_lentil_soup.txt, notes:2
    assert (strong.tpr.k, strong.tpr.n, strong.fpr_paired.n, strong.fpr_unpaired.n) == (1, 3, 3, 2)
    [s] = summarize_methods(kgw_records(), ALPHA)
    assert (s.samples, s.unpaired_samples, s.paired_samples, s.has_unpaired) == (5, 2, 3, True)
    assert (s.clean_fpr_paired.n, s.clean_fpr_unpaired.k, s.clean_fpr_unpaired.n) == (3, 1, 2)


def test_failed_marked_cell_still_makes_its_sample_paired() -> None:
    # The planner gives the twin of a sample it marks role "twin" whatever the marked cell's outcome.
    records = [failed(modality="text", method="kgw", sample="p"), tneg(sample="p"), tneg(sample="h", role="unpaired")]
    [row] = summarize(records, ALPHA)
    assert (row.tpr.n, row.errors, row.fpr_paired.n, row.fpr_unpaired.n) == (0, 1, 1, 1)


def test_a_store_of_the_first_schema_reads_back_with_metrics_and_roles(tmp_path: Path) -> None:
    """Runs stored before metrics and roles were kept: the metric columns move into
    ``metrics`` (infinity kept) and each negative's pool comes from the plan's rule: a
    sample with a marked cell under the method, failed or not, is paired."""
    import sqlite3

    columns = ("cell_key, sample, modality, method, wm_key, attack, strength, strength_index, marked, score, "
               "p_value, detected, bits_matched, bits_total, psnr, ssim, perplexity, similarity, tokens, seconds, "
               "error, skipped, extra")
    rows = [("i1", "img", "image", "dwtDct", "k", "none", "null", 0, 1, 1.0, 1e-6, 1, 30, 32, 42.0, 0.99,
             None, None, None, 0.1, None, None, None),
            ("i2", "img", "image", "dwtDct", "k", "none", "null", 0, 0, 1.0, 0.5, 0, 16, 32, math.inf, 1.0,
             None, None, None, 0.1, None, None, None),
            ("t1", "p", "text", "kgw", "k", "none", "null", 0, 1, None, None, None, None, None, None, None,
             None, None, None, 0.1, "boom", None, None),
            ("t2", "p", "text", "kgw", "k", "none", "null", 0, 0, 0.1, 0.4, 0, None, None, None, None,
             40.0, 1.0, 200, 0.1, None, None, None),
            ("t3", "h", "text", "kgw", "k", "none", "null", 0, 0, 0.1, 0.4, 0, None, None, None, None,
             100.0, 1.0, 200, 0.1, None, None, None)]
    db = sqlite3.connect(tmp_path / "results.sqlite")
    db.execute(f"CREATE TABLE cells ({columns}, finished_at REAL)")
    db.execute("CREATE TABLE meta (name TEXT PRIMARY KEY, value TEXT)")
    db.executemany(f"INSERT INTO cells VALUES ({', '.join('?' * 24)})", [(*r, 0.0) for r in rows])
    db.commit()
    db.close()
    with Store(tmp_path, create=False) as store:
        records = {r.cell_key: r for r in store.records()}
    assert [records[k].role for k in ("i1", "i2", "t1", "t2", "t3")] == [
        "positive", "twin", "positive", "twin", "unpaired"]
    assert (records["i1"].metric("psnr"), records["i1"].metric("ssim")) == (42.0, 0.99)
    assert records["i2"].metric("psnr") == math.inf
    assert (records["t2"].metric("perplexity"), records["t2"].metric("similarity")) == (40.0, 1.0)
    [row] = summarize(records.values(), ALPHA)[1:]
    assert (row.tpr.n, row.errors, row.fpr_paired.n, row.fpr_unpaired.n) == (0, 1, 1, 1)


def test_text_quality_means_per_pool() -> None:
    clean, _, strong = summarize(kgw_records(), ALPHA)
    perplexity = clean.metric("perplexity")
    assert (perplexity.marked, perplexity.twin, perplexity.unpaired) == (60, 40, 110)
    assert (clean.metric("similarity").marked, clean.mean_tokens) == (1.0, 200)
    perplexity = strong.metric("perplexity")
    assert (perplexity.marked, perplexity.twin, perplexity.unpaired) == (90, 70, 130)
    assert strong.metric("similarity").marked == pytest.approx(0.7)
    assert strong.metric("similarity").twin == pytest.approx(0.75)  # paired twins only: the attack's damage
    assert (clean.metric("psnr").marked, clean.metric("ssim").marked, clean.mean_bits) == (None, None, None)
    assert clean.mean_substitutable is None  # only the lexical detector reports it
    [lex] = summarize(lexical_records(), ALPHA)
    assert (lex.mean_substitutable, lex.mean_words, lex.mean_tokens) == (19.0, 90.0, 19.0)
    assert lex.fpr_unpaired.n == 0 and lex.fpr_paired == lex.fpr


def test_text_method_summary_reports_marking_cost() -> None:
    [kgw] = summarize_methods(kgw_records(), ALPHA)
    perplexity = kgw.clean_metric("perplexity")
    assert (perplexity.marked, perplexity.twin, perplexity.unpaired) == (60, 40, 110)
    assert kgw.ratio("perplexity") == pytest.approx(1.5)
    assert (kgw.clean_tokens, kgw.clean_metric("psnr").marked, kgw.embed_seconds) == (200, None, pytest.approx(0.05))
    assert kgw.settings == (("gamma", "0.25"),)
    [lex] = summarize_methods(lexical_records(), ALPHA)
    assert (lex.has_unpaired, lex.clean_metric("similarity").marked, lex.clean_metric("perplexity").marked) == (
        False, pytest.approx(0.96), 66)
    assert lex.ratio("perplexity") == pytest.approx(1.1)
    assert lex.settings == (("gamma", "0.5"), ("thesaurus", "WordNet 3.0"))


def test_image_negatives_are_all_paired() -> None:
    [row] = summarize([rec(), miss(marked=False), rec(marked=False)], ALPHA)
    assert row.fpr_paired == row.fpr and row.fpr_unpaired.n == 0
    assert (row.metric("perplexity").marked, row.metric("similarity").marked, row.mean_tokens) == (None, None, None)
    [s] = summarize_methods([rec(), miss(marked=False)], ALPHA)
    assert (s.has_unpaired, s.unpaired_samples, s.ratio("perplexity")) == (False, 0, None)


def test_chart_of_a_generation_mark_draws_fpr_per_pool() -> None:
    rows = [r for r in summarize(kgw_records(), ALPHA) if not r.is_clean]
    pools = records_only([]).modality("text").pools  # the text modality's words for its two pools
    chart = robustness_chart("word_swap", rows, ALPHA, pools)
    assert [(s.name, s.css) for s in chart.series] == [
        ("TPR", "tpr"), ("FPR unmarked generations", "fpr"), ("FPR human texts", "fpr-alt")]
    assert [len(s.markers) for s in chart.series] == [2, 2, 2]
    assert [s.name for s in robustness_chart("word_swap", rows, ALPHA).series] == ["TPR", "FPR"]


# -- HTML ---------------------------------------------------------------------------

def sample_records() -> list[Record]:
    """Image methods (two attacks, three strengths, an evil sample name, one failure) after
    text methods: a generation mark with human negatives, one without similarity, lexical."""
    out: list[Record] = kgw_records() + kgw_records("unigram", similarity=False) + lexical_records()
    samples = ["astronaut.png", "coffee.png", EVIL]
    attacks = {"jpeg": [90, 70, 50], "gaussian_noise": [0.01, 0.03, 0.06]}
    for method, robust in (("dwtDct", 0), ("rivaGan", 1)):
        for s_i, sample in enumerate(samples):
            extra = {"embed_seconds": 0.05 + robust}
            out += [rec(method=method, sample=sample, extra=extra, psnr=39.0 + 2 * robust),
                    miss(method=method, sample=sample, marked=False, psnr=math.inf, ssim=1.0)]
            for attack, strengths in attacks.items():
                for i, strength in enumerate(strengths):
                    common = dict(method=method, sample=sample, attack=attack, strength=strength, strength_index=i)
                    hit = s_i + robust >= i
                    out.append((rec if hit else miss)(psnr=36.0 - 3 * i, ssim=0.95 - 0.05 * i, **common))
                    out.append(miss(marked=False, psnr=38.0 - 3 * i, ssim=0.96 - 0.05 * i, **common))
    out.append(failed("attack gaussian_noise: <b>bad</b> & broken", method="rivaGan", sample=EVIL,
                      attack="gaussian_noise", strength=0.09, strength_index=3))
    return out


def sample_meta() -> dict[str, Any]:
    return {
        "suite_name": "demo <suite>", "suite_path": "suites/demo.toml", "seed": 7, "alpha": ALPHA,
        "suite_text": '[suite]\nname = "demo <suite>"\n# see <script>alert(2)</script>\n',
        "versions": {"python": "3.11.9", "invisible-watermark": "0.2.0"},
        "machine": {"platform": "Linux-x86_64", "cpus": 8}, "workers": 4,
        "started_at": 1_700_000_000.0, "finished_at": 1_700_000_083.0, "seconds": 83.0,
        "samples": ["astronaut.png", "coffee.png", EVIL], "command": "wmbench run suites/demo.toml",
        "manifest": sample_manifest(),
    }


def sample_manifest() -> dict[str, Any]:
    """The plan the runner stores with a run (meta["manifest"]): the report learns from it which
    methods generate their items and how each attack is tagged. It lists no modalities, so the
    report falls back to the installed modalities' declarations."""
    methods = (("kgw", "text", True), ("unigram", "text", True), ("lexical", "text", False),
               ("dwtDct", "image", False), ("rivaGan", "image", False))
    attacks = (("word_swap", "text", [0.1, 0.3], {"family": "word edit"}),
               ("jpeg", "image", [90, 70, 50], {"family": "compression"}),
               ("gaussian_noise", "image", [0.01, 0.03, 0.06], {"family": "noise"}))
    return {
        "version": 1,
        "suite": {"name": "demo <suite>", "path": "suites/demo.toml", "seed": 7, "alpha": ALPHA},
        "methods": [{"label": label, "name": label, "key": "key", "params": [], "modality": modality,
                     "generates": generates, "attacks": None} for label, modality, generates in methods],
        "attacks": [{"label": label, "modality": modality, "strengths": strengths, "tags": tags,
                     "steps": [{"attack": label, "strength": None, "params": []}], "parameters": {}}
                    for label, modality, strengths, tags in attacks],
        "samples": [], "cache": {},
    }


def make_run(run_dir: Path, records: list[Record], meta: dict[str, Any] | None) -> Path:
    with Store(run_dir, create=True) as store:
        store.add(records)
        if meta is not None:
            store.set_meta(meta)
    return run_dir


@pytest.fixture
def report(tmp_path: Path) -> Path:
    run = make_run(tmp_path / "run", sample_records(), sample_meta())
    out = write_report(run)
    assert out == run / "report.html"
    return out


_EXTERNAL = re.compile(r"""(?:\bsrc\s*=|\bhref\s*=|\burl\s*\(|@import)\s*["']?\s*(?:https?:)?//""", re.I)


def test_report_is_self_contained(report: Path) -> None:
    html = report.read_text(encoding="utf-8")
    assert not _EXTERNAL.search(html)
    assert not re.search(r"\b(?:src|href)\s*=\s*(?![\"']?#)", html), "only in-page anchors may be linked"
    assert "http://" not in html and "https://" not in html  # the sample data holds no URL either
    assert "<svg" in html and "<table" in html


def test_user_strings_are_escaped(report: Path) -> None:
    html = report.read_text(encoding="utf-8")
    assert "<script>alert(" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;.png" in html
    assert "&lt;script&gt;alert(2)&lt;/script&gt;" in html          # the suite text, in its <pre>
    assert "demo &lt;suite&gt;" in html and "<b>bad</b>" not in html
    assert html.count("<script>") == 1                                # only the sort script


def test_report_shows_failures_metadata_and_tables(report: Path) -> None:
    html = report.read_text(encoding="utf-8")
    assert "attack gaussian_noise: &lt;b&gt;bad&lt;/b&gt; &amp; broken" in html
    for text in ("dwtDct", "rivaGan", "gaussian_noise", "How to read this report", "suites/demo.toml",
                 "invisible-watermark 0.2.0", "1 min 23 s", "2023-11-14 22:13:20 UTC"):
        assert text in html, text


def method_section(html: str, method: str) -> str:
    """The HTML of one method's section."""
    for match in re.finditer(r'<section id="method-\d+">.*?</section>', html, re.S):
        if f"<h2>{method}<span" in match.group(0):
            return match.group(0)
    raise AssertionError(f"no section for {method}")


def headers(section: str) -> list[str]:
    return [re.sub(r"<[^>]+>", "", h).strip() for h in re.findall(r"<th\b[^>]*>(.*?)</th>", section, re.S)]


def test_report_groups_overview_by_modality(report: Path) -> None:
    html = report.read_text(encoding="utf-8")
    overview = re.search(r'<section id="overview">.*?</section>', html, re.S).group(0)
    images, text = overview.index('id="overview-image"'), overview.index('id="overview-text"')
    assert images < text  # images first although the store holds the text cells first
    image_part, text_part = overview[images:text], overview[text:]
    assert "Embed PSNR" in image_part and "Perplexity" not in image_part
    assert "Embed PSNR" not in text_part
    for column in ("Perplexity marked", "Perplexity unmarked", "Ratio", "Embed Similarity",
                   "Tokens scored", "Clean FPR unmarked", "Clean FPR human texts"):
        assert column in text_part, column
    assert ">3 + 2<" in text_part  # kgw: 3 prompts + 2 human texts
    assert "1.50" in text_part and "0.960" in text_part  # kgw's perplexity ratio, lexical's similarity
    # kgw generates its texts (the manifest says so): no original to compare its similarity with
    assert "A generation mark has no original: its Similarity" in text_part
    # Method sections follow the same order: every image method before every text method.
    order = re.findall(r'<section id="method-\d+">\s*<h2>(\w+)<span', html)
    assert order == ["dwtDct", "rivaGan", "kgw", "unigram", "lexical"]
    assert re.search(r'<section id="method-0">\s*<h2>dwtDct', html)


def test_method_tables_show_the_columns_of_their_modality(report: Path) -> None:
    html = report.read_text(encoding="utf-8")
    image = headers(method_section(html, "dwtDct"))
    assert {"PSNR", "SSIM", "PSNR unmarked", "Bits matched"} <= set(image)
    assert not any("Perplexity" in h or "Similarity" in h or "Tokens" in h for h in image)
    assert "Refused" not in image  # no refused cell: the empty column is left out

    kgw = method_section(html, "kgw")
    assert headers(kgw)[2:5] == ["TPR [95 % CI]", "FPR unmarked gen. [95 % CI]", "FPR human texts [95 % CI]"]
    assert {"Perplexity", "Perplexity unmarked gen.", "Perplexity human", "Similarity", "Similarity unmarked gen.",
            "Tokens scored"} <= set(headers(kgw))
    assert not any(h.startswith(("PSNR", "SSIM", "Bits", "Substitutable")) for h in headers(kgw))
    assert "3 + 2" in kgw and "generation mark" in kgw
    assert "FPR on unmarked generations" in kgw and "FPR on human texts" in kgw  # chart legend
    assert 'class="series fpr-alt"' in kgw

    unigram = headers(method_section(html, "unigram"))  # no similarity model: no similarity column
    assert "Perplexity" in unigram and not any("Similarity" in h for h in unigram)

    lexical = method_section(html, "lexical")
    assert "FPR [95 % CI]" in headers(lexical) and "FPR human texts [95 % CI]" not in headers(lexical)
    assert "Substitutable" in headers(lexical) and "90.0 words" in lexical
    assert "embedding Similarity <b>0.960</b>" in lexical and "WordNet 3.0" in lexical
    assert "<script>alert(3)" not in html


def test_how_to_read_follows_the_modalities() -> None:
    images_only = render([rec(), miss(marked=False)], {"alpha": ALPHA})
    text_only = render(lexical_records(), {"alpha": ALPHA})
    generation = render(kgw_records(), {"alpha": ALPHA})
    assert "PSNR</b> (dB)" in images_only and "Perplexity</b>" not in images_only
    assert "Perplexity</b>" in text_only and "Similarity</b>" in text_only and "PSNR</b> (dB)" not in text_only
    assert 'id="overview-text"' in text_only and 'id="overview-image"' not in text_only
    # the two pools of negatives are explained where a generation mark has them
    assert "human texts</b>" in generation and "human texts</b>" not in text_only


def test_refused_column_appears_when_a_cell_was_refused() -> None:
    html = render([rec(), miss(p_value=1.0, extra={"refused": "too small"}), miss(marked=False)],
                  {"alpha": ALPHA})
    assert "Refused" in headers(method_section(html, "dwtDct"))


def test_custom_output_path(tmp_path: Path) -> None:
    run = make_run(tmp_path / "run", sample_records(), sample_meta())
    out = write_report(run, tmp_path / "elsewhere" / "r.html")
    assert out.is_file() and not (run / "report.html").exists()


def test_empty_store_renders(tmp_path: Path) -> None:
    run = make_run(tmp_path / "run", [], None)
    html = write_report(run).read_text(encoding="utf-8")
    assert "This run has no cells yet" in html and "no α in its metadata" in html
    assert "not finished" in html


def test_chart_breaks_the_line_where_every_cell_failed() -> None:
    cells = [rec(attack="jpeg", strength=q, strength_index=i) for i, q in enumerate((90, 70, 50, 30))]
    cells[1] = failed(attack="jpeg", strength=70, strength_index=1)
    chart = robustness_chart("jpeg", summarize(cells, ALPHA), ALPHA)
    tpr = chart.series[0]
    assert [t.label for t in chart.x_ticks] == ["90", "70", "50", "30"]
    assert len(tpr.lines) == 2 and len(tpr.bands) == 1 and len(tpr.markers) == 3
    assert [m.whisker for m in tpr.markers] == [True, False, False]  # a lone point gets a whisker
    assert chart.top < chart.alpha_y < chart.bottom


def test_render_handles_a_method_whose_cells_all_failed() -> None:
    records = [failed(), failed(marked=False), failed(attack="jpeg", strength=50)]
    html = render(records, {"alpha": ALPHA})
    assert "n/a" in html and "3 cells" in html


# -- headless browser ---------------------------------------------------------------

@pytest.mark.browser
@pytest.mark.skipif(not CHROMIUM.exists(), reason=f"headless browser test needs {CHROMIUM} (apt-get install chromium)")
def test_report_in_headless_chromium(report: Path, tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    url = report.resolve().as_uri()
    console_errors: list[str] = []
    page_errors: list[str] = []
    requests: list[str] = []
    dialogs: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=[
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--no-first-run", "--disable-sync"])
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.on("console", lambda m: m.type == "error" and console_errors.append(m.text))
            page.on("pageerror", lambda e: page_errors.append(str(e)))
            page.on("request", lambda r: requests.append(r.url))
            page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
            page.goto(url, wait_until="load")

            # The verdict card is on the first screen, images beside text.
            verdict = page.locator("#verdict")
            box = verdict.bounding_box()
            assert verdict.is_visible() and box["y"] < 900, box
            columns = verdict.locator(".verdict-col").all()
            assert [c.locator("h3").inner_text() for c in columns] == ["Images", "Text"]
            assert abs(columns[0].bounding_box()["y"] - columns[1].bounding_box()["y"]) < 2  # side by side
            page.screenshot(path=str(tmp_path / "first-screen.png"))

            assert page.locator("table.sortable").first.is_visible()
            assert page.locator("figure.chart svg").first.is_visible()
            assert page.locator("figure.chart svg polyline").count() > 0
            assert page.get_by_text(EVIL).first.is_visible()  # shown as text, not run

            # The inline sort script runs (the CSP hash matches) and sorts by TPR.
            table = page.locator("section#method-0 table.sortable")
            table.locator("th", has_text="TPR").click()
            assert table.locator("th", has_text="TPR").get_attribute("aria-sort") == "ascending"
            tprs = [float(v) for v in table.locator("tbody td:nth-child(3)").evaluate_all(
                "cells => cells.map(c => c.getAttribute('data-v'))")]
            assert tprs == sorted(tprs)

            # Both halves of the overview, and a text method's curves with one FPR line per pool.
            assert page.locator("#overview-image table").is_visible()
            assert page.locator("#overview-text table").is_visible()
            kgw = page.locator("section", has=page.locator("h2", has_text="kgw"))
            assert kgw.locator("figure.chart .series.fpr-alt polyline").count() > 0
            assert kgw.get_by_text("FPR human texts [95 % CI]").is_visible()

            shot = tmp_path / "report.png"
            page.screenshot(path=str(shot), full_page=True)
        finally:
            browser.close()
    assert console_errors == [] and page_errors == [] and dialogs == []
    assert requests == [url]
    assert shot.stat().st_size > 10_000


def _prefix(sample: str, words: int, tokens: int, p: float, attack: str = "truncate") -> Record:
    return rec(sample=sample, modality="text", method="kgw", attack=attack, strength=words, tokens=tokens,
               p_value=p, detected=p < ALPHA, psnr=None, ssim=None, bits_matched=None, bits_total=None)


def test_tokens_needed_is_the_shortest_detected_prefix_median_over_texts() -> None:
    records = [
        _prefix("p1", None, 380, 1e-30, attack="none"), _prefix("p1", 100, 95, 1e-9), _prefix("p1", 25, 24, 0.2),
        _prefix("p2", None, 390, 1e-30, attack="none"), _prefix("p2", 100, 97, 0.003), _prefix("p2", 25, 26, 0.004),
        _prefix("p3", None, 385, 1e-12, attack="none"), _prefix("p3", 100, 90, 0.3), _prefix("p3", 25, 22, 0.5),
        _prefix("p4", None, 40, 0.5, attack="none"), _prefix("p4", 25, 20, 0.6),  # never detected
    ]
    prefix = {"truncate"}  # the attacks the manifest tags as prefix sweeps
    needed = summarize_methods(records, ALPHA, prefix_attacks=prefix)[0].tokens_needed
    assert (needed.median, needed.reached, needed.samples) == (95, 3, 4)  # per text: 95, 26, 385
    assert needed.text == "95 (3/4)"
    assert summarize_methods([r for r in records if r.attack == "none"], ALPHA,
                             prefix_attacks=prefix)[0].tokens_needed is None
    assert summarize_methods(records, ALPHA)[0].tokens_needed is None  # an attack's name alone is no prefix tag
    nothing = summarize_methods([_prefix("p4", None, 40, 0.5, attack="none"), _prefix("p4", 25, 20, 0.6)], ALPHA,
                                prefix_attacks=prefix)
    assert nothing[0].tokens_needed.text == "not reached (0/1)"


def test_quality_chart_draws_one_curve_per_attack_against_similarity() -> None:
    text = records_only([]).modality("text")
    records = []
    for strength_index, (sim, detected) in enumerate([(0.9, True), (0.6, True), (0.3, False)]):
        for sample in ("p1", "p2"):
            records.append(rec(sample=sample, modality="text", method="kgw", attack="synonym", strength=sim,
                               strength_index=strength_index, similarity=sim, p_value=1e-6 if detected else 0.4,
                               psnr=None, ssim=None, bits_matched=None, bits_total=None))
    records.append(rec(sample="p1", modality="text", method="kgw", attack="typo", strength=0.1, similarity=0.95,
                       psnr=None, ssim=None, bits_matched=None, bits_total=None))
    chart = quality_chart(text, summarize(records, ALPHA), ALPHA)
    assert [c.attack for c in chart.curves] == ["synonym", "typo"]
    synonym = chart.curves[0].markers
    assert [m.x for m in synonym] == sorted((m.x for m in synonym), reverse=True)  # weaker = more similar = right
    assert [m.y for m in synonym][-1] == chart.bottom  # TPR 0 at the strongest
    assert chart.x_ticks[0].label == "0.3" and chart.x_ticks[-1].label == "1"
    no_quality = [rec(modality="text", method="kgw", attack="typo", psnr=None, similarity=None)]
    assert quality_chart(text, summarize(no_quality, ALPHA), ALPHA) is None

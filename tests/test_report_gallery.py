"""Report gallery (image methods) and text viewer (text methods).

End to end: a tiny suite run through the CLI (dwtDctSvd on one photo with jpeg, crop
and blur; kgw on two built-in prompts with synonym and typo), its report parsed back:
the thumbnails decode to their sizes, the badges are the stored p-values, the
attacked items are the cells' own, the green spans are the detector's count; a
report rebuilt without the run cache or away from the originals renders with notes.
Unit: ``explain`` against ``detect`` on arbitrary texts and keys (hypothesis), the
image budget, escaping of the text.
"""

from __future__ import annotations

import base64
import html as htmllib
import io
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from testkit import copy_photos, invoke
from wmbench import registry
from wmbench.api import Sample
from wmbench.cells import attack_seed, cache_paths
from wmbench.report import write_report
from wmbench.modalities.image.view import IMAGE_BUDGET, THUMB_WIDTH, _fit, data_uri, thumbnail
from wmbench.report.run import StoredRun
from wmbench.store import Store
from wmbench.suite import load_suite
from wmbench.modalities.text.corpus import human_texts, prompts

CHROMIUM = Path("/usr/bin/chromium")
SEED = 5
SUITE = f"""\
[suite]
name = "gallery <test>"
seed = {SEED}
alpha = 0.01

[samples]
images = ["imgs"]
prompts = ["builtin:prompts"]

[[methods]]
name = "dwtDctSvd"
key = "k1"

[[methods]]
name = "kgw"
key = "k1"
max_samples = 2
max_new_tokens = 80

[[attacks]]
name = "jpeg"
strengths = [90, 50]

[[attacks]]
name = "crop_center_resize"
strengths = [0.9, 0.5]

[[attacks]]
name = "gaussian_blur"
strengths = [1, 4]

[[attacks]]
name = "synonym"
strengths = [0.5, 1.0]

[[attacks]]
name = "typo"
strengths = [0.3, 1.0]
"""


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    base = tmp_path_factory.mktemp("gallery")
    copy_photos(base / "imgs", ["astronaut.png"])
    (base / "tiny.toml").write_text(SUITE, encoding="utf-8")
    code, _, err = invoke("run", base / "tiny.toml", "--out", base / "run", "--workers", "1", "--no-progress")
    assert code == 0, err
    with Store(base / "run", create=False) as store:
        records, meta = list(store.records()), store.meta()
    suite = load_suite(base / "tiny.toml")
    report = base / "run" / "report.html"
    return {"base": base, "dir": base / "run", "records": records, "meta": meta, "suite": suite,
            "html": report.read_text(encoding="utf-8"), "report": report}


def section(html: str, method: str) -> str:
    for match in re.finditer(r'<section id="method-\d+">.*?</section>', html, re.S):
        if f"<h2>{method}<span" in match.group(0):
            return match.group(0)
    raise AssertionError(f"no section for {method}")


def figures(part: str) -> list[dict[str, str]]:
    """Every gallery figure: its data-* attributes and its image's data: URI."""
    out = []
    for m in re.finditer(r'<figure class="thumb[^"]*"(.*?)</figure>', part, re.S):
        attrs = dict(re.findall(r'data-([\w-]+)="([^"]*)"', m.group(1)))
        attrs["src"] = re.search(r'<img src="([^"]+)"', m.group(1)).group(1)
        out.append(attrs)
    return out


def decode(uri: str) -> Image.Image:
    match = re.fullmatch(r"data:image/(png|jpeg);base64,([A-Za-z0-9+/=]+)", uri)
    assert match, uri[:60]
    image = Image.open(io.BytesIO(base64.b64decode(match.group(2))))
    image.load()
    assert image.format == match.group(1).upper()
    return image


def panels(part: str) -> list[dict[str, Any]]:
    """Every text viewer panel: data-* attributes, the shown text and its spans."""
    out = []
    for m in re.finditer(r'<figure class="tv-panel"(.*?)<div class="tv-text">(.*?)</div>\s*</figure>', part, re.S):
        attrs: dict[str, Any] = dict(re.findall(r'data-([\w-]+)="([^"]*)"', m.group(1)))
        body = m.group(2)
        attrs["text"] = htmllib.unescape(re.sub(r"<[^>]+>", "", body))
        attrs["classes"] = re.findall(r'<span class="([^"]+)" title="[^"]*">', body)
        out.append(attrs)
    return out


def stored(records: list, method: str, sample: str | None, attack: str, index: int, marked: bool = True) -> Any:
    [r] = [r for r in records if r.method == method and r.attack == attack and r.strength_index == index
           and r.marked == marked and (sample is None or r.sample == sample)]
    return r


# -- gallery -----------------------------------------------------------------------------

@pytest.mark.slow
def test_gallery_shows_original_marked_and_attacked_thumbnails_that_decode(run: dict[str, Any]) -> None:
    part = section(run["html"], "dwtDctSvd")
    figs = figures(part)
    kinds = [(f["kind"], f.get("attack"), f.get("strength-index")) for f in figs]
    # the strongest strength of each family (both keep the size), main families first
    assert kinds == [("original", "none", ""), ("marked", "none", ""), ("attacked", "jpeg", "1"),
                     ("attacked", "crop_center_resize", "1"), ("attacked", "gaussian_blur", "1"),
                     ("heatmap", None, None)], kinds
    for f in figs:
        image = decode(f["src"])
        assert image.size == (THUMB_WIDTH, THUMB_WIDTH)  # astronaut is 512 x 512
        assert image.format == ("PNG" if f["kind"] == "heatmap" else "JPEG")
    heat = np.asarray(decode(figs[-1]["src"]).convert("RGB"))
    assert heat.std() > 5  # the mark's difference shows, not a flat picture
    assert sum(len(f["src"]) for f in figs) < IMAGE_BUDGET
    assert "where the mark lives" in part and "|marked − original| ×" in part


@pytest.mark.slow
def test_gallery_badges_are_the_stored_p_values(run: dict[str, Any]) -> None:
    for f in figures(section(run["html"], "dwtDctSvd")):
        if f["kind"] == "heatmap":
            continue
        index = int(f["strength-index"] or 0)
        r = stored(run["records"], "dwtDctSvd", "astronaut.png", f["attack"], index, marked=f["kind"] != "original")
        assert float(f["p"]) == r.p_value
    part = section(run["html"], "dwtDctSvd")
    assert re.search(r'<b>marked</b>\s*<span class="badge hit">p = 2.3e-10 ✓</span>', part), part[:3000]


@pytest.mark.slow
def test_gallery_attacked_image_is_the_item_the_cell_detected(run: dict[str, Any]) -> None:
    from wmbench.modalities.image.view import build_gallery
    from wmbench.report.examples import RunExamples

    gallery = build_gallery(RunExamples(StoredRun.load(run["dir"])).example("image", "dwtDctSvd"))
    method_config = run["suite"].methods[0]
    sample = Sample("astronaut.png", "image", "")
    marked = np.asarray(Image.open(cache_paths(run["dir"], sample, method_config)[0]).convert("RGB"))
    method = registry.method_instance("dwtDctSvd")
    attacks = {a.label: a for a in run["suite"].attacks}
    for thumb in (t for t in gallery.thumbs if t.kind == "attacked"):
        attack = attacks[thumb.attack]
        rng = np.random.default_rng(attack_seed(SEED, sample.id, attack.label, thumb.strength_index))
        attacked = registry.get_attack(attack.label)(marked, attack.strengths[thumb.strength_index], rng)
        # the same pixels as the cell: detecting them again gives its stored p-value
        assert method.detect(attacked, "k1").p_value == thumb.p_value
        assert thumb.uri == data_uri(thumbnail(attacked), "JPEG", quality=gallery.quality, optimize=True)


def test_fit_keeps_within_budget_dropping_minor_families_first() -> None:
    rng = np.random.default_rng(0)
    noise = [thumbnail(rng.integers(0, 256, (320, 320, 3), dtype=np.uint8)) for _ in range(14)]
    main = ["jpeg", "crop_center_resize", "gaussian_blur"]  # one attack of each main family (by its tags)
    labels = ["original", "marked", *main, *[f"family{i}" for i in range(9)]]
    items = [({"kind": "attacked" if i > 1 else label, "caption": label, "attack": label}, img)
             for i, (label, img) in enumerate(zip(labels, noise))]
    thumbs, quality, dropped = _fit(items, 100_000, set(main))
    assert sum(len(t.uri) for t in thumbs) <= 100_000
    assert quality == 50 and dropped and all(d.startswith("family") for d in dropped)
    assert [t.caption for t in thumbs][:5] == labels[:5]  # original, marked and the main families stay


# -- text viewer --------------------------------------------------------------------------

def _kgw_example(run: dict[str, Any]) -> tuple[Any, Sample, str]:
    config = run["suite"].methods[1]
    sample = Sample("prompts:1", "text", "", role="prompt")
    marked = Path(cache_paths(run["dir"], sample, config)[0]).read_text(encoding="utf-8")
    return registry.method_instance("kgw", config.params), sample, marked


@pytest.mark.slow
def test_text_viewer_green_spans_count_what_the_detector_counts(run: dict[str, Any]) -> None:
    method, _, marked = _kgw_example(run)
    [before, *after] = panels(section(run["html"], "kgw"))
    assert before["attack"] == "none" and before["text"] == marked
    detection = method.detect(marked, "k1")
    assert before["classes"].count("g") == detection.extra["green"] == int(before["green"])
    assert sum(c in ("g", "r") for c in before["classes"]) == detection.extra["tokens_scored"]
    assert float(before["p"]) == stored(run["records"], "kgw", "prompts:1", "none", 0).p_value
    assert [p["attack"] for p in after] == ["synonym", "typo"]


@pytest.mark.slow
def test_text_viewer_shows_the_attack_applied_again(run: dict[str, Any]) -> None:
    method, sample, marked = _kgw_example(run)
    attacks = {a.label: a for a in run["suite"].attacks}
    for panel in panels(section(run["html"], "kgw"))[1:]:
        attack, index = attacks[panel["attack"]], int(panel["strength-index"])
        assert index == len(attack.strengths) - 1  # the strongest
        rng = np.random.default_rng(attack_seed(SEED, sample.id, attack.label, index))
        expected = registry.get_attack(attack.label)(marked, attack.strengths[index], rng)
        assert panel["text"] == expected != marked
        detection = method.detect(expected, "k1")
        assert panel["classes"].count("g") == detection.extra["green"]
        assert float(panel["p"]) == stored(run["records"], "kgw", "prompts:1", attack.label, index).p_value
        assert detection.p_value == float(panel["p"])


def test_text_viewer_escapes_the_text() -> None:
    from wmbench.modalities.text.view import Panel, Piece, TextView

    evil = "<script>alert(4)</script>"
    view = TextView("<b>s</b>.txt", (Panel(evil, "none", None, None, (
        Piece(evil, "g", f"“{evil}”: green"), Piece(" & <i>", "", "")), 1, 1, 0.5, False, 1),), (evil,), 0.25, True)
    out = str(view.html())
    assert "<script>" not in out and "<b>s</b>" not in out and "<i>" not in out
    assert "&lt;script&gt;alert(4)&lt;/script&gt;" in out and "&amp; &lt;i&gt;" in out


# -- rebuilt elsewhere -------------------------------------------------------------------

@pytest.mark.slow
def test_report_without_the_run_cache_renders_with_notes(run: dict[str, Any], tmp_path: Path) -> None:
    copy = tmp_path / "run"
    copy.mkdir()
    shutil.copyfile(run["dir"] / "results.sqlite", copy / "results.sqlite")  # no cache/
    code, _, err = invoke("report", copy)
    assert code == 0, err
    html = (copy / "report.html").read_text(encoding="utf-8")
    for method in ("dwtDctSvd", "kgw"):
        assert "not in the run cache" in section(html, method)
    gallery = figures(section(html, "dwtDctSvd"))
    assert [f["kind"] for f in gallery] == ["original"]  # the photo is still where the run found it
    assert not panels(section(html, "kgw"))


@pytest.mark.slow
def test_report_away_from_the_samples_and_suite_shows_what_the_cache_holds(run: dict[str, Any],
                                                                          tmp_path: Path) -> None:
    copy = shutil.copytree(run["dir"], tmp_path / "moved")
    (copy / "report.html").unlink()
    with Store(copy, create=False) as store:  # as if opened on another machine: no photo, no suite file
        manifest = store.manifest()
        manifest["suite"]["path"] = str(tmp_path / "gone" / "tiny.toml")
        for sample in manifest["samples"]:
            if sample["id"] == "astronaut.png":
                sample["source"] = str(tmp_path / "gone" / "astronaut.png")
        store.set_manifest(manifest)
        store.set_meta({"suite_path": str(tmp_path / "gone" / "tiny.toml")})
    html = write_report(copy).read_text(encoding="utf-8")
    part = section(html, "dwtDctSvd")
    assert "the original is not available here" in part
    assert [f["kind"] for f in figures(part)] == ["marked", "attacked", "attacked", "attacked"]
    assert len(panels(section(html, "kgw"))) == 3


@pytest.mark.slow
def test_report_with_images_stays_self_contained(run: dict[str, Any]) -> None:
    html = run["html"]
    csp = htmllib.unescape(re.search(r'http-equiv="Content-Security-Policy" content="([^"]+)"', html).group(1))
    assert "img-src data:;" in csp and "default-src 'none'" in csp
    sources = re.findall(r'\b(?:src|href)\s*=\s*"([^"]*)"', html)
    assert sources and all(s.startswith(("#", "data:image/png;base64,", "data:image/jpeg;base64,")) for s in sources)
    assert "http://" not in html and "https://" not in html
    assert "gallery &lt;test&gt;" in html and "<test>" not in html


@pytest.mark.slow
@pytest.mark.browser
@pytest.mark.skipif(not CHROMIUM.exists(), reason=f"headless browser test needs {CHROMIUM}")
def test_gallery_and_viewer_render_in_headless_chromium(run: dict[str, Any]) -> None:
    from playwright.sync_api import sync_playwright

    url = run["report"].resolve().as_uri()
    errors: list[str] = []
    requests: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=["--headless", "--no-sandbox",
                                                                           "--disable-gpu", "--no-first-run"])
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.on("console", lambda m: m.type == "error" and errors.append(m.text))
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on("request", lambda r: r.url.startswith("data:") or requests.append(r.url))
            page.goto(url, wait_until="load")
            images = page.locator(".gallery img")
            assert images.count() == 6
            images.first.scroll_into_view_if_needed()
            assert images.first.is_visible()
            widths = images.evaluate_all("imgs => imgs.map(i => i.complete && i.naturalWidth)")
            assert widths == [THUMB_WIDTH] * 6  # every data: image decoded (the CSP allows img-src data:)
            green = page.locator(".tv-text span.g").first
            green.scroll_into_view_if_needed()
            assert green.is_visible() and ": green" in green.get_attribute("title")
        finally:
            browser.close()
    assert errors == [] and requests == [url]


# -- explain against detect ----------------------------------------------------------------

_WORDS = sorted({w for t in human_texts().values() for w in re.findall(r"[A-Za-z']+", t)})
_PIECES = st.one_of(
    st.sampled_from(_WORDS), st.sampled_from(_WORDS).map(str.upper),
    st.sampled_from([" ", "  ", "\n", ", ", ". ", "...", " — ", "(", "'", "\u200b", "\u00ad", "\u0430", "\u0435",
                     "e\u0301", "ﬁ", "Ｔ", "3.14", "don't", "🙂"]),
    st.text(max_size=4),
)
_TEXTS = st.lists(_PIECES, max_size=50).map("".join)


@settings(max_examples=80, deadline=None)
@given(text=_TEXTS, key=st.text(max_size=8), name=st.sampled_from(["unigram", "kgw", "lexical"]),
       normalize=st.booleans())
def test_explain_agrees_with_detect(text: str, key: str, name: str, normalize: bool) -> None:
    method = registry.method_instance(name, (("normalize", normalize),))
    explained = method.explain(text, key)
    assert "".join(piece for piece, _ in explained) == text
    detection = method.detect(text, key)
    assert sum(green is True for _, green in explained) == detection.extra["green"]
    assert sum(green is not None for _, green in explained) == detection.extra["tokens_scored"]
    tokens = method.explain_tokens(text, key)
    assert [(t.text, t.green if t.counted else None) for t in tokens] == explained
    assert all(t.form is not None for t in tokens if t.green is not None)


def test_explain_on_marked_text_is_mostly_green() -> None:
    kgw = registry.method_instance("kgw", (("max_new_tokens", 80),))
    marked = kgw.embed(prompts()[0], "key")
    explained = kgw.explain(marked, "key")
    scored = [g for _, g in explained if g is not None]
    assert sum(scored) / len(scored) > 0.5  # gamma 0.25 without the mark
    assert sum(scored) == kgw.detect(marked, "key").extra["green"]
    assert any(t.context for t in kgw.explain_tokens(marked, "key"))  # kgw's context: the previous token


def test_explain_with_a_transformers_tokenizer(tmp_path: Path) -> None:
    transformers = pytest.importorskip("transformers")
    pytest.importorskip("tokenizers")
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    bpe.train_from_iterator(list(human_texts().values()), trainers.BpeTrainer(
        vocab_size=400, special_tokens=["<|endoftext|>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tokenizer = transformers.PreTrainedTokenizerFast(tokenizer_object=bpe, bos_token="<|endoftext|>",
                                                     eos_token="<|endoftext|>")
    tokenizer.save_pretrained(tmp_path)
    transformers.GPT2Config(vocab_size=len(tokenizer), n_positions=64, n_embd=8, n_layer=1, n_head=1).save_pretrained(
        tmp_path)  # detection needs the tokenizer only: no weights
    for name in ("unigram", "kgw"):
        method = registry.method_instance(name, (("lm", str(tmp_path)),))
        for text in (next(iter(human_texts().values()))[:400], "naïve café — 🙂 twice twice twice", ""):
            explained = method.explain(text, "k")
            detection = method.detect(text, "k")
            assert "".join(piece for piece, _ in explained) == text
            assert sum(g is True for _, g in explained) == detection.extra["green"]
            assert sum(g is not None for _, g in explained) == detection.extra["tokens_scored"]

"""The verdict: one calibrated scale for images and text, sentences that follow from numbers."""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import pytest

from testkit import assert_one_line_error
from wmbench.report.run import StoredRun, records_only
from wmbench.report.verdict import build_verdict, method_verdicts, verdict_json, verdict_table
from wmbench.store import Record, Store

_keys = itertools.count()


def cell(method: str, modality: str, attack: str, index: int, strength: Any, sample: str, marked: bool,
         p: float, tokens: int | None = None, **metrics: Any) -> Record:
    """One cell; keyword arguments other than ``tokens`` are quality metrics (psnr=, similarity=, kept=)."""
    if modality == "image":  # the runner records the content an attack keeps on every image cell
        metrics.setdefault("kept", 1.0)
    return Record(cell_key=f"c{next(_keys)}", sample=sample, modality=modality, method=method, wm_key="k",
                  attack=attack, strength=strength, strength_index=index, marked=marked, score=0.0, p_value=p,
                  detected=p < 0.01, seconds=0.01, tokens=tokens, metrics=metrics)


def run(records: list[Record], label: str = "a") -> StoredRun:
    return records_only(records, label=label)


def image_run() -> list[Record]:
    """A mark that survives jpeg everywhere and is erased by blur only at heavy damage."""
    out = []
    for s in range(10):
        sample = f"img{s}"
        out += [cell("robust", "image", "none", 0, None, sample, True, 1e-9, psnr=42.0, ssim=0.99),
                cell("robust", "image", "none", 0, None, sample, False, 0.4 + s / 50, psnr=None, ssim=None)]
        for i, q in enumerate((90, 50)):
            out.append(cell("robust", "image", "jpeg", i, q, sample, True, 1e-7, psnr=38.0 - 4 * i, ssim=0.97))
            out.append(cell("robust", "image", "jpeg", i, q, sample, False, 0.5, psnr=40.0, ssim=0.98))
        for i, (sigma, p, psnr) in enumerate(((1, 1e-5, 34.0), (4, 0.3, 24.0))):
            out.append(cell("robust", "image", "blur", i, sigma, sample, True, p, psnr=psnr, ssim=0.9 - 0.2 * i))
            out.append(cell("robust", "image", "blur", i, sigma, sample, False, 0.6, psnr=psnr, ssim=0.9))
    return out


def text_run() -> list[Record]:
    """A mark a light paraphrase erases while the meaning stays."""
    out = []
    for s in range(10):
        sample = f"p{s}"
        out += [cell("skew", "text", "none", 0, None, sample, True, 1e-12, similarity=1.0, tokens=200),
                cell("skew", "text", "none", 0, None, sample, False, 0.3 + s / 40, similarity=1.0, tokens=200)]
        for i, (frac, p, sim) in enumerate(((0.1, 1e-4, 0.97), (0.3, 0.2, 0.9), (0.6, 0.5, 0.75))):
            out.append(cell("skew", "text", "synonym", i, frac, sample, True, p, similarity=sim, tokens=200))
            out.append(cell("skew", "text", "synonym", i, frac, sample, False, 0.5, similarity=sim, tokens=200))
    return out


def test_quality_cost_to_erase_is_the_least_loss_among_erasing_strengths() -> None:
    [image] = method_verdicts(run(image_run()))
    jpeg, blur = image.families
    assert not jpeg.erased and jpeg.lowest_tpr.value == 1.0
    assert blur.erased and blur.erased_at == 4 and blur.damage.drop == pytest.approx(18.0)
    assert not blur.acceptable  # PSNR 24 dB < 30 dB
    assert image.most_robust.attack == "jpeg" and image.cheapest.attack == "blur"
    [text] = method_verdicts(run(text_run()))
    [synonym] = text.families
    assert synonym.erased_at == 0.3 and synonym.damage.drop == pytest.approx(0.1)  # the weaker of two erasing
    assert synonym.acceptable  # similarity 0.9 >= 0.8


def test_readings_follow_from_the_numbers() -> None:
    verdict = build_verdict([run(image_run() + text_run())])
    [images, text] = verdict.modalities
    assert "erased at acceptable quality (PSNR >= 30 dB and Content kept >= 0.8) by 0 of 2 attack families (0 %)" in images.reading
    assert "by 1 of 1 attack families (100 %): synonym" in text.reading
    assert verdict.reading.startswith("At 1 % FPR, the best image mark (robust) is more robust than the best text "
                                      "mark (skew): 0 % vs 100 %")
    assert "the cheapest erasure is synonym at 0.3 (Similarity 0.90, a drop of 0.10)" in text.methods[0].reading
    assert "the cheapest erasure is blur at 4 (PSNR 24.0 dB, a drop of 18.0 dB)" in images.methods[0].reading
    # flip the numbers, and the sentence flips
    weak_images = [r if r.attack != "jpeg" or not r.marked else
                   Record(**{**r.__dict__, "p_value": 0.5, "detected": False}) for r in image_run()]
    strong_text = [Record(**{**r.__dict__, "p_value": 1e-9, "detected": True}) if r.marked else r
                   for r in text_run()]
    flipped = build_verdict([run(weak_images + strong_text)])
    assert "is less robust than the best text mark (skew): 50 % vs 0 %" in flipped.reading


def test_one_modality_only_says_there_is_no_comparison() -> None:
    assert build_verdict([run(image_run())]).reading == (
        "Attacks on images only were measured: no comparison between modalities.")


def test_negatives_firing_too_often_are_flagged() -> None:
    bad = [r if r.marked else Record(**{**r.__dict__, "p_value": 0.001, "detected": True}) for r in text_run()]
    [method] = method_verdicts(run(bad))
    assert method.clean.disagree
    assert "not trustworthy" in method.reading
    assert "! = negatives fire" in verdict_table(build_verdict([run(bad)]))


def _store(folder: Path, records: list[Record]) -> Path:
    with Store(folder) as store:
        store.add(records)
    return folder


def test_cli_verdict_text_and_json_over_two_runs(tmp_path: Path, cli) -> None:
    a = _store(tmp_path / "run-a", image_run() + text_run())
    b = _store(tmp_path / "run-b", text_run())
    code, out, err = cli("verdict", a, b)
    assert code == 0, err
    assert "== image ==" in out and "== text ==" in out
    assert "skew [run-a]" in out and "skew [run-b]" in out  # same name in two runs: told apart
    code, out, _ = cli("verdict", a, "--format", "json")
    data = json.loads(out)
    text = next(m for m in data["modalities"] if m["modality"] == "text")["methods"][0]
    assert text["tpr_at_1pct_fpr"]["k"] == 10 and text["cheapest_erasure"] == "synonym"
    assert data["conventions"]["acceptable"]["text"]["metric"] == "similarity"
    assert data["conventions"]["acceptable"]["text"]["acceptable"] == 0.8
    assert data["conventions"]["acceptable"]["image"]["acceptable"] == 30.0
    worst = {(w["run"], w["method"]): w for w in data["worst_case"]}  # the worst case at each declared budget
    assert {m for _, m in worst} == {"robust", "skew"} and all(w["resolvable"] is False for w in worst.values())
    code, _, err = cli("verdict", tmp_path / "nothing-here")
    assert_one_line_error(code, err, "nothing-here")


def test_verdict_json_is_serialisable() -> None:
    json.dumps(verdict_json(build_verdict([run(image_run() + text_run())])), default=str)


def test_two_runs_side_by_side_flag_differences_beyond_their_intervals(tmp_path: Path, cli) -> None:
    from wmbench.report.compare import compare_runs

    before = image_run() + text_run()
    after = [Record(**{**r.__dict__, "p_value": 0.6, "detected": False})
             if r.marked and r.attack == "jpeg" and r.strength == 50 else r for r in before]
    comparison = compare_runs(run(after, "after"), run(before, "before"), 0.01)
    assert comparison.other_label == "before"
    [changed] = comparison.significant
    assert (changed.method, changed.attack, changed.strength) == ("robust", "jpeg", 50)
    assert changed.difference == -1.0
    assert comparison.only_here == comparison.only_there == 0
    a, b = _store(tmp_path / "after", after), _store(tmp_path / "before", before)
    code, out, err = cli("report", a, "--compare", b, "-o", tmp_path / "r.html")
    assert code == 0, err
    html = (tmp_path / "r.html").read_text(encoding="utf-8")
    assert 'id="compare"' in html and "Compared with before" in html and "-1.00 !" in html
    code, _, err = cli("report", a, "--compare", tmp_path / "missing")
    assert_one_line_error(code, err, "missing")


def test_attacks_that_could_not_run_are_named_in_the_readings() -> None:
    skipped = [cell("skew", "text", "llm_paraphrase", 0, 0.7, "p0", marked, float("nan"))
               for marked in (True, False)]
    skipped = [Record(**{**r.__dict__, "p_value": None, "detected": None, "skipped": "no LLM endpoint"})
               for r in skipped]
    verdict = build_verdict([run(image_run() + text_run() + skipped)])
    text = next(mv for mv in verdict.modalities if mv.modality == "text")
    assert "Not run here: llm_paraphrase (no LLM endpoint)." in text.reading
    assert verdict.reading.endswith("Not run for text marks: llm_paraphrase.")
    assert [f.attack for f in text.methods[0].families] == ["synonym"]  # not counted as a family


def test_json_has_operating_points_at_configurable_target_fprs(tmp_path: Path, cli) -> None:
    folder = _store(tmp_path / "run", image_run() + text_run())
    code, out, err = cli("verdict", folder, "--format", "json", "--target-fpr", "0.05", "--target-fpr", "0.2")
    assert code == 0, err
    method = json.loads(out)["modalities"][0]["methods"][0]
    points = method["operating_points"]
    assert [p["target_fpr"] for p in points] == [0.01, 0.05, 0.2]
    assert [p["resolvable"] for p in points] == [False, False, True]  # 10 negatives resolve 0.2 only
    code, _, err = cli("verdict", folder, "--target-fpr", "2")
    assert_one_line_error(code, err, "--target-fpr")


def _clean_only(negatives: int) -> list[Record]:
    out = [cell("m", "image", "none", 0, None, f"img{s}", True, 1e-9, psnr=40.0) for s in range(5)]
    out += [cell("m", "image", "none", 0, None, f"neg{s}", False, (s + 0.5) / negatives, psnr=None)
            for s in range(negatives)]
    return out


@pytest.mark.parametrize("negatives, resolvable", [(8, False), (99, False), (100, True), (250, True)])
def test_the_verdict_says_when_1_percent_fpr_is_not_resolvable(negatives: int, resolvable: bool) -> None:
    """With fewer than 100 clean negatives the 1 % threshold is theory's alone: the table says so."""
    verdict = build_verdict([run(_clean_only(negatives))])
    (method,) = verdict.modalities[0].methods
    assert method.clean.resolvable is resolvable
    row = next(line for line in verdict_table(verdict).splitlines() if line.startswith("m "))
    assert (f"/{negatives} ?" in row) is not resolvable, row
    assert verdict_json(verdict)["modalities"][0]["methods"][0]["threshold_resolvable"] is resolvable
    from wmbench.report.html import render_report

    card = render_report(run(_clean_only(negatives))).split('id="verdict"', 1)[1].split("</section>", 1)[0]
    assert ("<small>not resolvable</small>" in card) is not resolvable


def test_an_erasure_of_unmeasured_quality_is_never_acceptable() -> None:
    """A generation-time attack leaves similarity unmeasured: erased, but not 'at acceptable quality'."""
    records = []
    for s in range(10):
        sample = f"p{s}"
        records += [cell("gen", "text", "none", 0, None, sample, True, 1e-12, similarity=1.0),
                    cell("gen", "text", "none", 0, None, sample, False, 0.5, similarity=1.0),
                    cell("gen", "text", "emoji", 0, 1.0, sample, True, 0.4, similarity=None),
                    cell("gen", "text", "emoji", 0, 1.0, sample, False, 0.6, similarity=None)]
    verdict = build_verdict([run(records)])
    (method,) = verdict.modalities[0].methods
    assert [f.attack for f in method.erased] == ["emoji"] and method.erased_acceptably == []
    assert "emoji: erased, quality loss not measured" in verdict_table(verdict)
    assert "quality loss that was not measured (emoji)" in method.reading


def test_a_flip_is_an_acceptable_quality_attack_and_a_deep_crop_is_not() -> None:
    """Against the aligned original a mirror flip costs only what the mark cost (PSNR of the
    clean row), so an erasure by flip is at acceptable quality; a crop that keeps a quarter
    of the content is not, however well its pixels match."""
    records = []
    for s in range(10):
        sample = f"img{s}"
        records += [cell("m", "image", "none", 0, None, sample, True, 1e-9, psnr=42.0),
                    cell("m", "image", "none", 0, None, sample, False, 0.5, psnr=None),
                    cell("m", "image", "flip", 0, "horizontal", sample, True, 0.3, psnr=42.0, kept=1.0),
                    cell("m", "image", "flip", 0, "horizontal", sample, False, 0.5, psnr=float("inf"), kept=1.0),
                    cell("m", "image", "crop", 0, 0.5, sample, True, 0.3, psnr=41.0, kept=0.25),
                    cell("m", "image", "crop", 0, 0.5, sample, False, 0.5, psnr=float("inf"), kept=0.25)]
    (method,) = build_verdict([run(records)]).modalities[0].methods
    assert {f.attack for f in method.erased} == {"flip", "crop"}
    assert [f.attack for f in method.erased_acceptably] == ["flip"]

"""Batch mode of ``guideline-kg recommend``: folders, NDJSON, Bulk Data exports, jobs, resuming after a kill."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from functools import lru_cache
from pathlib import Path

import pytest

from benchmarks.cohort import generate, write_bulk, write_files, write_ndjson
from conftest import ROOT

N = 6


def recommend(*args: str | Path, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "reasoner", "recommend", *map(str, args)], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout)


@lru_cache(maxsize=None)
def cohort(n: int = N, seed: int = 11) -> list[dict]:
    return list(generate(n, seed))


def reports(folder: Path) -> dict[str, str]:
    """The reports of a folder but the .nq graph a JSON batch keeps beside each (it holds the reasoning's time)."""
    return {p.name: p.read_text(encoding="utf-8") for p in sorted(folder.iterdir()) if p.suffix != ".nq"}


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("batch-inputs")
    write_files(cohort(), root / "bundles")
    with (root / "cohort.ndjson").open("w", encoding="utf-8") as out:
        write_ndjson(cohort(), out)
    write_bulk(cohort(), root / "bulk", seed=11)
    return root


@pytest.fixture(scope="module")
def folder_run(inputs: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[subprocess.CompletedProcess[str], Path]:
    out = tmp_path_factory.mktemp("out-folder")
    return recommend(inputs / "bundles", "--out", out), out


def test_a_folder_of_bundles_gives_one_json_report_per_patient(folder_run) -> None:
    done, out = folder_run
    assert done.returncode == 0, done.stderr
    names = sorted(p.name for p in out.iterdir())  # each JSON report with its report graph (N-Quads) beside it
    assert names == sorted(f"p{i:06d}{suffix}" for i in range(1, N + 1) for suffix in (".json", ".nq"))
    for text in reports(out).values():
        assert json.loads(text)["report_version"] == "1"


def test_a_batch_report_is_the_single_patient_report(folder_run, inputs: Path) -> None:
    _, out = folder_run
    single = recommend(inputs / "bundles" / "p000002.json")
    assert single.stdout == (out / "p000002.json").read_text(encoding="utf-8")


def test_the_summary_line_counts_patients_and_no_progress_bar_when_piped(folder_run) -> None:
    done, _ = folder_run
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and "\r" not in done.stderr
    assert f"{N} patients, {N} conforming, 0 not conforming, 0 refused" in lines[0]


def test_a_bulk_export_is_grouped_by_patient_and_gives_the_folder_reports(folder_run, inputs: Path,
                                                                           tmp_path: Path) -> None:
    _, folder_out = folder_run
    done = recommend(inputs / "bulk", "--out", tmp_path)
    assert done.returncode == 0, done.stderr
    assert reports(tmp_path) == reports(folder_out)


def test_an_ndjson_file_gives_one_report_per_line_on_stdout_in_input_order(folder_run, inputs: Path) -> None:
    _, folder_out = folder_run
    done = recommend(inputs / "cohort.ndjson", "--ndjson")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == N
    expected = [json.loads(text) for text in reports(folder_out).values()]
    assert [json.loads(line) for line in lines] == expected


def test_two_jobs_write_byte_identical_reports_to_one_job(inputs: Path, tmp_path: Path) -> None:
    one = recommend(inputs / "cohort.ndjson", "--out", tmp_path / "one", "--jobs", "1", "--format", "turtle")
    two = recommend(inputs / "cohort.ndjson", "--out", tmp_path / "two", "--jobs", "2", "--format", "turtle")
    assert one.returncode == two.returncode == 0, one.stderr + two.stderr

    def without_time(text: str) -> str:  # the RDF report records when reasoning ended
        return "\n".join(line for line in text.splitlines() if "endedAtTime" not in line)

    first, second = reports(tmp_path / "one"), reports(tmp_path / "two")
    assert sorted(first) == sorted(f"line-{i:07d}.ttl" for i in range(1, N + 1))
    assert {k: without_time(v) for k, v in first.items()} == {k: without_time(v) for k, v in second.items()}
    ndjson_one = recommend(inputs / "cohort.ndjson", "--ndjson", "--jobs", "1")
    ndjson_two = recommend(inputs / "cohort.ndjson", "--ndjson", "--jobs", "2")
    assert ndjson_one.stdout == ndjson_two.stdout


def test_a_refused_patient_is_named_on_stderr_and_the_batch_goes_on(tmp_path: Path) -> None:
    source = tmp_path / "mixed.ndjson"
    good = json.dumps(cohort()[0])
    source.write_text(good + "\n" + '{"resourceType": "Bundle", "type": "collection"}\n' + good + "\n",
                      encoding="utf-8")
    done = recommend(source, "--out", tmp_path / "out")
    assert done.returncode == 2
    assert "line-0000002: Bundle: entry is missing or not a list" in done.stderr
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["line-0000001.json", "line-0000001.nq",
                                                                    "line-0000003.json", "line-0000003.nq"]
    assert "2 conforming, 0 not conforming, 1 refused" in done.stderr


def test_a_patient_that_does_not_conform_makes_the_batch_exit_1(tmp_path: Path) -> None:
    bundle = next(b for b in generate(2000, seed=7) if "out-of-range" in json.dumps(b["meta"]))
    source = tmp_path / "one.ndjson"
    source.write_text(json.dumps(bundle) + "\n", encoding="utf-8")
    done = recommend(source, "--ndjson")
    assert done.returncode == 1, done.stderr
    assert json.loads(done.stdout)["conforms"] is False


def test_batch_mode_needs_an_output(inputs: Path) -> None:
    done = recommend(inputs / "bundles")
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "--out DIR" in done.stderr


def test_a_batch_killed_with_sigkill_and_started_again_ends_with_every_report_once(tmp_path: Path) -> None:
    n = 40
    source = tmp_path / "cohort.ndjson"
    with source.open("w", encoding="utf-8") as out:
        write_ndjson(generate(n, seed=5), out)
    out = tmp_path / "out"
    process = subprocess.Popen([sys.executable, "-m", "reasoner", "recommend", str(source), "--out", str(out),
                                "--jobs", "2"], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and process.poll() is None:
        if out.is_dir() and sum(1 for p in out.glob("line-*.json")) >= 3:
            break
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)  # the batch and its workers, mid-run
    process.wait()
    written_before = {p.name for p in out.glob("line-*.json")}
    assert 0 < len(written_before) < n

    again = recommend(source, "--out", out, "--jobs", "2")
    assert again.returncode == 0, again.stderr
    assert f"{len(written_before)} already done" in again.stderr
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted(f"line-{i:07d}{suffix}" for i in range(1, n + 1)
                           for suffix in (".json", ".nq"))  # no temporary file left either
    for path in out.glob("*.json"):
        assert json.loads(path.read_text(encoding="utf-8"))["report_version"] == "1"


def test_a_batch_in_this_process_freezes_what_it_loaded_only_while_it_runs() -> None:
    """Workers keep the loaded engine out of the cyclic GC's way for good; in-process runs hand it back."""
    import gc

    from reasoner.batch import Unit, _results

    text = json.dumps(next(iter(generate(1, 3))))
    frozen_during = []

    def units():
        frozen_during.append(gc.get_freeze_count())
        yield Unit(0, "one", text=text)

    before = gc.get_freeze_count()
    outcomes = list(_results(units(), 1, ("fast", "json", None)))
    assert outcomes and outcomes[0].line
    assert frozen_during[0] > before  # the guideline and engine objects, frozen while patients run
    assert gc.get_freeze_count() == before


@pytest.mark.parametrize("chunk", [1, 3, 16])
def test_workers_take_patients_in_chunks_and_outcomes_keep_input_order(monkeypatch: pytest.MonkeyPatch,
                                                                        chunk: int) -> None:
    """Chunks of any size (a last one short) give the outcomes one process gives, in order, in a bounded window."""
    from reasoner import batch

    texts = [json.dumps(b) for b in cohort(7, 5)]
    pulled: list[int] = []

    def units():
        for i, text in enumerate(texts):
            pulled.append(i)
            yield batch.Unit(i, f"line-{i}", text=text)

    expected = [(o.index, o.status, o.line) for o in batch._results(units(), 1, ("fast", "json", None))]
    pulled.clear()
    monkeypatch.setattr(batch, "CHUNK", chunk)
    monkeypatch.setattr(batch, "WINDOW_PER_JOB", 2)
    outcomes = batch._results(units(), 2, ("fast", "json", None))
    first = next(outcomes)
    in_flight_at_first = len(pulled)
    got = [first, *outcomes]
    assert [(o.index, o.status, o.line) for o in got] == expected
    assert [i for i, *_ in expected] == list(range(7))
    # the window (jobs * WINDOW_PER_JOB = 4 patients, rounded up to whole chunks) bounds what was read ahead
    assert in_flight_at_first <= max(4, chunk) + chunk

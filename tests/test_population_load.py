"""``load``'s bulk path: a report whose graph is new goes in with one ``Store.bulk_load`` and no check per
triple; it must give the store the careful path gives (each graph whole, the default graph the union of
the named graphs), replace a patient loaded before, keep blank nodes of different reports apart, stop at
a bad report with whole reports only, and be repaired by loading again after an interruption."""

from __future__ import annotations

import shutil
from pathlib import Path

import pyoxigraph as ox
import pytest

from reasoner import population
from reasoner.cli import main
from reasoner.errors import InputError
from conftest import guideline
from test_population import PATIENTS, batches

DEFAULT = ox.DefaultGraph()


def dataset(store: ox.Store) -> tuple[set[str], set[str]]:
    """The store's named-graph quads and default-graph triples, as N-Quads text; its default graph must be the
    union of its named graphs."""
    quads = list(store)
    named = {str(q) for q in quads if q.graph_name != DEFAULT}
    default = {str(ox.Triple(q.subject, q.predicate, q.object)) for q in quads if q.graph_name == DEFAULT}
    assert default == {str(ox.Triple(q.subject, q.predicate, q.object)) for q in quads if q.graph_name != DEFAULT}
    return named, default


def loaded(folder: Path, *sources: Path) -> ox.Store:
    store = population.open_store(folder)
    population.load_reports(store, list(sources))
    return store


def carefully(*sources: Path) -> ox.Store:
    """The reference: each report read by the careful reader and written with transactional inserts."""
    store = ox.Store()
    for report in population.iter_reports(list(sources)):
        population.replace_graph(store, report.name, report.quads)
    return store


def copy_reports(target: Path, names: tuple[str, ...], fmt: str = "nquads", suffix: str = ".nq") -> Path:
    target.mkdir(parents=True, exist_ok=True)
    for name in names:
        shutil.copy(batches() / fmt / f"{name}{suffix}", target / f"{name}{suffix}")
    return target


def test_the_batch_reports_take_the_bulk_path() -> None:
    for path in sorted((batches() / "nquads").glob("*.nq")):
        fast = population._canonical_nquads(path)
        assert fast is not None, path.name
        assert fast.name == population.read_report_graph(path).name
        assert fast.quads == len(population.read_report_graph(path).quads)


def test_other_report_files_take_the_careful_reader(tmp_path: Path) -> None:
    nq = (batches() / "nquads" / "negative-mri.nq").read_text(encoding="utf-8")
    for name, text in {"comment.nq": "# a comment\n" + nq, "crlf.nq": nq.replace("\n", "\r\n"),
                       "blank.nq": nq + nq.splitlines()[0].split(" ", 1)[0] + " <urn:x:p> _:b0 "
                       + nq.splitlines()[0].rsplit(" ", 2)[1] + " .\n"}.items():
        (tmp_path / name).write_text(text, encoding="utf-8")
        assert population._canonical_nquads(tmp_path / name) is None
        assert population.bulk_report(tmp_path / name).name == population.read_report_graph(tmp_path / name).name
    assert population._canonical_nquads(batches() / "turtle" / "negative-mri.ttl") is None


@pytest.mark.parametrize("fmt, suffix", [("json", ".nq"), ("turtle", ".ttl"), ("jsonld", ".jsonld")])
def test_a_bulk_load_gives_the_store_the_careful_path_gives(tmp_path: Path, fmt: str, suffix: str) -> None:
    store = loaded(tmp_path / "store", batches() / fmt)
    named, default = dataset(store)
    reference, _ = dataset(carefully(batches() / fmt))
    assert named == reference and default
    graphs = {g.value for g in store.named_graphs()}
    assert len(graphs) == len(PATIENTS) and all(g.endswith("/report") for g in graphs)


def test_a_patient_loaded_in_two_runs_is_replaced_and_the_others_kept(tmp_path: Path) -> None:
    first = copy_reports(tmp_path / "first", PATIENTS[:3])
    second = copy_reports(tmp_path / "second", PATIENTS[2:])
    changed = second / f"{PATIENTS[2]}.nq"
    lines = changed.read_text(encoding="utf-8").splitlines(keepends=True)
    kept = [line for line in lines if "/red-flag/" not in line and "PatientRedFlag" not in line] or lines[:-1]
    assert len(kept) < len(lines)
    changed.write_text("".join(kept), encoding="utf-8")

    store = population.open_store(tmp_path / "store")
    assert population.load_reports(store, [first]).replaced == 0
    done = population.load_reports(store, [second])
    assert (done.reports, done.replaced) == (len(PATIENTS) - 2, 1)
    named, default = dataset(store)
    reference, reference_default = dataset(carefully(copy_reports(tmp_path / "all", PATIENTS[:2]), second))
    assert named == reference and default == reference_default
    graph = population.read_report_graph(changed).name
    assert len([q for q in named if q.endswith(f"<{graph}>")]) == len(kept)


def test_loading_the_same_reports_again_changes_nothing(tmp_path: Path) -> None:
    store = loaded(tmp_path / "store", batches() / "nquads")
    before = dataset(store)
    again = population.load_reports(store, [batches() / "nquads"])
    assert again.replaced == len(PATIENTS)
    assert dataset(store) == before


def blank_node_report(patient: str, value: str) -> str:
    graph = f"<{patient}/report>"
    return (f"<{patient}> <http://www.w3.org/1999/02/22-rdf-syntax-ns#type> "
            f"<https://w3id.org/guideline-kg/vocab#Patient> {graph} .\n"
            f"<{patient}> <urn:x:has> _:b0 {graph} .\n"
            f"_:b0 <urn:x:value> \"{value}\" {graph} .\n")


def test_blank_nodes_of_two_reports_stay_two_nodes(tmp_path: Path) -> None:
    folder = tmp_path / "reports"
    folder.mkdir()
    (folder / "a.nq").write_text(blank_node_report("urn:x:patient:a", "a"), encoding="utf-8")
    (folder / "b.nq").write_text(blank_node_report("urn:x:patient:b", "b"), encoding="utf-8")
    (folder / "c.ttl").write_text("<urn:x:patient:c> a <https://w3id.org/guideline-kg/vocab#Patient> ; "
                                  "<urn:x:has> _:b0 . _:b0 <urn:x:value> \"c\" .\n", encoding="utf-8")
    store = loaded(tmp_path / "store", folder)
    dataset(store)
    for graph in (None, DEFAULT):  # each report's own node, in its graph and in the union
        values = {}
        for quad in store.quads_for_pattern(None, ox.NamedNode("urn:x:value"), None, graph):
            if graph is None and quad.graph_name == DEFAULT:
                continue
            values[quad.subject] = quad.object.value
        assert sorted(values.values()) == ["a", "b", "c"]
        assert all(isinstance(node, ox.BlankNode) for node in values)
    for quad in store.quads_for_pattern(None, ox.NamedNode("urn:x:has"), None, None):
        (own,) = [q.object.value for q in store.quads_for_pattern(quad.object, ox.NamedNode("urn:x:value"), None,
                                                                   quad.graph_name)]
        assert quad.subject.value.endswith(own)  # patient a's node holds "a", in either graph


@pytest.mark.parametrize("bad_line", ["<not an iri> <urn:x:p> <urn:x:o> .\n", '<urn:x:s> <urn:x:p> "open {g} .\n'])
def test_a_bad_report_stops_the_load_with_whole_reports_only(tmp_path: Path, bad_line: str) -> None:
    folder = copy_reports(tmp_path / "reports", PATIENTS)
    bad = sorted(folder.iterdir())[2]  # reports are loaded in name order
    graph = population.read_report_graph(bad).name
    bad.write_text(bad.read_text(encoding="utf-8") + bad_line.format(g=f"<{graph}>"), encoding="utf-8")
    store = population.open_store(tmp_path / "store")
    with pytest.raises(InputError, match=bad.name):
        population.load_reports(store, [folder])
    named, _ = dataset(store)
    before = [path for path in sorted(folder.iterdir()) if path.name < bad.name]
    assert before  # the reports before the bad one are in the store, each whole; nothing of the others
    assert named == dataset(carefully(*before))[0]


def test_a_second_report_of_a_patient_is_refused(tmp_path: Path) -> None:
    folder = copy_reports(tmp_path / "reports", ("negative-mri",))
    shutil.copy(batches() / "turtle" / "negative-mri.ttl", folder / "negative-mri-again.ttl")
    with pytest.raises(InputError, match="second report"):
        population.load_reports(population.open_store(tmp_path / "store"), [folder])


def test_an_interrupted_load_is_repaired_by_loading_again(tmp_path: Path) -> None:
    """What a crash in ``Store.bulk_load`` can leave: a report's graph in part, a report's default-graph
    triples without its graph, a report with its graph but not all of its default-graph triples."""
    folder = copy_reports(tmp_path / "reports", PATIENTS)
    texts = [population.bulk_report(path) for path in sorted(folder.iterdir())]
    store = population.open_store(tmp_path / "store")
    for report, keep in zip(texts[:3], ("named half", "default only", "named and half the default")):
        lines = report.text.decode("utf-8").splitlines(keepends=True)
        named, default = lines[:report.quads], lines[report.quads:]
        part = {"named half": named[: len(named) // 2],
                "default only": default,
                "named and half the default": named + default[: len(default) // 2]}[keep]
        store.bulk_load("".join(part).encode("utf-8"), ox.RdfFormat.N_QUADS)
    population.load_reports(store, [folder])
    assert dataset(store) == dataset(carefully(folder))


def test_the_next_load_removes_what_a_killed_bulk_load_left(tmp_path: Path) -> None:
    store_dir = tmp_path / "store"
    population.load(store_dir, [copy_reports(tmp_path / "first", PATIENTS[:2])], guideline(), show_progress=False)
    leftover = store_dir / "bulk-123456789.sst"  # what Oxigraph writes before RocksDB takes it
    leftover.write_bytes(b"not yet ingested")
    population.load(store_dir, [copy_reports(tmp_path / "second", PATIENTS[2:])], guideline(), show_progress=False)
    assert not leftover.exists()
    store = population.open_store(store_dir, read_only=True)
    assert len([g for g in store.named_graphs() if g.value.endswith("/report")]) == len(PATIENTS)
    dataset(store)


def test_load_prints_its_time_and_rates(capsys, tmp_path: Path) -> None:
    assert main(["load", str(batches() / "nquads"), "--store", str(tmp_path / "store")]) == 0
    err = capsys.readouterr().err
    assert f"{len(PATIENTS)} reports" in err and "reports/s" in err and "quads/s" in err


def test_the_stream_hands_out_reports_in_pieces_of_the_size_asked() -> None:
    reports = iter([population.BulkReport("urn:x:a", b"0123456789", 1, Path("a")),
                    population.BulkReport("urn:x:b", b"abc", 1, Path("b"))])
    stream = population._Stream(reports)
    pieces = [stream.read(4) for _ in range(6)]
    assert pieces == [b"0123", b"4567", b"89", b"abc", b"", b""] and stream.quads == 2

"""Fuzzing the inputs: mutated bundled files get exit 0 or a one-line error (exit 2), never a raise or a hang.

The Hypothesis test draws its cases derandomised (the same ones every run); ``scripts/fuzz.py`` draws many
more at random and records its figures. Each class of failure the fuzzer found has a regression case
below, written out so that it fails again if the fix goes.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings

from .. import fuzz

_SETTINGS = settings(
    max_examples=120,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture, HealthCheck.data_too_large],
)


@_SETTINGS
@given(case=fuzz.mutated())
def test_mutated_bundled_files_fail_cleanly(case: tuple[Path, str], tmp_path_factory: pytest.TempPathFactory) -> None:
    src, text = case
    tmp = tmp_path_factory.mktemp("fuzz")
    bad = fuzz.failures(fuzz.stage(src, text, tmp), limit_s=30, cwd=tmp)
    assert not bad, f"{src.name}: {bad[0].command} {bad[0].error}\n{bad[0].trace}\n--- case ---\n{text[:2000]}"


@settings(_SETTINGS, max_examples=60)
@given(options=fuzz.run_options())
def test_hostile_run_options_and_sink_uris_fail_cleanly(
    options: list[str], tmp_path_factory: pytest.TempPathFactory
) -> None:
    bad = fuzz.run_failures(options, tmp_path_factory.mktemp("opts"), limit_s=30)
    assert not bad, f"{options}: {bad[0].error}\n{bad[0].trace}"


def test_files_drawn_from_the_declared_specs_fail_cleanly_and_some_run(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """Workflows and scenarios drawn from the declared types (tests/fuzz.py spec_file), not from the bundled
    files: each is accepted and runs, or is refused with one line per problem. Some must get as far as a run
    (about 8 % do), or the strategy has stopped fuzzing the engine."""
    ran: list[bool] = []

    @settings(_SETTINGS, max_examples=100)
    @given(case=fuzz.spec_file())
    def one(case: tuple[Path, str]) -> None:
        src, text = case
        tmp = tmp_path_factory.mktemp("spec")
        outs = fuzz.run_case(fuzz.stage(src, text, tmp), limit_s=30, cwd=tmp)
        bad = [o for o in outs if o.error]
        assert not bad, f"{bad[0].command} {bad[0].error}\n{bad[0].trace}\n--- case ---\n{text[:2000]}"
        ran.append(len(outs) > 1)

    one()
    assert sum(ran) >= 3, f"{sum(ran)} of {len(ran)} drawn files reached a run"


SCENARIO = "workflows/scenarios/payment-slowdown.yaml"
WORKFLOW = "workflows/ecommerce.yaml"


def _replace(src: str, old: str, new: str) -> tuple[Path, str]:
    path = fuzz.ROOT / src
    text = path.read_text()
    assert old in text, old
    return path, text.replace(old, new, 1)


REGRESSIONS = {
    # (file, text change) -> what the one line must say
    "an integer past any float": (_replace(SCENARIO, "factor: 5", "factor: " + "9" * 400), "finite number"),
    "a list for a run option": (_replace(SCENARIO, "arrival_rate: 5", "arrival_rate: [5]"), "a single value"),
    "a mapping for the truth": (_replace(SCENARIO, "truth: file:out/", "truth: {a: 1}\nx_: file:out/"), "truth"),
    "a list for sessions": (_replace(SCENARIO, "duration: 45m", "sessions: [[[1]]]"), "a single value"),
    "a null name": (_replace(SCENARIO, "name: payment-slowdown", "name: null"), "name"),
    "a null key": (_replace(SCENARIO, "name: payment-slowdown", "name: payment-slowdown\n~: 1"), "unknown key None"),
    "a list as a key": (_replace(WORKFLOW, "name: ecommerce", "? [a, b]\n: 1\nname: ecommerce"), "key"),
    "a mixture's components not a list": (
        _replace(WORKFLOW, "name: ecommerce", "name: ecommerce\nthink_time: {dist: mixture, components: -2563}"),
        "components",
    ),
    "a name of megabytes": (_replace(WORKFLOW, "name: ecommerce", "name: " + "x" * 5_000_000), "at most 2048"),
    "a route of megabytes": (
        _replace(WORKFLOW, "avg_response_times:\n", "avg_response_times:\n  ? /" + "y" * 3_000_000 + "\n  : 5\n"),
        "at most 2,048",
    ),
    "tens of thousands of faults": (
        _replace(
            SCENARIO, "faults:\n", "faults:\n" + "  - {kind: error, target: {service: payment}, rate: 0.1}\n" * 20_000
        ),
        "faults: expected at most 63 faults, got 20,001",
    ),
    "a recursive alias": ((fuzz.ROOT / WORKFLOW, "name: &a [*a]\n"), "name: expected a non-empty string"),
    "a huge mixture weight": (
        _replace(
            WORKFLOW,
            "name: ecommerce",
            "name: ecommerce\nthink_time: {dist: mixture, components: [{dist: constant, value: 1, weight: 1e308},"
            " {dist: constant, value: 2, weight: 1e308}]}",
        ),
        "weight",
    ),
    "a retry status past any code": (
        _replace("workflows/scenarios/flaky-dependency.yaml", "jitter: 0.3}", "jitter: 0.3, on: [24531472801403600]}"),
        "retry -> on -> 0",
    ),
    "a URI as the report": (_replace(SCENARIO, "faults:\n", "report: kafka://\nfaults:\n"), "not a URI"),
    "a NUL in the report's path": (_replace(SCENARIO, "faults:\n", 'report: "a\\0b.html"\nfaults:\n'), "NUL"),
    "an empty pair for a random fault's rate": (
        _replace(
            SCENARIO,
            "faults:\n",
            "random_faults:\n  - {kind: errors, rate_per_hour: 2, targets: [{service: payment}], rate: []}\nfaults:\n",
        ),
        "rate: expected a value or a [low, high] pair, got []",
    ),
}


@pytest.mark.parametrize("name", sorted(REGRESSIONS))
def test_each_class_the_fuzzer_found_gets_a_one_line_error(name: str, tmp_path: Path) -> None:
    (src, text), words = REGRESSIONS[name]
    out = fuzz.run_case(fuzz.stage(src, text, tmp_path), limit_s=30, cwd=tmp_path)
    assert not [o for o in out if o.error], [(o.command, o.error, o.trace) for o in out]
    assert out[0].code == 2, out[0]
    lines = out[0].stderr.strip().splitlines()
    assert lines and all("case-" in ln for ln in lines), lines  # each names the file
    assert words in out[0].stderr, out[0].stderr


def test_the_harness_reports_a_raise_a_hang_and_a_traceback(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import time

    from emitter.app import check

    path = fuzz.stage(fuzz.ROOT / WORKFLOW, (fuzz.ROOT / WORKFLOW).read_text(), tmp_path)
    assert fuzz.failures(path, cwd=tmp_path) == []

    def boom(files: list[str]) -> int:
        raise TypeError("boom")

    monkeypatch.setattr(check, "check_files", boom)
    assert "raised TypeError" in fuzz.failures(path, cwd=tmp_path)[0].error

    def hang(files: list[str]) -> int:
        time.sleep(5)
        return 0

    monkeypatch.setattr(check, "check_files", hang)
    assert "hung" in fuzz.failures(path, limit_s=1, cwd=tmp_path)[0].error

    def traceback_(files: list[str]) -> int:
        import sys

        print("Traceback (most recent call last):", file=sys.stderr)
        return 2

    monkeypatch.setattr(check, "check_files", traceback_)
    assert "traceback" in fuzz.failures(path, cwd=tmp_path)[0].error


def test_a_file_past_the_size_limit_is_refused_before_it_is_read(tmp_path: Path) -> None:
    from emitter.inputs.yamlio import MAX_FILE_BYTES

    big = tmp_path / "big.yaml"
    text = (fuzz.ROOT / WORKFLOW).read_text()
    big.write_text(text + "#" * (MAX_FILE_BYTES - len(text) + 1) + "\n")
    out = fuzz.run_case(big, limit_s=30, cwd=tmp_path)
    assert out[0].code == 2 and not out[0].error, out[0]
    assert out[0].stderr.strip() == f"{big}: (top level): the file is 16.0 MiB: at most 16 MiB", out[0].stderr
    ok = tmp_path / "ok.yaml"
    ok.write_text(text + "#" * (MAX_FILE_BYTES - len(text) - 10) + "\n")  # just under: read and accepted
    assert fuzz.run_case(ok, limit_s=60, cwd=tmp_path)[0].code == 0


@settings(_SETTINGS, max_examples=60)
@given(case=fuzz.command_case())
def test_other_commands_on_broken_records_fail_cleanly(
    case: tuple[list[str], dict[str, bytes]], tmp_path_factory: pytest.TempPathFactory
) -> None:
    argv, files = case
    bad = fuzz.command_failures(argv, files, tmp_path_factory.mktemp("cmd"))
    assert not bad, f"{argv}: {bad[0].error}\n{bad[0].trace}\n{bad[0].stderr[-1500:]}"


@pytest.mark.parametrize(
    ("name", "argv", "extra", "words"),
    [
        # fit took any JSON value for an event's fields: infinity raised OverflowError, a dict TypeError
        (
            "fit: attempt infinity",
            ["fit", "events.jsonl", "-o", "f.yaml"],
            b'{"attempt": Infinity}',
            "1 malformed lines skipped",
        ),
        (
            "fit: user_type a dict",
            ["fit", "events.jsonl", "-o", "f.yaml"],
            b'{"user_type": {"a": 1}}',
            "1 malformed lines skipped",
        ),
        (
            "fit: seq past 64 bits",
            ["fit", "events.jsonl", "-o", "f.yaml"],
            b'{"seq": 1' + b"0" * 30 + b"}",
            "1 malformed",
        ),
        # a NUL in a path raised ValueError where the file was opened
        ("argv: NUL", ["validate", str(fuzz.ROOT / "workflows/ecommerce.yaml"), "--source", "e\x00"], b"", "NUL"),
        # a lone surrogate on the command line failed deep inside, when written
        ("argv: lone surrogate", ["fit", "events.jsonl", "-o", "\ud800.yaml"], b"", "argument 4: not valid UTF-8"),
        # an output path the system refuses raised OSError
        ("report: name too long", ["report", "events.jsonl", "-o", "a" * 300 + ".html"], b"", "File name too long"),
    ],
)
def test_the_command_fuzzers_finds_stay_fixed(
    name: str, argv: list[str], extra: bytes, words: str, tmp_path: Path
) -> None:
    import json

    lines = fuzz._golden_lines("faults.jsonl.gz")
    if extra:  # one event with the hostile field
        rec = json.loads(lines[0])
        rec.update(json.loads(extra))
        lines = [json.dumps(rec).encode(), *lines[1:]]
    files = {"events.jsonl": b"\n".join(lines) + b"\n"}
    out = fuzz.command_outcome(argv, files, tmp_path)
    assert not out.error, (out.error, out.trace)
    assert words in out.stderr, (name, out.stderr)


def test_report_refuses_a_manifest_whose_faults_are_not_ids(tmp_path: Path) -> None:
    # (the command fuzzer's find: faults: 5 in the manifest raised TypeError)
    import json

    truth = [json.loads(x) for x in fuzz._truth_lines()]
    truth[0]["faults"] = 5
    files = {
        "events.jsonl": b"\n".join(fuzz._golden_lines("faults.jsonl.gz")) + b"\n",
        "truth.jsonl": b"\n".join(json.dumps(r).encode() for r in truth) + b"\n",
    }
    argv = ["report", "events.jsonl", "-o", "r.html", "--truth", "truth.jsonl"]
    out = fuzz.command_outcome(argv, files, tmp_path)
    assert not out.error, (out.error, out.trace)
    assert out.code == 2 and "manifest -> faults: expected a list of fault ids" in out.stderr, out.stderr


@pytest.mark.parametrize("src", fuzz.BUNDLED, ids=lambda p: p.name)
def test_every_number_outside_its_declared_bounds_is_refused_and_named(src: Path, tmp_path: Path) -> None:
    """Each bounded number of each bundled file, set just outside a bound (the declared specs say which),
    on its own: exit 2 and a line naming the file, the key path and the value."""
    from emitter.errors import format_path

    missed = []
    tried = 0
    for path, bad, text in fuzz.constraint_violations(src):
        tried += 1
        out = fuzz.run_case(fuzz.stage(src, text, tmp_path), limit_s=30, cwd=tmp_path)[0]
        want = f": {format_path(path)}: "
        lines = [ln for ln in out.stderr.splitlines() if want in ln and "case-" in ln]
        if out.error or out.code != 2 or not any(repr(bad) in ln or f"{bad:g}" in ln for ln in lines):
            missed.append((format_path(path), bad, out.code, out.error or out.stderr.strip()[:300]))
    assert tried, "no bounded number found: the walk over the declared types is broken"
    assert not missed, f"{len(missed)} of {tried}: {missed[:5]}"

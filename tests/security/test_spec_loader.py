"""The spec loader on hostile YAML: tags never construct objects, aliases stay data, no input crashes it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from xzctl.cli import run
from xzctl.errors import FleetSpecError
from xzctl.spec import bundled_example_path, load_fleet

PWNED = Path("/tmp/xzctl-loader-pwned")
EXAMPLE = bundled_example_path().read_text(encoding="utf-8")
MODEL_LINE = "        model: silero-vad-quantized\n"
# Each replaces the VAD model line of the example profile.
TAGGED = [
    f"        model: !!python/object/apply:os.system ['touch {PWNED}']\n",
    "        model: !!python/name:os.system\n",
    f"        model: !!python/object/new:subprocess.Popen [['touch', '{PWNED}']]\n",
    "        model: !!binary aGVsbG8=\n",
    "        model: !!set {a, b}\n",
    "        model: !!timestamp 2024-01-01\n",
    "        model: !unsafe '{{ 7*7 }}'\n",
    "        model: !!float .nan\n",
    "        model: [a, b]\n",
    "        model: {a: b}\n",
    "        model: 2024-01-01\n",
    "        model: 0x1F\n",
    "        model: ~\n",
]


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "fleet.yaml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize("line", TAGGED)
def test_tags_and_non_strings_are_refused_with_the_path(tmp_path: Path, line: str) -> None:
    assert MODEL_LINE in EXAMPLE
    with pytest.raises(FleetSpecError) as refused:
        load_fleet(_write(tmp_path, EXAMPLE.replace(MODEL_LINE, line, 1)))
    rendered = [p.render() for p in refused.value.problems]
    assert all(r.isprintable() for r in rendered)
    assert any("vad.model" in r or "YAML" in r for r in rendered), rendered
    assert not PWNED.exists()


def test_anchors_and_aliases_are_plain_data(tmp_path: Path) -> None:
    text = EXAMPLE.replace(MODEL_LINE, "        model: &vad silero-vad-quantized\n", 1)
    text = text.replace(
        "        model: whisper-tiny.en-int8        # Whisper through CTranslate2 (inference_images/asr)\n",
        "        model: *vad\n",
        1,
    )
    fleet = load_fleet(_write(tmp_path, text)).fleet
    node = fleet.edge_nodes()[0]
    assert node.services.asr.model == node.services.vad.model == "silero-vad-quantized"


@pytest.mark.parametrize(
    "value",
    ["{{ lookup('pipe', 'id') }}", "a\nb", "a\u2028b", "$(id)", "x" * 100_000, "../../etc/passwd"],
)
def test_cli_refuses_with_exit_2_one_line_and_writes_nothing(
    tmp_path: Path, value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    doc = yaml.safe_load(EXAMPLE)
    doc["regions"]["beijing"]["edge_nodes"][0]["host"]["address"] = value
    spec = _write(tmp_path, yaml.safe_dump(doc, allow_unicode=True))
    out = tmp_path / "out"
    assert run(["render", "region", "beijing", "--fleet", str(spec), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("xzctl: error: ") and err.count("\n") == 1 and len(err) < 1000
    assert "regions.beijing.edge_nodes[0].host.address" in err
    assert not out.exists() and sorted(os.listdir(tmp_path)) == ["fleet.yaml"]


@settings(max_examples=60, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    text=st.text(max_size=400)
    | st.sampled_from(EXAMPLE.splitlines(keepends=True)).map(lambda line: EXAMPLE.replace(line, "", 1))
)
def test_any_text_is_a_fleet_or_a_spec_error(tmp_path: Path, text: str) -> None:
    path = tmp_path / "fuzz.yaml"
    path.write_bytes(text.encode("utf-8", "surrogatepass"))
    try:
        load_fleet(path)
    except FleetSpecError as refused:
        assert refused.problems and all(p.render().isprintable() for p in refused.problems)

"""The `touchasp` command: the main job end to end on a saved model folder."""

import json

from touchasp import main


def test_perceive_prints_text_and_perception_as_json(tiny_model_dir, speech_path, capsys):
    assert main(["perceive", str(speech_path), "--model", str(tiny_model_dir), "-k", "1", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["audio"] == str(speech_path)
    assert set(result) >= {"text", "perception", "chunks"}
    assert abs(sum(result["perception"]["language"]["scores"].values()) - 1) < 1e-4


def test_perceive_reports_a_bad_file_and_keeps_going(tiny_model_dir, speech_path, tmp_path, capsys):
    fake = tmp_path / "notes.wav"
    fake.write_text("this is not audio")
    assert main(["perceive", str(fake), str(speech_path), "--model", str(tiny_model_dir)]) == 1
    captured = capsys.readouterr()
    assert "notes.wav" in captured.err
    assert str(speech_path) in captured.out

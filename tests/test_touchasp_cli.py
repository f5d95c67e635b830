"""The `touchasp` command: the main job end to end on a saved model folder."""

import json

import numpy as np
import soundfile

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


def test_perceive_reports_an_option_the_model_refuses(tiny_model_dir, speech_path, tmp_path, capsys):
    short = tmp_path / "click.wav"
    soundfile.write(short, np.zeros(800, dtype=np.float32), 16000)  # 50 ms
    assert main(["perceive", str(short), str(speech_path), "--model", str(tiny_model_dir)]) == 1
    assert "click.wav is too short" in capsys.readouterr().err
    assert main(["perceive", str(speech_path), "--model", str(tiny_model_dir), "-k", "99"]) == 1
    assert f"{speech_path}: num_experts_per_tok must lie in 1..8" in capsys.readouterr().err
    assert main(["perceive", str(speech_path), "--model", str(tiny_model_dir), "--language", "klingon"]) == 1
    assert "unknown language label 'klingon'" in capsys.readouterr().err


def test_perceive_cuts_long_audio_at_speech_unless_told_not_to(tiny_model_dir, speech, tmp_path, capsys):
    audio = np.random.default_rng(0).normal(0, 0.001, 50 * 16000).astype(np.float32)
    audio[40 * 16000 : 40 * 16000 + len(speech)] += speech
    path = tmp_path / "long.wav"
    soundfile.write(path, audio, 16000)
    bounds = {}
    for flag in ([], ["--no-vad"]):
        assert main(["perceive", str(path), "--model", str(tiny_model_dir), "--json", *flag]) == 0
        bounds[bool(flag)] = [chunk["timestamp"] for chunk in json.loads(capsys.readouterr().out)["chunks"]]
    assert len(bounds[True]) == 2 and bounds[True][0][1] < 30  # fixed: 28-30 s, then the rest
    assert any(end - start < 3 for start, end in bounds[False])  # VAD: the speech alone

"""Resume by default: SIGINT mid-run saves the state, and the same command finishes bit-exactly."""
import json
import os
import re
import signal

import pytest
import torch

import train
from tests.conftest import train_args
from trainers.taskres import TaskRes as TaskResTrainer

pytestmark = pytest.mark.slow  # every test here trains end to end


def _interrupt_after_epoch(monkeypatch, epoch: int) -> None:
    """Deliver a real SIGINT to this process right after ``epoch`` (0-based) finishes."""
    original = TaskResTrainer.after_epoch

    def after_epoch(self):
        original(self)
        if self.epoch == epoch:
            os.kill(os.getpid(), signal.SIGINT)

    monkeypatch.setattr(TaskResTrainer, "after_epoch", after_epoch)


def _final_state(out: str, epochs: int) -> dict:
    return torch.load(os.path.join(out, "prompt_learner", f"model.pth.tar-{epochs}"), weights_only=True)


@pytest.mark.parametrize("extra", [[], ["--no-cache"]], ids=["cache", "no-cache"])
def test_sigint_then_same_command_equals_uninterrupted_run(data_root, tiny_clip, tmp_path, monkeypatch, capsys, extra):
    epochs = 6
    args = lambda out: train_args(data_root, tiny_clip, out, epochs=epochs,  # noqa: E731
                                  extra=[*extra, "--cache-dir", str(tmp_path / "cache")]) + ["OPTIM.LR", "0.05"]
    whole = str(tmp_path / "whole")
    train.main(args(whole))

    out = str(tmp_path / "interrupted")
    with monkeypatch.context() as m:
        _interrupt_after_epoch(m, 2)
        with pytest.raises(SystemExit) as exc:
            train.main(args(out))
    assert exc.value.code == 130
    err = capsys.readouterr().err
    assert re.search(r"saved the state after epoch [23]/6 to .*resume.pth.tar; run the same command to continue", err)
    assert os.path.isfile(os.path.join(out, "resume.pth.tar"))
    assert not os.path.isfile(os.path.join(out, "metrics.json"))

    result = train.main(args(out))
    assert not os.path.isfile(os.path.join(out, "resume.pth.tar"))  # finished: the final checkpoint holds it
    a, b = _final_state(whole, epochs), _final_state(out, epochs)
    for key in a["state_dict"]:
        assert torch.equal(a["state_dict"][key], b["state_dict"][key]), key
    assert a["optimizer"]["param_groups"][0]["lr"] == b["optimizer"]["param_groups"][0]["lr"]
    metrics_whole = json.load(open(os.path.join(whole, "metrics.json")))
    metrics = json.load(open(os.path.join(out, "metrics.json")))
    assert result["accuracy"] == metrics_whole["accuracy"] == metrics["accuracy"]
    assert metrics["timings"]["epochs_run"] == epochs  # timings cover the part before the interruption too


def test_resume_refuses_a_state_written_with_another_config(data_root, tiny_clip, tmp_path, monkeypatch, capsys):
    out = str(tmp_path / "run")
    with monkeypatch.context() as m:
        _interrupt_after_epoch(m, 0)
        with pytest.raises(SystemExit):
            train.main(train_args(data_root, tiny_clip, out, epochs=4))
    capsys.readouterr()
    with pytest.raises(SystemExit) as exc:
        train.main(train_args(data_root, tiny_clip, out, epochs=4) + ["OPTIM.LR", "0.5"])
    assert "resume.pth.tar was written by a run with a different config" in str(exc.value.code)


def test_corrupt_resume_state_is_one_line(data_root, tiny_clip, tmp_path, monkeypatch):
    out = str(tmp_path / "run")
    with monkeypatch.context() as m:
        _interrupt_after_epoch(m, 0)
        with pytest.raises(SystemExit):
            train.main(train_args(data_root, tiny_clip, out, epochs=4))
    path = os.path.join(out, "resume.pth.tar")
    data = open(path, "rb").read()
    open(path, "wb").write(data[: len(data) // 3])
    with pytest.raises(SystemExit) as exc:
        train.main(train_args(data_root, tiny_clip, out, epochs=4))
    message = str(exc.value.code)
    assert message.startswith("error: Cannot read checkpoint") and path in message
    assert "\n" not in message and "file an issue" not in message


def test_tip_adapter_f_keeps_its_best_epoch_across_an_interruption(data_root, tiny_clip, tmp_path, monkeypatch):
    from trainers.tip_adapter import TipAdapterF

    def args(out):
        return train_args(data_root, tiny_clip, out, trainer="TipAdapterF", epochs=5,
                          extra=["--cache-dir", str(tmp_path / "cache")]) + ["OPTIM.LR", "0.01"]

    whole = str(tmp_path / "whole")
    train.main(args(whole))
    out = str(tmp_path / "interrupted")
    original = TipAdapterF.after_epoch

    def after_epoch(self):
        original(self)
        if self.epoch == 2:
            os.kill(os.getpid(), signal.SIGINT)

    with monkeypatch.context() as m:
        m.setattr(TipAdapterF, "after_epoch", after_epoch)
        with pytest.raises(SystemExit):
            train.main(args(out))
    train.main(args(out))
    expected = json.load(open(os.path.join(whole, "metrics.json")))
    got = json.load(open(os.path.join(out, "metrics.json")))
    assert got["extra"].get("best_epoch") == expected["extra"].get("best_epoch")
    assert got["accuracy"] == expected["accuracy"]
    a = torch.load(os.path.join(whole, "tip_adapter", "model-best.pth.tar"), weights_only=True)["state_dict"]
    b = torch.load(os.path.join(out, "tip_adapter", "model-best.pth.tar"), weights_only=True)["state_dict"]
    assert all(torch.equal(a[k], b[k]) for k in a)

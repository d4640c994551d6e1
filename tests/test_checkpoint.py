"""face_trainer `.model` files load for the same architecture; bad checkpoints fail clearly."""

from __future__ import annotations

import pytest
import torch
import torchvision

from facerec import checkpoint
from facerec.errors import FacerecError


def face_trainer_file(tmp_path):
    """What face_trainer saves: EmbedNet.state_dict() with the torchvision ResNet18 under __S__.
    and the loss (here an AAM-softmax weight) under __L__."""
    torch.manual_seed(0)
    net = torchvision.models.resnet18(num_classes=256)
    state = {f"__S__.{k}": v for k, v in net.state_dict().items()}
    state["__L__.weight"] = torch.randn(10, 256)
    path = tmp_path / "model000000010.model"
    torch.save(state, path)
    return net.eval(), path


def test_face_trainer_model_loads_and_matches_its_outputs(tmp_path):
    net, path = face_trainer_file(tmp_path)
    ckpt = checkpoint.load(path)
    assert ckpt["format"] == "face_trainer" and ckpt["loss"]["state_dict"]["weight"].shape == (10, 256)
    ours = checkpoint.build_model(ckpt, str(path), name="resnet18", embedding_dim=256, input_size=224).eval()
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), net(x))


def test_wrong_architecture_and_junk_are_named(tmp_path):
    _, path = face_trainer_file(tmp_path)
    with pytest.raises(FacerecError, match="weights do not fit model resnet34"):
        checkpoint.build_model(checkpoint.load(path), str(path), name="resnet34", embedding_dim=256)
    with pytest.raises(FacerecError, match="does not name its model"):
        checkpoint.build_model(checkpoint.load(path), str(path))
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(FacerecError, match="junk.pt: not a readable checkpoint"):
        checkpoint.load(junk)
    with pytest.raises(FacerecError, match="not found"):
        checkpoint.load(tmp_path / "missing.pt")

"""face_trainer `.model` files load for the same architecture; bad checkpoints fail clearly."""

from __future__ import annotations

from pathlib import Path

import numpy as np
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
    with pytest.raises(FacerecError, match=r"junk.pt: not a readable checkpoint"):
        checkpoint.load(junk)
    with pytest.raises(FacerecError, match="not found"):
        checkpoint.load(tmp_path / "missing.pt")


def test_face_trainer_file_scores_as_face_trainer_scores_it(tmp_path, data_root_lfw, capsys):
    """face_trainer's evaluation, written out independently (ToTensor, Resize 256, CenterCrop 224,
    ImageNet normalisation, L2-normalised embeddings): `facerec eval` of its .model file agrees."""
    import torch.nn.functional as F
    from PIL import Image
    from torchvision import transforms as T

    from facerec.cli import main
    from facerec.evaluation.metrics import compute_all
    from facerec.evaluation.scores import read_scores

    net, path = face_trainer_file(tmp_path)
    lists = tmp_path / "lists"
    assert main(["lists", "lfw", "--data-root", str(data_root_lfw), "--out", str(lists)]) == 0
    lines = (lists / "view1_val_pairs.csv").read_text().splitlines()
    pairs = tmp_path / "pairs.csv"
    pairs.write_text("\n".join([lines[0]] + lines[1:11] + lines[501:511]) + "\n")
    out = tmp_path / "scores.csv"
    assert main(["eval", "--checkpoint", str(path), "--arch", "resnet18", "--pairs", str(pairs), "--output", str(out),
                 "--workers", "0", "--no-progress"]) == 0
    assert "face_trainer's preprocessing" in capsys.readouterr().err
    got = read_scores(out)
    root = Path(lines[0].split(":", 1)[1].strip())
    tf = T.Compose([T.ToTensor(), T.Resize(256), T.CenterCrop([224, 224]),
                    T.Normalize(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225])])

    def feat(rel):
        with torch.no_grad():
            return F.normalize(net(tf(Image.open(root / rel).convert("RGB"))[None]), dim=1)[0]

    ref = np.array([float(feat(a) @ feat(b)) for a, b in zip(got.path1, got.path2)])
    assert np.abs(got.scores - ref).max() < 2e-3
    assert compute_all(got.scores, got.labels)["eer"] == compute_all(ref, got.labels)["eer"]

"""Semi-siamese loss against the formula written out by hand (numpy, float64): the batch's
prototypes, the ArcFace margin on the positive, the queue (its own person left out, filled first in
first out, checkpointed), the gradient stopped on the prototype side, fp32 under bf16 autocast,
refusals, and training on ORL faces with people padded to two views."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from facerec import losses
from facerec.errors import FacerecError
from tests import test_losses_orl
from tests.test_losses_orl import DIM, IDS, train_on_orl

orl = test_losses_orl.orl  # the ORL faces fixture (10 identities x 10 images, 32 px)
pytestmark = pytest.mark.usefixtures("one_thread")

# Three people (labels 7, 2, 5), two images each, in 3-d; lengths vary (the loss normalises).
EMB = np.array([[3.0, 0.0, 0.0], [0.8, 0.6, 0.0],    # person 7
                [0.0, 2.0, 0.0], [0.0, 0.6, 0.8],    # person 2
                [0.0, 0.0, 0.5], [0.6, 0.0, 0.8],    # person 5
                ])
LABELS = np.array([7, 7, 2, 2, 5, 5])


def by_hand(emb, labels, *, s=32.0, m=0.3, queue=(), queue_labels=(), probes=None):
    """The mean loss; `probes` (default: the batch itself) replaces the probe side only, the
    prototypes still coming from `emb` (the gradient-stopped side)."""
    unit = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    probes = unit if probes is None else probes / np.linalg.norm(probes, axis=1, keepdims=True)
    out = []
    for i, y in enumerate(labels):
        others = [unit[j] for j in range(len(labels)) if labels[j] == y and j != i]
        pos = np.sum(others, axis=0)
        cos_pos = probes[i] @ (pos / np.linalg.norm(pos))
        row = [s * math.cos(math.acos(cos_pos) + m)]  # theta + m < pi here: no continuation
        for c in dict.fromkeys(labels):  # each other person of the batch: the sum of its images
            if c != y:
                proto = unit[labels == c].sum(0)
                row.append(s * probes[i] @ proto / np.linalg.norm(proto))
        row += [s * probes[i] @ q for q, ql in zip(queue, queue_labels) if ql != y]
        out.append(np.logaddexp.reduce(row) - row[0])
    return float(np.mean(out))


def make(**kw):
    return losses.create("semi_siamese", embedding_dim=3, num_classes=None, **kw)


def run(loss, emb=EMB, labels=LABELS):
    return loss(torch.tensor(emb, dtype=torch.float32), torch.tensor(labels))


def test_value_by_hand_batch_only():
    loss = make(queue_size=0)
    assert (loss.scale, loss.margin, loss.min_per_class, loss.num_classes) == (32.0, 0.3, 2, None)
    assert run(loss).item() == pytest.approx(by_hand(EMB, LABELS), rel=1e-5)
    assert run(make(queue_size=0, scale=10.0, margin=0.5)).item() == pytest.approx(
        by_hand(EMB, LABELS, s=10.0, m=0.5), rel=1e-5)
    # the margin matters: without it the same cosines give a smaller loss
    assert by_hand(EMB, LABELS, m=0.0) < by_hand(EMB, LABELS) - 0.1


def test_queue_fills_first_in_first_out_and_leaves_out_the_own_person():
    loss = make(queue_size=4)
    first = run(loss)
    assert first.item() == pytest.approx(by_hand(EMB, LABELS), rel=1e-5)  # the queue starts empty
    unit = EMB / np.linalg.norm(EMB, axis=1, keepdims=True)
    protos = {c: unit[LABELS == c].sum(0) / np.linalg.norm(unit[LABELS == c].sum(0)) for c in (7, 2, 5)}
    # torch.unique sorts the labels: people 2, 5, 7 enter slots 0, 1, 2
    np.testing.assert_allclose(loss.queue.numpy()[:3], np.stack([protos[2], protos[5], protos[7]]), atol=1e-6)
    assert loss.queue_labels.tolist() == [2, 5, 7, -1] and loss.queue_next.item() == 3
    # second batch: people 2 and 9; 2's queued prototype is left out of its own probes' negatives
    emb2 = np.array([[0.0, 1.0, 0.2], [0.1, 1.0, 0.0], [1.0, 0.3, 0.3], [0.9, 0.0, 0.5]])
    lab2 = np.array([2, 2, 9, 9])
    queued = [protos[2], protos[5], protos[7]]
    assert run(loss, emb2, lab2).item() == pytest.approx(
        by_hand(emb2, lab2, queue=queued, queue_labels=[2, 5, 7]), rel=1e-5)
    assert loss.queue_labels.tolist() == [9, 5, 7, 2] and loss.queue_next.item() == 1  # wrapped round
    # the queue is part of the state: a resumed run continues with it
    assert set(loss.state_dict()) == {"queue", "queue_labels", "queue_next"}
    fresh = make(queue_size=4)
    fresh.load_state_dict(loss.state_dict())
    assert torch.equal(fresh.queue, loss.queue) and fresh.queue_next.item() == 1
    # evaluation mode reads the queue but does not fill it
    loss.eval()
    before = loss.queue.clone()
    run(loss)
    assert torch.equal(loss.queue, before)


def test_empty_slots_are_left_out():
    # An empty slot (label -1) holding a vector along probe 0 would add a large logit to its row.
    loss = make(queue_size=2)
    with torch.no_grad():
        loss.queue[1] = torch.tensor([1.0, 0.0, 0.0])
    assert loss.queue_labels.tolist() == [-1, -1]
    assert run(loss).item() == pytest.approx(by_hand(EMB, LABELS), rel=1e-5)
    assert by_hand(EMB, LABELS, queue=[[1.0, 0.0, 0.0]], queue_labels=[9]) > by_hand(EMB, LABELS) + 0.5


def test_more_people_than_slots_keeps_the_last_ones():
    loss = make(queue_size=2)
    run(loss)  # people 2, 5, 7 (sorted): only 5 and 7 fit, 5 first
    assert loss.queue_labels.tolist() == [5, 7] and loss.queue_next.item() == 0


def test_backward_through_a_filled_queue():
    # the step refills the queue inside forward; backward needs the queue it read
    loss = make(queue_size=4)
    run(loss)
    x = torch.tensor(EMB, dtype=torch.float32, requires_grad=True)
    loss(x, torch.tensor(LABELS)).backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def test_gradient_flows_through_the_probe_only():
    # d loss / d e_i by finite differences of the hand formula, with the prototypes held fixed
    loss = make(queue_size=0)
    x = torch.tensor(EMB, dtype=torch.float64, requires_grad=True)
    loss(x.float(), torch.tensor(LABELS)).backward()

    def probe_only(i, e_i):  # only probe i moves; the prototypes come from the unperturbed batch
        probes = EMB.copy()
        probes[i] = e_i
        return by_hand(EMB, LABELS, probes=probes)

    eps = 1e-6
    for i in (0, 3):
        numeric = [(probe_only(i, EMB[i] + eps * d) - probe_only(i, EMB[i] - eps * d)) / (2 * eps)
                   for d in np.eye(3)]
        np.testing.assert_allclose(x.grad[i].numpy(), numeric, rtol=1e-3, atol=1e-5)


def test_fp32_under_bf16_autocast():
    loss = make(queue_size=0)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        value = run(loss)
    assert value.dtype == torch.float32
    assert value.item() == pytest.approx(by_hand(EMB, LABELS), rel=1e-5)


def test_refusals():
    with pytest.raises(FacerecError, match="per_class"):
        run(make(), EMB[:5], LABELS[:5])  # person 5 has one image in this batch
    with pytest.raises(FacerecError, match="scale"):
        make(scale=0)
    with pytest.raises(FacerecError, match="queue_size"):
        make(queue_size=-1)
    with pytest.raises(FacerecError, match="radians"):
        make(margin=2.0)
    with pytest.raises(FacerecError, match="per_class"):
        losses.check_per_class(make(), 1)
    assert losses.create("sst", embedding_dim=3, num_classes=None).name == "semi_siamese"


def test_trains_on_orl_alone_and_beside_arcface(orl):
    x, y = orl
    # Alone without a queue: with one, the loss starts against an empty queue, so its value is not
    # comparable along the run.
    for name, kw in (("semi_siamese", {"queue_size": 0}),
                     ("arcface+semi_siamese", {"arcface.scale": 32.0, "semi_siamese.queue_size": 16})):
        torch.manual_seed(0)
        loss = losses.create(name, embedding_dim=DIM, num_classes=IDS, **kw)
        history = train_on_orl(x, y, loss, name)
        assert np.mean(history[-5:]) < np.mean(history[:5]), f"{name}: {history[:5]} -> {history[-5:]}"
        assert "acc" in loss.stats


def test_initial_model_restores_the_classifier_and_empties_the_queue(tmp_path):
    """--initial-model starts a new run: ArcFace's class centres come back, while the queue, labelled
    with the old run's class indices, starts as a fresh loss's (--resume keeps it: above)."""
    from types import SimpleNamespace

    from facerec import checkpoint
    from facerec.trainer import saving

    def combo():
        return losses.create("arcface+semi_siamese", embedding_dim=3, num_classes=8, **{"semi_siamese.queue_size": 4})

    old = combo()
    run(old)
    net = torch.nn.Linear(3, 3)
    path = tmp_path / "old.pt"
    torch.save({"format": checkpoint.FORMAT, "model": {"state_dict": net.state_dict()},
                "loss": {"state_dict": old.state_dict()}}, path)
    new, fresh, said = combo(), combo().state_dict(), []
    t = SimpleNamespace(cfg=SimpleNamespace(resume=None, initial_model=str(path), finetune_from=None),
                        model=torch.nn.Linear(3, 3), loss=new, log=said.append)
    saving.load_weights(t)
    restored, trained = new.state_dict(), old.state_dict()
    queue_keys = [k for k in trained if "queue" in k]
    weight_keys = [k for k in trained if k.endswith("weight")]
    assert len(queue_keys) == 3 and len(weight_keys) == 1
    assert torch.equal(restored[weight_keys[0]], trained[weight_keys[0]])
    assert sorted(trained[next(k for k in queue_keys if k.endswith("queue_labels"))].tolist()) == [-1, 2, 5, 7]
    for k in queue_keys:
        assert torch.equal(restored[k], fresh[k]), k
    assert torch.equal(t.model.weight, net.weight) and "classifier not restored" not in " ".join(said)

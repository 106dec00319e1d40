# The targets CI runs are scripts/test and scripts/check; these are shortcuts.
.PHONY: install serve test check bench docs
install:
	scripts/install
serve:
	scripts/serve
test:
	scripts/test
check:
	scripts/check
bench:
	scripts/bootstrap && .venv/bin/python -m bench
docs:
	scripts/install && .venv/bin/python -m proxy.config.reference > docs/configuration.md
